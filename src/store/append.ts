// The group-commit writer's store function (the core's AppendBatch): a batch of messages in one transaction.
import { sql, type SQL } from "drizzle-orm";
import type { AppendStages } from "../core/ports.ts";
import type { AppendItem, AppendResult } from "../core/records.ts";
import type { Message } from "../core/types.ts";
import { rowsOf, type Db } from "./db.ts";
import { fromRaw, toMessage, type RawMessage } from "./message-rows.ts";
import { periodStart, type PartitionInterval } from "./partitions.ts";

/** Runs statements of one transaction in order; on postgres.js they travel together (one round trip). */
type Run = (queries: SQL[]) => Promise<unknown[][]>;

type PgTx = { unsafe(query: string, params?: unknown[], opts?: { prepare: boolean }): Promise<unknown[]> };
type PostgresJs = { begin<T>(fn: (tx: PgTx) => Promise<T>): Promise<T> };
type Dialect = { sqlToQuery(q: SQL): { sql: string; params: unknown[] } };

/**
 * One transaction whose statements go out in pipelined groups. On postgres.js: every statement of a group is
 * prepared and sent at once, so a batch costs four round trips (begin, two groups, commit) instead of one per
 * statement; a batch that creates direct chats costs one attempt and one short transaction more. A group stops
 * at its first failing statement (Postgres refuses the rest of an aborted transaction): that first error is thrown and the transaction rolls back.
 * postgres.js's own `begin` holds the connection, so a connection lost mid-transaction fails the transaction.
 * On PGlite (in-process, no round trips): a drizzle transaction, statements one by one.
 */
async function inTransaction<T>(db: Db, body: (run: Run) => Promise<T>): Promise<T> {
  const client = (db as unknown as { $client: Partial<PostgresJs> }).$client;
  if (typeof client?.begin !== "function") {
    return db.transaction(async (tx) =>
      body(async (queries) => {
        const out: unknown[][] = [];
        for (const q of queries) out.push(rowsOf(await tx.execute(q)));
        return out;
      }),
    );
  }
  const dialect = (db as unknown as { dialect: Dialect }).dialect;
  return client.begin((tx) =>
    body(async (queries) => {
      const sent = queries.map((q) => {
        const { sql: text, params } = dialect.sqlToQuery(q);
        return tx.unsafe(text, params, { prepare: true });
      });
      const settled = await Promise.allSettled(sent);
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      return settled.map((r) => (r as PromiseFulfilledResult<unknown[]>).value);
    }),
  );
}

/**
 * Locks conversation rows in id order (so concurrent batches cannot deadlock) and reads their last seq, the
 * time of their last message and their partition mark (times as epoch milliseconds; -Infinity: no mark).
 */
const lockSql = (ids: string[]) => sql`
  select c.id, c.last_seq, (extract(epoch from c.last_msg_at) * 1000)::float8 as last_at,
         c.mark_seq, (extract(epoch from c.mark_at) * 1000)::float8 as mark_at
    from conversations c
   where c.id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))
   order by c.id for update`;
/**
 * Every statement of a batch finds its rows through an index, and must go on doing so as the tables grow. On
 * postgres.js they are prepared, and after a few runs Postgres keeps one generic plan per statement and
 * connection until the table is analyzed again: planned while a table (a new month's partition, a fresh
 * store) was small, a join of the batch's rows with the messages table becomes a hash join over a full scan,
 * whose cost then grows with every row written (measured: the retry lookup went from 7 ms to 51 ms per
 * batch within a minute of sends). So the transaction plans without sequential scans, hash or merge joins.
 */
const indexPlans = sql`select set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)`;
/** Stored messages with the (sender, client id, conversation) of these sends: the first sends of retries. */
const priorSql = (its: AppendItem[]) => sql`
  select m.id::text as id, m.conv_id, m.seq, m.sender_id, m.kind, m.body::text as body, m.client_msg_id, m.created_at, m.recalled_at
    from jsonb_to_recordset(${JSON.stringify(its.map((i) => ({ s: i.sender, c: i.cmid, v: i.conv })))}::jsonb) as k(s text, c text, v text)
    join messages m on m.sender_id = k.s and m.client_msg_id = k.c and m.conv_id = k.v`;
