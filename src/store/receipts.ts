// "Delivered to N / read by N" of messages, computed from the members' cursors.
import { sql } from "drizzle-orm";
import { rowsOf, type Db } from "./db.ts";
import type { ReceiptQueries } from "../core/ports.ts";
import type { ReceiptRow } from "../core/records.ts";
import { inPartitionsOf } from "./partitions.ts";

/** Delivered/read counts and readers of messages, from the members' cursors. */
export class ReceiptStore implements ReceiptQueries {
  constructor(private readonly db: Db) {}

  /** Counts for the messages of `conv` with lo <= seq <= hi (recalled ones left out), optionally of one sender. */
  async receiptCounts(conv: string, lo: number, hi: number, sender?: string): Promise<ReceiptRow[]> {
    const res = await this.db.execute(sql`
      select x.seq, x.sender_id,
             count(*) filter (where m.delivered_seq >= x.seq)::int as delivered,
             count(*) filter (where m.read_seq >= x.seq)::int as read
        from messages x
        left join members m on m.conv_id = x.conv_id and m.user_id <> x.sender_id
       where x.conv_id = ${conv} and x.seq between ${lo} and ${hi} and x.recalled_at is null
         and ${inPartitionsOf(sql`x.created_at`, conv, sql`${lo}::bigint`)}
         ${sender ? sql`and x.sender_id = ${sender}` : sql``}
       group by x.seq, x.sender_id
       order by x.seq`);
    return rowsOf<Record<string, unknown>>(res).map((r) => ({
      seq: Number(r.seq),
      sender: r.sender_id as string,
      delivered: Number(r.delivered),
      read: Number(r.read),
    }));
  }

  /** Members other than the sender whose read cursor reached `seq`. */
  async readersOf(conv: string, seq: number, sender: string, limit = 1000): Promise<string[]> {
    const res = await this.db.execute(sql`
      select user_id from members where conv_id = ${conv} and user_id <> ${sender} and read_seq >= ${seq}
       order by user_id limit ${limit}`);
    return rowsOf<{ user_id: string }>(res).map((r) => r.user_id);
  }
}
