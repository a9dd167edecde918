// The group-commit writer's store function (the core's AppendBatch): a batch of messages in one transaction.
import { sql } from "drizzle-orm";
import type { AppendItem, AppendResult } from "../core/records.ts";
import type { Message } from "../core/types.ts";
import { rowsOf, type Db } from "./db.ts";
import { fromRaw, toMessage, type RawMessage } from "./message-rows.ts";
import { conversations, members } from "./schema.ts";

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
export async function appendBatch(db: Db, items: AppendItem[]): Promise<AppendResult[]> {
  return db.transaction(async (tx) => {
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