type Locked = { id: string; last_seq: string | number; last_at: string | number | null; mark_seq: string | number; mark_at: string | number };
/** What the batch reads of a locked conversation and moves. */
type ConvState = { seq: number; at: number; markSeq: number; markAt: number; marked: boolean };
const stateOf = (r: Locked): ConvState => ({
  seq: Number(r.last_seq),
  at: r.last_at === null ? -Infinity : Number(r.last_at),
  markSeq: Number(r.mark_seq),
  markAt: Number(r.mark_at),
  marked: false,
});

/**
 * Appends a batch in one transaction: retried client ids resolve to their first message, each
 * conversation's seq range is reserved under its row lock (taken in id order, so concurrent
 * batches from other nodes cannot deadlock), then one multi-row INSERT. Nothing is visible
 * before the commit, and a failed batch consumes no seq.
 *
 * Blacklist: a 1:1 message (`recipient`) is refused when the recipient blocked the sender; a message in
 * a container conversation (desk guests, rooms containers) when the conversation's owner — the agent
 * serving it — blocked the sender. Both are read in the writing transaction, the owner after the row
 * lock was taken, so neither a block nor a transfer committed before the message can be bypassed.
 *
 * Statements go in groups (one round trip each on postgres.js): (1) lock every conversation the batch names,
 * then (reading after the lock) retried client ids, 1:1 blocks and container owners' blocks; (2) reserve the
 * seq ranges, insert the rows, move the senders' last_sent_seq.
 *
 * Direct chats are created by their first message, but never inside the batch's transaction: inserting a
 * conversation waits for any other transaction inserting the same id, and doing that while holding the
 * batch's row locks closes a cycle with a batch on another node that locked those rows first and is now
 * creating the same chat (both halves of a pair sending their first message at once). So when group 1 finds
 * direct chats missing, the transaction ends holding nothing it wrote, the chats are created (with their
 * members) in a short transaction of their own, in id order, and the batch runs again, now finding them all.
 */
export async function appendBatch(db: Db, items: AppendItem[], stages: AppendStages = {}, interval: PartitionInterval = "month"): Promise<AppendResult[]> {
  const first = await appendOnce(db, items, stages, interval);
  if (!(first instanceof Map)) return first;
  await createDirectChats(db, first);
  const again = await appendOnce(db, items, stages, interval);
  if (again instanceof Map) throw new Error(`conversation ${[...again.keys()][0]} does not exist`);
  return again;
}

type Creates = Map<string, { kind: string; members: string[] }>;

/** Creates missing direct chats with their members, committed on their own (see appendBatch). */
async function createDirectChats(db: Db, creates: Creates): Promise<void> {
  const made = [...creates].sort(([a], [b]) => (a < b ? -1 : 1));
  const convRows = JSON.stringify(made.map(([id, c]) => ({ id, k: c.kind })));
  const memberRows = JSON.stringify(made.flatMap(([id, c]) => c.members.map((u) => ({ c: id, u }))));
  await inTransaction(db, (run) =>
    run([
      sql`insert into conversations (id, kind) select x.id, x.k from jsonb_to_recordset(${convRows}::jsonb) as x(id text, k text)
           order by x.id on conflict do nothing`,
      sql`insert into members (conv_id, user_id) select x.c, x.u from jsonb_to_recordset(${memberRows}::jsonb) as x(c text, u text)
           order by x.c, x.u on conflict do nothing`,
    ]),
  );
}

/**
 * One attempt: the results, or the direct chats that must be created first (nothing was written). A retry
 * racing its first send to a chat both were creating finds it: the second attempt reads client ids after
 * the chat's row lock, which waits for the first send's commit.
 */
