// Messages by id (receipts given as message ids) and a user's 1:1 messages page by page (a service account's
// inbox and outbox, core/service-accounts.ts).
import { and, count, desc, eq, inArray, like, ne } from "drizzle-orm";
import type { MessageIndex } from "../core/ports.ts";
import type { Message } from "../core/types.ts";
import type { Db } from "./db.ts";
import { toMessage } from "./message-rows.ts";
import { members, messages } from "./schema.ts";

export class MessageIndexStore implements MessageIndex {
  constructor(private readonly db: Db) {}

  async byIds(ids: bigint[]): Promise<Message[]> {
    if (!ids.length) return [];
    const rows = await this.db.select().from(messages).where(inArray(messages.id, ids));
    return rows.map(toMessage);
  }

  async directPage(user: string, q: { sent: boolean; conv?: string; offset: number; limit: number }): Promise<{ total: number; msgs: Message[] }> {
    const where = and(
      q.conv ? eq(messages.convId, q.conv) : like(messages.convId, "d:%"),
      q.sent ? eq(messages.senderId, user) : ne(messages.senderId, user),
    );
    const from = this.db
      .select({ m: messages })
      .from(messages)
      .innerJoin(members, and(eq(members.convId, messages.convId), eq(members.userId, user)));
    const [rows, [n]] = await Promise.all([
      from.where(where).orderBy(desc(messages.id)).limit(q.limit).offset(q.offset),
      this.db
        .select({ n: count() })
        .from(messages)
        .innerJoin(members, and(eq(members.convId, messages.convId), eq(members.userId, user)))
        .where(where),
    ]);
    return { total: Number(n?.n ?? 0), msgs: rows.map((r) => toMessage(r.m)) };
  }
}
