// Repositories over drizzle's PgDatabase: the same code runs on postgres.js and PGlite.
import { and, asc, desc, eq, gt, gte, inArray, lt, lte, sql, type SQL } from "drizzle-orm";
import { prepared, rowsOf, type Db } from "./db.ts";
import { blocks, conversations, members, messages, users } from "./schema.ts";
import { storableJson, storableText } from "../core/storable.ts";
import type { ChatStore } from "../core/ports.ts";
import type { AppendItem, AppendResult, ConversationRow, HistoryQuery, MemberRow, NewConversation, UserInput, UserRow } from "../core/records.ts";
import type { Message } from "../core/types.ts";

type MessageRow = typeof messages.$inferSelect;

/** A message row read with raw SQL (ids and bodies as text, so both drivers return the same). */
interface RawMessage {
  id: string;
  conv_id: string;
  seq: string | number;
  sender_id: string;
  kind: string;
  body: string;
  client_msg_id: string | null;
  /** a timestamp, or its epoch milliseconds (the pull's page: cheaper to read than a timestamp's text) */
  created_at: string | Date | number;
  recalled_at: string | Date | null;
}

/**
 * The reconnect hot path, in raw SQL: the query builder's join building and row mapping cost more CPU than
 * the query (bench: offline-pull). Per conversation with news, a range scan of (conv_id, seq) above the
 * user's delivered cursor, at most `limit` rows each, so a long conversation costs only what is returned.
 */
function pendingPage(userId: string, opts: { conv?: string; limit: number; after?: { conv: string; seq: number } }, numbered = false): SQL {
  return sql`
    select m.id::text as id, m.conv_id, m.seq, m.sender_id, m.kind, m.body::text as body, m.client_msg_id,
           (extract(epoch from m.created_at) * 1000)::float8 as created_at, m.recalled_at
           ${numbered ? sql`, row_number() over (order by m.conv_id, m.seq) as rn` : sql``}
      from members mb
      join conversations c on c.id = mb.conv_id and c.last_seq > mb.delivered_seq
      cross join lateral (
        select * from messages m
         where m.conv_id = mb.conv_id and m.seq > mb.delivered_seq and m.sender_id <> ${userId}
           ${opts.after ? sql`and (m.conv_id, m.seq) > (${opts.after.conv}::text, ${opts.after.seq}::bigint)` : sql``}
         order by m.seq
         limit ${opts.limit}) m
     where mb.user_id = ${userId}
       ${opts.conv ? sql`and mb.conv_id = ${opts.conv}` : sql``}
       ${opts.after ? sql`and mb.conv_id >= ${opts.after.conv}` : sql``}
     order by m.conv_id, m.seq
     limit ${opts.limit}`;
}

function fromRaw(r: RawMessage): Message {
  return toMessage({
    id: BigInt(r.id),
    convId: r.conv_id,
    seq: Number(r.seq),
    senderId: r.sender_id,
    kind: r.kind,
    body: JSON.parse(r.body),
    clientMsgId: r.client_msg_id,
    createdAt: new Date(r.created_at),
    recalledAt: r.recalled_at ? new Date(r.recalled_at) : null,
  });
}

export function toMessage(r: MessageRow): Message {
  return {
    id: r.id.toString(),
    conv: r.convId,
    seq: Number(r.seq),
    from: r.senderId,
    kind: r.kind,
    body: r.recalledAt ? null : r.body,
    cmid: r.clientMsgId ?? undefined,
    ts: r.createdAt.getTime(),
    ...(r.recalledAt ? { recalled: true } : {}),
  };
}

/** Users, conversations, members and messages. */
export class Store implements ChatStore {
  constructor(readonly db: Db) {}

  async ping(): Promise<void> {
    await this.db.execute(sql`select 1`);
  }

  // ---- users ----

  async upsertUser(u: UserInput): Promise<UserRow> {
    // Every profile write of every entry point passes here: what Postgres cannot store is a bad request.
    for (const k of ["id", "nick", "avatar", "role"] as const) storableText(u[k], `\`${k}\``);
    storableJson(u.attributes, "`attributes`");
    const set: Partial<typeof users.$inferInsert> = { updatedAt: new Date() };
    for (const k of ["nick", "avatar", "role", "sex", "vip", "attributes", "passwordHash", "disabled"] as const) {
      if (u[k] !== undefined) (set as Record<string, unknown>)[k] = u[k];
    }
    const [row] = await this.db
      .insert(users)
      .values({ ...set, id: u.id })
      .onConflictDoUpdate({ target: users.id, set })
      .returning();
    return row!;
  }

