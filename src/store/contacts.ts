// A user's direct conversations with their counters: the chat list ("contacts") of protocols that show one.
import { sql } from "drizzle-orm";
import { rowsOf, type Db } from "./db.ts";

export interface ContactRow {
  conv: string;
  peer: string;
  nick: string;
  avatar: string;
  attributes: Record<string, unknown>;
  lastSeq: number;
  lastMsgAt: number | null;
  /** others' messages above the user's read cursor (recalled ones excluded) */
  unread: number;
  /** the peer wrote after the user's own latest message */
  awaiting: boolean;
}

/** Direct conversations of `userId` that hold at least one message, most recent first. */
export async function contactsOf(db: Db, userId: string): Promise<ContactRow[]> {
  const res = await db.execute(sql`
    select m.conv_id, o.user_id as peer, coalesce(u.nick, '') as nick, coalesce(u.avatar, '') as avatar,
           coalesce(u.attributes, '{}'::jsonb) as attributes, c.last_seq, c.last_msg_at,
           m.last_sent_seq < c.last_seq as awaiting,
           (select count(*) from messages x
             where x.conv_id = m.conv_id and x.seq > m.read_seq and x.sender_id <> m.user_id and x.recalled_at is null)::int as unread
      from members m
      join conversations c on c.id = m.conv_id and c.kind = 'direct' and c.last_seq > 0
      join members o on o.conv_id = m.conv_id and o.user_id <> m.user_id
      left join users u on u.id = o.user_id
     where m.user_id = ${userId}
     order by c.last_msg_at desc nulls last`);
  return rowsOf<Record<string, unknown>>(res).map((r) => ({
    conv: r.conv_id as string,
    peer: r.peer as string,
    nick: r.nick as string,
    avatar: r.avatar as string,
    attributes: (typeof r.attributes === "string" ? JSON.parse(r.attributes) : r.attributes) as Record<string, unknown>,
    lastSeq: Number(r.last_seq),
    lastMsgAt: r.last_msg_at ? new Date(r.last_msg_at as string).getTime() : null,
    unread: Number(r.unread),
    awaiting: Boolean(r.awaiting),
  }));
}

/** Ids of the conversations of one kind the user belongs to. */
export async function convsOf(db: Db, userId: string, kind: string): Promise<string[]> {
  const res = await db.execute(sql`
    select m.conv_id from members m join conversations c on c.id = m.conv_id and c.kind = ${kind}
     where m.user_id = ${userId} order by m.conv_id`);
  return rowsOf<{ conv_id: string }>(res).map((r) => r.conv_id);
}
