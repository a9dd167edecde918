// A user's conversation list ("inbox"): every conversation the user belongs to, with its last message,
// the unread count and "awaiting my reply", all computed from the cursors (nothing counted by hand).
import { sql, type SQL } from "drizzle-orm";
import type { Message } from "../core/types.ts";
import { rowsOf, type Db } from "./db.ts";
import type { Inboxes } from "../core/ports.ts";
import type { InboxQuery, InboxRow } from "../core/records.ts";
import { toMessage } from "./message-rows.ts";
import { inPartitions } from "./partitions.ts";

const json = (v: unknown) => JSON.parse(v as string) as Record<string, unknown>;
const ms = (v: unknown) => (v ? new Date(v as string).getTime() : null);

/** A user's conversation list and the last messages of conversations. */
export class InboxStore implements Inboxes {
  constructor(private readonly db: Db) {}

  /** The statement of a conversation list page (its plan is checked by the tests). */
  inboxQuery(userId: string, q: InboxQuery): SQL {
    const conds: SQL[] = [sql`m.user_id = ${userId}`];
    if (q.kind) conds.push(sql`c.kind = ${q.kind}`);
    if (q.since !== undefined) conds.push(sql`c.last_msg_at >= ${new Date(q.since).toISOString()}::timestamptz`);
    if (q.before !== undefined) conds.push(sql`c.last_msg_at < ${new Date(q.before).toISOString()}::timestamptz`);
    if (q.awaiting) conds.push(sql`m.last_sent_seq < c.last_seq`);
    if (!q.empty) conds.push(sql`c.last_seq > 0`);
    return sql`
      select c.id, c.kind, c.subtype, c.name, c.avatar, c.last_seq, c.last_msg_at,
             m.role, m.muted_until, m.delivered_seq, m.read_seq,
             m.last_sent_seq < c.last_seq as awaiting,
             (select count(*) from messages x
               where x.conv_id = m.conv_id and x.seq > m.read_seq and x.sender_id <> m.user_id and x.recalled_at is null
                 and ${inPartitions(sql`x.created_at`, sql`c`, sql`m.read_seq + 1`)})::int as unread,
             p.user_id as peer, coalesce(u.nick, '') as peer_nick, coalesce(u.avatar, '') as peer_avatar,
             coalesce(u.attributes, '{}'::jsonb)::text as peer_attributes,
             l.id as l_id, l.sender_id as l_sender, l.kind as l_kind, l.body::text as l_body, l.client_msg_id as l_cmid,
             l.created_at as l_at, l.recalled_at as l_recalled
        from members m
        join conversations c on c.id = m.conv_id
        left join members p on c.kind = 'direct' and p.conv_id = m.conv_id and p.user_id <> m.user_id
        left join users u on u.id = p.user_id
        left join messages l on l.conv_id = c.id and l.seq = c.last_seq and ${inPartitions(sql`l.created_at`, sql`c`, sql`c.last_seq`)}
       where ${sql.join(conds, sql` and `)}
       order by c.last_msg_at desc nulls last, c.id
       limit ${q.limit}`;
  }

  async inboxOf(userId: string, q: InboxQuery): Promise<InboxRow[]> {
    const res = await this.db.execute(this.inboxQuery(userId, q));
    return rowsOf<Record<string, unknown>>(res).map((r) => {
      const direct = r.kind === "direct" && r.peer;
      const recalled = r.l_recalled != null;
      const row: InboxRow = {
        conv: r.id as string,
        kind: r.kind as string,
        subtype: (r.subtype as string | null) ?? null,
        name: direct ? (r.peer_nick as string) : (r.name as string),
        avatar: direct ? (r.peer_avatar as string) : (r.avatar as string),
        role: r.role as string,
        mutedUntil: ms(r.muted_until) !== null && ms(r.muted_until)! > Date.now() ? ms(r.muted_until) : null,
        lastSeq: Number(r.last_seq),
        lastMsgAt: ms(r.last_msg_at),
        deliveredSeq: Number(r.delivered_seq),
        readSeq: Number(r.read_seq),
        unread: Number(r.unread),
        awaiting: Boolean(r.awaiting),
      };
      if (direct) {
        row.peer = { id: r.peer as string, nick: r.peer_nick as string, avatar: r.peer_avatar as string, attributes: json(r.peer_attributes) };
      }
      if (r.l_id != null) {
        const last: Message = {
          id: String(r.l_id),
          conv: row.conv,
          seq: row.lastSeq,
          from: r.l_sender as string,
          kind: r.l_kind as string,
          body: recalled ? null : JSON.parse(r.l_body as string),
          ts: ms(r.l_at)!,
        };
        if (r.l_cmid) last.cmid = r.l_cmid as string;
        if (recalled) last.recalled = true;
        row.last = last;
      }
      return row;
    });
  }

  /**
   * The last `n` messages of each of the conversations, newest first (recalled ones included, flagged), in one
   * statement: one index range scan of (conv_id, seq) per conversation through a lateral join.
   */
  async lastMessagesOf(convs: string[], n: number): Promise<Map<string, Message[]>> {
    const out = new Map<string, Message[]>();
    if (!convs.length) return out;
    const res = await this.db.execute(sql`
      select x.id::text as id, x.conv_id, x.seq, x.sender_id, x.kind, x.body::text as body, x.client_msg_id, x.created_at, x.recalled_at
        from jsonb_array_elements_text(${JSON.stringify(convs)}::jsonb) as v(id)
        join conversations c on c.id = v.id
       cross join lateral (
         select m.* from messages m
          where m.conv_id = c.id and ${inPartitions(sql`m.created_at`, sql`c`, sql`c.last_seq - ${n}::bigint + 1`)}
          order by m.seq desc limit ${n}
       ) x
       order by x.conv_id, x.seq desc`);
    for (const r of rowsOf<Record<string, unknown>>(res)) {
      const m = toMessage({
        id: BigInt(r.id as string),
        convId: r.conv_id as string,
        seq: Number(r.seq),
        senderId: r.sender_id as string,
        kind: r.kind as string,
        body: JSON.parse(r.body as string),
        clientMsgId: (r.client_msg_id as string | null) ?? null,
        createdAt: new Date(r.created_at as string),
        recalledAt: r.recalled_at ? new Date(r.recalled_at as string) : null,
      });
      let list = out.get(m.conv);
      if (!list) out.set(m.conv, (list = []));
      list.push(m);
    }
    return out;
  }
}