  async getUser(id: string): Promise<UserRow | undefined> {
    const [row] = await this.db.select().from(users).where(eq(users.id, id));
    return row;
  }

  async getUsers(ids: string[]): Promise<UserRow[]> {
    if (ids.length === 0) return [];
    return this.db.select().from(users).where(inArray(users.id, ids));
  }

  // ---- conversations and members ----

  async getConversation(id: string): Promise<ConversationRow | undefined> {
    const [row] = await this.db.select().from(conversations).where(eq(conversations.id, id));
    return row;
  }

  /**
   * Creates a conversation with its first members, in one transaction. False, with nobody added, when the
   * id is taken: creating a conversation that exists must never make its caller a member (or owner) of it.
   */
  async createConversation(c: NewConversation, memberRoles: Record<string, string>): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const made = await tx.insert(conversations).values(c).onConflictDoNothing().returning({ id: conversations.id });
      if (!made.length) return false;
      const rows = Object.entries(memberRoles).map(([userId, role]) => ({ convId: c.id, userId, role }));
      if (rows.length) await tx.insert(members).values(rows).onConflictDoNothing();
      return true;
    });
  }

  async getMember(convId: string, userId: string): Promise<MemberRow | undefined> {
    const [row] = await this.db
      .select()
      .from(members)
      .where(and(eq(members.convId, convId), eq(members.userId, userId)));
    return row;
  }

  async memberIds(convId: string): Promise<string[]> {
    const rows = await this.db.select({ u: members.userId }).from(members).where(eq(members.convId, convId));
    return rows.map((r) => r.u);
  }

  /** Moves a cursor forward only (a late or repeated confirmation never moves it back). Returns the new value. */
  /** Moves one cursor forward (never back, never past the conversation's last seq); undefined for a non-member. */
  async advanceCursor(userId: string, convId: string, field: "delivered" | "read", seq: number): Promise<number | undefined> {
    return (await this.advanceCursors(userId, field, [{ conv: convId, seq }])).get(convId);
  }

  /**
   * Cursors of several conversations of one user in one statement (a page of messages confirms every
   * conversation it holds at once): each moves forward only, never past its conversation's last seq, and
   * reading implies delivery. Returns the new value per conversation the user is a member of.
   */
  async advanceCursors(userId: string, field: "delivered" | "read", to: { conv: string; seq: number }[]): Promise<Map<string, number>> {
    if (to.length === 0) return new Map();
    const v = JSON.stringify(to.map((t) => ({ c: t.conv, s: t.seq })));
    const capped = sql.raw("least(v.s, c.last_seq)");
    const set =
      field === "delivered"
        ? sql`delivered_seq = greatest(m.delivered_seq, ${capped})`
        : sql`read_seq = greatest(m.read_seq, ${capped}), delivered_seq = greatest(m.delivered_seq, ${capped})`;
    const rows = await prepared<{ conv_id: string; v: string | number }>(
      this.db,
      sql`
        update members as m set ${set}
          from jsonb_to_recordset(${v}::jsonb) as v(c text, s bigint), conversations as c
         where m.conv_id = v.c and m.user_id = ${userId} and c.id = v.c
        returning m.conv_id, ${sql.raw(field === "delivered" ? "m.delivered_seq" : "m.read_seq")} as v`,
    );
    return new Map(rows.map((r) => [r.conv_id, Number(r.v)]));
  }

  /**
   * Delivered cursors moved over pushed messages, one statement for several conversations of one user: a
   * cursor moves to the highest pushed seq, but never past a message of another sender above it that was
   * not pushed (the first such one stops it: an index range scan from the cursor). Returns the new value per
   * conversation whose cursor moved.
   */
  async advancePushed(userId: string, pushed: { conv: string; seqs: readonly number[] }[]): Promise<Map<string, number>> {
    if (pushed.length === 0) return new Map();
    const v = JSON.stringify(pushed.map((p) => ({ c: p.conv, s: p.seqs.reduce((a, b) => (a > b ? a : b), 0), a: p.seqs })));
    const rows = await prepared<{ conv_id: string; v: string | number }>(
      this.db,
      sql`
        update members as m set delivered_seq = greatest(m.delivered_seq, least(v.s, c.last_seq, coalesce((
            select min(x.seq) - 1 from messages x
             where x.conv_id = v.c and x.seq > m.delivered_seq and x.seq <= v.s and x.sender_id <> m.user_id and x.seq <> all(v.a)), v.s)))
          from jsonb_to_recordset(${v}::jsonb) as v(c text, s bigint, a bigint[]), conversations as c
         where m.conv_id = v.c and m.user_id = ${userId} and c.id = v.c
        returning m.conv_id, m.delivered_seq as v`,
    );
    return new Map(rows.map((r) => [r.conv_id, Number(r.v)]));
  }

  // ---- messages ----

  /**
   * Appends a batch in one transaction: retried client ids resolve to their first message, each
   * conversation's seq range is reserved under its row lock (taken in id order, so concurrent
   * batches from other nodes cannot deadlock), then one multi-row INSERT. Nothing is visible
   * before the commit, and a failed batch consumes no seq.
   *
   * Blacklist: a 1:1 message (`recipient`) is refused when the recipient blocked the sender; a message in
   * a container conversation (desk guests, rooms containers) when the conversation's owner — the agent
   * serving it — blocked the sender. Both are read in the writing transaction, the owner under the row
   * lock, so neither a block nor a transfer committed before the message can be bypassed.
   */
  async appendBatch(items: AppendItem[]): Promise<AppendResult[]> {
    return this.db.transaction(async (tx) => {
      const results: (AppendResult | undefined)[] = new Array(items.length);
      // A retry is the same client id from the same sender in the same conversation: the id is the
      // client's, and clients make them per conversation, so a reuse elsewhere is a new message.
      const keyOf = (it: AppendItem) => `${it.conv}\u0000${it.sender}\u0000${it.cmid}`;

      // 1. Idempotency: earlier messages with the same (conversation, sender, client msg id), and repeats inside the batch.
      const withCmid = items.filter((i) => i.cmid);
      const firstByKey = new Map<string, number>();
      if (withCmid.length) {
        const keys = JSON.stringify(withCmid.map((i) => ({ s: i.sender, c: i.cmid, v: i.conv })));
        const found = rowsOf<RawMessage>(
          await tx.execute(sql`
            select m.id::text as id, m.conv_id, m.seq, m.sender_id, m.kind, m.body::text as body, m.client_msg_id, m.created_at, m.recalled_at
              from jsonb_to_recordset(${keys}::jsonb) as k(s text, c text, v text)
              join messages m on m.sender_id = k.s and m.client_msg_id = k.c and m.conv_id = k.v`),
        );
        const byKey = new Map(found.map((r) => [`${r.conv_id}\u0000${r.sender_id}\u0000${r.client_msg_id}`, fromRaw(r)]));
        items.forEach((it, i) => {
          if (!it.cmid) return;
          const key = keyOf(it);
          const prior = byKey.get(key);
          if (prior) results[i] = { msg: prior, dup: true };
          else if (firstByKey.has(key)) results[i] = { msg: undefined as unknown as Message, dup: true };
          else firstByKey.set(key, i);
        });
      }

      // 2. Blacklist of 1:1 messages: a recipient who blocked the sender refuses the message (checked in the
      // writing transaction, so a block committed before it can never let a message through).
      const checked = items.map((it, i) => ({ it, i })).filter(({ it, i }) => !results[i] && it.recipient);
      if (checked.length) {
        const pairs = JSON.stringify(checked.map(({ it }) => ({ u: it.recipient, b: it.sender })));
        const found = rowsOf<{ user_id: string; blocked_id: string }>(
          await tx.execute(sql`
            select b.user_id, b.blocked_id from jsonb_to_recordset(${pairs}::jsonb) as k(u text, b text)
              join blocks b on b.user_id = k.u and b.blocked_id = k.b`),
        );
        const blocked = new Set(found.map((b) => `${b.user_id}\u0000${b.blocked_id}`));
        for (const { it, i } of checked) if (blocked.has(`${it.recipient}\u0000${it.sender}`)) results[i] = { refused: "blocked" };
      }

      let fresh = items.map((it, i) => ({ it, i })).filter(({ i }) => !results[i]);
      /** each touched conversation's last seq, read under its row lock */
      const next = new Map<string, number>();
      if (fresh.length) {
        // 3. Lock the touched conversation rows in id order and read their last seq (and, for containers,
        // their owner). Direct chats are created by their first message: missing ones are inserted (with
        // members), then locked too.
        const convIds = [...new Set(fresh.map(({ it }) => it.conv))].sort();
        const lock = async (ids: string[]) =>
          rowsOf<{ id: string; last_seq: string | number; owner: string | null }>(
            await tx.execute(sql`
              select c.id, c.last_seq, case when c.kind = 'container' then c.owner_id end as owner from conversations c
               where c.id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))
               order by c.id for update`),
          );
        const locked = await lock(convIds);
        for (const r of locked) next.set(r.id, Number(r.last_seq));
        const creates = new Map<string, { kind: string; members: string[] }>();
        for (const { it } of fresh) if (!next.has(it.conv) && it.create && !creates.has(it.conv)) creates.set(it.conv, it.create);
        if (creates.size) {
          // In id order too, so two batches creating the same chats wait for each other, never in a cycle.
          const made = [...creates].sort(([a], [b]) => (a < b ? -1 : 1));
          await tx
            .insert(conversations)
            .values(made.map(([id, c]) => ({ id, kind: c.kind })))
            .onConflictDoNothing();
          await tx
            .insert(members)
            .values(made.flatMap(([id, c]) => c.members.map((userId) => ({ convId: id, userId }))))
            .onConflictDoNothing();
          for (const r of await lock(made.map(([id]) => id))) next.set(r.id, Number(r.last_seq));
        }
        for (const id of convIds) if (!next.has(id)) throw new Error(`conversation ${id} does not exist`);

        // 3b. Blacklist of container conversations: the owner (the serving agent) who blocked the sender
        // refuses its messages. The owner was read under the row lock: a transfer cannot slip in between.
        const owners = new Map(locked.filter((r) => r.owner !== null).map((r) => [r.id, r.owner!]));
        const toOwner = fresh.filter(({ it }) => owners.has(it.conv) && owners.get(it.conv) !== it.sender);
        if (toOwner.length) {
          const pairs = JSON.stringify(toOwner.map(({ it }) => ({ u: owners.get(it.conv), b: it.sender })));
          const found = rowsOf<{ user_id: string; blocked_id: string }>(
            await tx.execute(sql`
              select b.user_id, b.blocked_id from jsonb_to_recordset(${pairs}::jsonb) as k(u text, b text)
                join blocks b on b.user_id = k.u and b.blocked_id = k.b`),
          );
          const blocked = new Set(found.map((b) => `${b.user_id}\u0000${b.blocked_id}`));
          for (const { it, i } of toOwner) if (blocked.has(`${owners.get(it.conv)}\u0000${it.sender}`)) results[i] = { refused: "blocked" };
          fresh = fresh.filter(({ i }) => !results[i]);
        }
      }

      if (fresh.length) {
        const counts = new Map<string, number>();
        const lastAt = new Map<string, Date>();
        for (const { it } of fresh) {
          counts.set(it.conv, (counts.get(it.conv) ?? 0) + 1);
          lastAt.set(it.conv, it.at);
        }
        const convIds = [...counts.keys()].sort();

        // 4. Reserve the seq ranges.
        const ranges = JSON.stringify(convIds.map((id) => ({ id, s: next.get(id)! + counts.get(id)!, t: lastAt.get(id)!.toISOString() })));
        await tx.execute(sql`
          update conversations as c set last_seq = v.s, last_msg_at = v.t
            from jsonb_to_recordset(${ranges}::jsonb) as v(id text, s bigint, t timestamptz) where c.id = v.id`);

        // 5. One insert of the whole batch.
        const rows = fresh.map(({ it }) => {
          const seq = next.get(it.conv)! + 1;
          next.set(it.conv, seq);
          return { id: it.id, convId: it.conv, seq, senderId: it.sender, kind: it.kind, body: it.body, clientMsgId: it.cmid ?? null, createdAt: it.at };
        });
        const payload = JSON.stringify(
          rows.map((r) => ({ i: r.id.toString(), c: r.convId, q: r.seq, s: r.senderId, k: r.kind, b: r.body ?? null, m: r.clientMsgId, t: r.createdAt.toISOString() })),
        );
        await tx.execute(sql`
          insert into messages (id, conv_id, seq, sender_id, kind, body, client_msg_id, created_at)
          select i, c, q, s, k, coalesce(b, 'null'::jsonb), m, t from jsonb_to_recordset(${payload}::jsonb)
            as x(i bigint, c text, q bigint, s text, k text, b jsonb, m text, t timestamptz)`);
        fresh.forEach(({ i }, k) => (results[i] = { msg: toMessage({ ...rows[k]!, recalledAt: null }), dup: false }));

        // 6. The sender's own latest seq per conversation ("awaiting reply" is derived from it).
        const sent = new Map<string, { c: string; u: string; s: number }>();
        for (const r of rows) sent.set(`${r.convId}\u0000${r.senderId}`, { c: r.convId, u: r.senderId, s: r.seq });
        await tx.execute(sql`
          update members as m set last_sent_seq = greatest(m.last_sent_seq, v.s)
            from jsonb_to_recordset(${JSON.stringify([...sent.values()])}::jsonb) as v(c text, u text, s bigint)
           where m.conv_id = v.c and m.user_id = v.u`);
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

  /**
   * Messages above the user's delivered cursor written by others, in (conversation, seq) order:
   * what an offline client has not yet confirmed. `after` pages without moving the cursor.
   */
  async pending(
    userId: string,
    opts: { conv?: string; limit: number; after?: { conv: string; seq: number } },
  ): Promise<Message[]> {
    return (await prepared<RawMessage>(this.db, pendingPage(userId, opts))).map(fromRaw);
  }

  /**
   * Pull and mark delivered in one statement: the page of `pending` (up to `limit` + 1 rows: the extra one,
   * not marked, tells whether more wait) and, in the same statement, every conversation's delivered cursor moved to
   * the highest seq of the first `limit` rows. Returns the page and the cursors' new values.
   */
  async pull(userId: string, opts: { conv?: string; limit: number }): Promise<{ msgs: Message[]; moved: Map<string, number> }> {
    const rows = await prepared<RawMessage & { rn: number | string; moved: [string, number | string][] | string | null }>(
      this.db,
      sql`
        with page as (${pendingPage(userId, { conv: opts.conv, limit: opts.limit + 1 }, true)}),
        top as (select conv_id, max(seq) as s from page where rn <= ${opts.limit} group by conv_id),
        moved as (
          update members as mb set delivered_seq = greatest(mb.delivered_seq, top.s)
            from top where mb.conv_id = top.conv_id and mb.user_id = ${userId}
          returning mb.conv_id, mb.delivered_seq)
        select page.*, case when page.rn = 1 then (select json_agg(json_build_array(conv_id, delivered_seq)) from moved) end as moved
          from page order by page.rn`,
    );
    const first = rows[0]?.moved;
    const pairs = (typeof first === "string" ? JSON.parse(first) : first ?? []) as [string, number | string][];
    return { msgs: rows.map(fromRaw), moved: new Map(pairs.map(([c, v]) => [c, Number(v)])) };
  }

  async history(convId: string, q: HistoryQuery): Promise<Message[]> {
    const conds: SQL[] = [eq(messages.convId, convId)];
    if (q.beforeSeq !== undefined) conds.push(lt(messages.seq, q.beforeSeq));
    if (q.afterSeq !== undefined) conds.push(gt(messages.seq, q.afterSeq));
    if (q.from) conds.push(gte(messages.createdAt, q.from));
    if (q.to) conds.push(lte(messages.createdAt, q.to));
    const rows = await this.db
      .select()
      .from(messages)
      .where(and(...conds))
      .orderBy(q.desc ? desc(messages.seq) : asc(messages.seq))
      .limit(q.limit);
    return rows.map(toMessage);
  }
}