async function appendOnce(db: Db, items: AppendItem[], stages: AppendStages, interval: PartitionInterval): Promise<AppendResult[] | Creates> {
  return inTransaction(db, async (run): Promise<AppendResult[] | Creates> => {
    const results: (AppendResult | undefined)[] = new Array(items.length);
    // A retry is the same client id from the same sender in the same conversation: the id is the
    // client's, and clients make them per conversation, so a reuse elsewhere is a new message.
    const keyOf = (it: AppendItem) => `${it.conv}\u0000${it.sender}\u0000${it.cmid}`;
    const allConvs = [...new Set(items.map((it) => it.conv))].sort();
    const withCmid = items.filter((i) => i.cmid);
    const direct = items.map((it, i) => ({ it, i })).filter(({ it }) => it.recipient);

    // 1. Lock, then read what the lock protects. In READ COMMITTED each statement reads what was committed
    // when it starts, so the statements after the lock see every transfer, block or message committed before it.
    const group1: SQL[] = [indexPlans, lockSql(allConvs)];
    // Idempotency: earlier messages with the same (conversation, sender, client msg id).
    if (withCmid.length) group1.push(priorSql(withCmid));
    // Blacklist of 1:1 messages: a recipient who blocked the sender refuses the message.
    if (direct.length) {
      const pairs = JSON.stringify(direct.map(({ it }) => ({ u: it.recipient, b: it.sender })));
      group1.push(sql`
        select b.user_id, b.blocked_id from jsonb_to_recordset(${pairs}::jsonb) as k(u text, b text)
          join blocks b on b.user_id = k.u and b.blocked_id = k.b`);
    }
    // Blacklist of container conversations: the owner (the serving agent) who blocked the sender. The
    // owner is read after the row lock: a transfer cannot slip in between.
    const senders = JSON.stringify(items.map((it, n) => ({ n, v: it.conv, s: it.sender })));
    group1.push(sql`
      select k.n from jsonb_to_recordset(${senders}::jsonb) as k(n int, v text, s text)
        join conversations c on c.id = k.v and c.kind = 'container' and c.owner_id <> k.s
        join blocks b on b.user_id = c.owner_id and b.blocked_id = k.s`);
    const out1 = await run(group1);
    let at = 1;
    const locked = out1[at++] as Locked[];
    const found = withCmid.length ? (out1[at++] as RawMessage[]) : [];
    const blockedDirect = direct.length ? (out1[at++] as { user_id: string; blocked_id: string }[]) : [];
    const blockedByOwner = new Set((out1[at++] as { n: number | string }[]).map((r) => Number(r.n)));

    const firstByKey = new Map<string, number>();
    /** Answers the sends whose client id names a stored message (`prior`), or an earlier send of this batch. */
    const resolve = (prior: RawMessage[]) => {
      const byKey = new Map(prior.map((r) => [`${r.conv_id}\u0000${r.sender_id}\u0000${r.client_msg_id}`, fromRaw(r)]));
      items.forEach((it, i) => {
        if (!it.cmid) return;
        const key = keyOf(it);
        const found = byKey.get(key);
        if (found) results[i] = { msg: found, dup: true };
        else if (firstByKey.has(key)) results[i] = { msg: undefined as unknown as Message, dup: true };
        else firstByKey.set(key, i);
      });
    };
    if (withCmid.length) resolve(found);
    const blocked = new Set(blockedDirect.map((b) => `${b.user_id}\u0000${b.blocked_id}`));
    for (const { it, i } of direct) if (!results[i] && blocked.has(`${it.recipient}\u0000${it.sender}`)) results[i] = { refused: "blocked" };
    items.forEach((_, i) => {
      if (!results[i] && blockedByOwner.has(i)) results[i] = { refused: "blocked" };
    });

    const fresh = items.map((it, i) => ({ it, i })).filter(({ i }) => !results[i]);
    /** each touched conversation's last seq, last time and mark, read under its row lock */
    const next = new Map<string, ConvState>();
    for (const r of locked) next.set(r.id, stateOf(r));

    // Direct chats missing: end this transaction (it wrote nothing) and create them outside it.
    const creates: Creates = new Map();
    for (const { it } of fresh) if (!next.has(it.conv) && it.create && !creates.has(it.conv)) creates.set(it.conv, it.create);
    if (creates.size) return creates;
    for (const { it } of fresh) if (!next.has(it.conv)) throw new Error(`conversation ${it.conv} does not exist`);
    // Every conversation this batch writes is locked: the writer may start the next batch (its locks wait for ours).
    stages.locked?.();
    if (stages.proceed) await stages.proceed();

    if (fresh.length) {
      // 2. Reserve the seq ranges, insert the whole batch, move the senders' own latest seq per conversation
      // ("awaiting reply" is derived from it), commit.
      // A message's time never goes back within its conversation (a node whose clock is behind another's
      // stamps the time of the message before): times follow seqs, which the partition mark relies on. The
      // mark moves to the first message of each newer partition period.
      const rows = fresh.map(({ it }) => {
        const c = next.get(it.conv)!;
        c.seq += 1;
        c.at = Math.max(c.at, it.at.getTime());
        const period = periodStart(c.at, interval);
        if (c.markAt < period) Object.assign(c, { markSeq: c.seq, markAt: period, marked: true });
        return { id: it.id, convId: it.conv, seq: c.seq, senderId: it.sender, kind: it.kind, body: it.body, clientMsgId: it.cmid ?? null, createdAt: new Date(c.at) };
      });
      const convIds = [...new Set(rows.map((r) => r.convId))].sort();
      const ranges = JSON.stringify(
        convIds.map((id) => {
          const c = next.get(id)!;
          return { id, s: c.seq, t: new Date(c.at).toISOString(), ...(c.marked ? { ms: c.markSeq, ma: new Date(c.markAt).toISOString() } : {}) };
        }),
      );
      const payload = JSON.stringify(
        rows.map((r) => ({ i: r.id.toString(), c: r.convId, q: r.seq, s: r.senderId, k: r.kind, b: r.body ?? null, m: r.clientMsgId, t: r.createdAt.toISOString() })),
      );
      fresh.forEach(({ i }, k) => (results[i] = { msg: toMessage({ ...rows[k]!, recalledAt: null }), dup: false }));
      const sent = new Map<string, { c: string; u: string; s: number }>();
      for (const r of rows) sent.set(`${r.convId}\u0000${r.senderId}`, { c: r.convId, u: r.senderId, s: r.seq });
      await run([
        sql`
          update conversations as c set last_seq = v.s, last_msg_at = v.t,
                 mark_seq = coalesce(v.ms, c.mark_seq), mark_at = coalesce(v.ma, c.mark_at)
            from jsonb_to_recordset(${ranges}::jsonb) as v(id text, s bigint, t timestamptz, ms bigint, ma timestamptz) where c.id = v.id`,
        sql`
          insert into messages (id, conv_id, seq, sender_id, kind, body, client_msg_id, created_at)
          select i, c, q, s, k, coalesce(b, 'null'::jsonb), m, t from jsonb_to_recordset(${payload}::jsonb)
            as x(i bigint, c text, q bigint, s text, k text, b jsonb, m text, t timestamptz)`,
        sql`
          update members as m set last_sent_seq = greatest(m.last_sent_seq, v.s)
            from jsonb_to_recordset(${JSON.stringify([...sent.values()])}::jsonb) as v(c text, u text, s bigint)
           where m.conv_id = v.c and m.user_id = v.u`,
      ]);
    }

    // Repeats inside one batch resolve to the message stored for their first occurrence.
    items.forEach((it, i) => {
      const r = results[i]!;
      if (r.dup && !r.msg) {
        const first = results[firstByKey.get(keyOf(it))!]!;
        results[i] = first.refused ? first : { msg: first.msg, dup: true };
      }
    });
    return results as AppendResult[];
  });
}
