// Finding a user's own message and marking it recalled (its body is hidden from then on, see toMessage).
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import type { RecallRecords } from "../core/ports.ts";
import { messages } from "./schema.ts";
import { toMessage } from "./message-rows.ts";
import type { Message } from "../core/types.ts";

/** A sender's own messages, and hiding a recalled one. */
export class RecallStore implements RecallRecords {
  constructor(private readonly db: Db) {}

  /**
   * The message `sender` wrote with this server id, or with this client id (client ids are unique per
   * conversation: the newest message with it, the only one a recall window can still hold in practice).
   */
  async ownMessage(sender: string, ref: { cmid?: string; id?: bigint }): Promise<Message | undefined> {
    const by = ref.id !== undefined ? eq(messages.id, ref.id) : eq(messages.clientMsgId, ref.cmid ?? "");
    const [row] = await this.db.select().from(messages).where(and(eq(messages.senderId, sender), by)).orderBy(desc(messages.id)).limit(1);
    return row && toMessage(row);
  }

  /** Marks a message recalled; false when it already was. */
  async markRecalled(id: bigint): Promise<boolean> {
    const rows = await this.db
      .update(messages)
      .set({ recalledAt: sql`now()` })
      .where(and(eq(messages.id, id), isNull(messages.recalledAt)))
      .returning({ id: messages.id });
    return rows.length > 0;
  }
}
