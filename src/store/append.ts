// The group-commit writer's store function (the core's AppendBatch): a batch of messages in one statement, the
// function chat_append (drizzle/0006_append_keyed_conversations.sql), so a batch costs one round trip.
import { sql } from "drizzle-orm";
import type { AppendStages } from "../core/ports.ts";
import type { AppendItem, AppendResult } from "../core/records.ts";
import { fromPulled, message, type PulledRow } from "./message-rows.ts";
import { built, run, type Db } from "./db.ts";
import type { PartitionInterval } from "./partitions.ts";

/** What chat_append answers per item (see its migration). */
type Outcome = [n: number, st: "f", seq: number, at: number] | [n: number, st: "d", row: PulledRow] | [n: number, st: "b" | "m"];

type Creates = Map<string, { kind: string; members: string[] }>;

/**
 * Appends a batch in one statement: retried client ids resolve to their first message, each conversation's
 * seq range is reserved under its row lock (taken in id order, so concurrent batches from other nodes cannot
 * deadlock), then one multi-row INSERT. Nothing is visible before the commit, and a failed batch consumes no seq.
 *
 * Blacklist: a 1:1 message (`recipient`) is refused when the recipient blocked the sender; a message in
 * a container conversation (desk guests, rooms containers) when the conversation's owner — the agent
 * serving it — blocked the sender. Both are read after the row lock was taken, so neither a block nor a
 * transfer committed before the message can be bypassed.
 *
 * `db` is the connection the writer's batches travel on, in order (OpenDb.appendDb): a batch is sent at once
 * and `stages.sent` is called, so the writer may send the next one behind it; `stages.after` makes that one
 * fail unless this one committed. `pool` serves everything else.
 *
 * Direct chats are created by their first message, but never inside the batch's statement: inserting a
 * conversation waits for any other transaction inserting the same id, and doing that while holding the
 * batch's row locks closes a cycle with a batch on another node that locked those rows first and is now
 * creating the same chat (both halves of a pair sending their first message at once). So when the batch
 * finds direct chats missing, it writes nothing, the chats are created (with their members) in a short
 * transaction of their own, in id order, and the batch runs again, now finding them all.
 */
export async function appendBatch(
  db: Db,
  pool: Db,
  items: AppendItem[],
  stages: AppendStages = {},
  interval: PartitionInterval = "month",
): Promise<AppendResult[]> {
  // A retry is the same client id from the same sender in the same conversation: the id is the client's, and
  // clients make them per conversation, so a reuse elsewhere is a new message. Repeats inside the batch are
  // not sent: each takes the result of its first occurrence.
  const first = new Map<string, number>();
  const repeatOf: number[] = new Array(items.length);
  const sent: number[] = [];
  items.forEach((it, i) => {
    const key = it.cmid ? `${it.conv}\u0000${it.sender}\u0000${it.cmid}` : undefined;
    const f = key === undefined ? undefined : first.get(key);
    if (f !== undefined) repeatOf[i] = f;
    else {
      if (key !== undefined) first.set(key, i);
      sent.push(i);
    }
  });
  let out = await appendOnce(db, items, sent, stages, interval);
  if (out instanceof Map) {
    await createDirectChats(pool, out);
    out = await appendOnce(db, items, sent, {}, interval);
    if (out instanceof Map) throw new Error(`conversation ${[...out.keys()][0]} does not exist`);
  }
  const results = out;
  items.forEach((_, i) => {
    const f = repeatOf[i];
    if (f === undefined) return;
    const r = results[f]!;
    results[i] = r.refused ? r : { msg: r.msg, dup: true };
  });
  return results as AppendResult[];
}

const APPEND = built(
  sql`select chat_append(${sql.placeholder("items")}::text::jsonb, ${sql.placeholder("interval")}::text, ${sql.placeholder("batch")}::bigint, ${sql.placeholder("after")}::bigint)::text as r`,
);

/** One attempt: the results of the items sent, or the direct chats that must be created first (nothing was written). */
async function appendOnce(db: Db, items: AppendItem[], sent: number[], stages: AppendStages, interval: PartitionInterval): Promise<(AppendResult | undefined)[] | Creates> {
  const payload = JSON.stringify(
    sent.map((i, n) => {
      const it = items[i]!;
      return { n, i: it.id.toString(), c: it.conv, s: it.sender, k: it.kind, b: it.body ?? null, m: it.cmid ?? null, t: it.at.toISOString(), r: it.recipient ?? null };
    }),
  );
  const pending = run<{ r: string }>(db, APPEND, { items: payload, interval, batch: stages.batch ?? null, after: stages.after ?? null });
  stages.sent?.();
  const [row] = await pending;
  const results: (AppendResult | undefined)[] = new Array(items.length);
  const creates: Creates = new Map();
  let unknown: string | undefined;
  for (const o of JSON.parse(row!.r) as Outcome[]) {
    const i = sent[o[0]]!;
    const it = items[i]!;
    if (o[1] === "f") {
      results[i] = { msg: message(it.id.toString(), it.conv, o[2], it.sender, it.kind, it.body, it.cmid ?? null, o[3], false), dup: false };
    } else if (o[1] === "d") results[i] = { msg: fromPulled(o[2]), dup: true };
    else if (o[1] === "b") results[i] = { refused: "blocked" };
    else if (it.create) creates.set(it.conv, it.create);
    else unknown ??= it.conv;
  }
  if (creates.size) return creates;
  if (unknown !== undefined) throw new Error(`conversation ${unknown} does not exist`);
  return results;
}

/** Creates missing direct chats with their members, committed on their own (see appendBatch). */
async function createDirectChats(db: Db, creates: Creates): Promise<void> {
  const made = [...creates].sort(([a], [b]) => (a < b ? -1 : 1));
  const convRows = JSON.stringify(made.map(([id, c]) => ({ id, k: c.kind })));
  const memberRows = JSON.stringify(made.flatMap(([id, c]) => c.members.map((u) => ({ c: id, u }))));
  await db.transaction(async (tx) => {
    await tx.execute(sql`insert into conversations (id, kind) select x.id, x.k from jsonb_to_recordset(${convRows}::jsonb) as x(id text, k text)
           order by x.id on conflict do nothing`);
    await tx.execute(sql`insert into members (conv_id, user_id) select x.c, x.u from jsonb_to_recordset(${memberRows}::jsonb) as x(c text, u text)
           order by x.c, x.u on conflict do nothing`);
  });
}
