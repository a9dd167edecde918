// Conversations and their members (the core's Conversations port).
import { and, eq } from "drizzle-orm";
import type { Conversations } from "../core/ports.ts";
import type { ConversationRow, MemberRow, NewConversation } from "../core/records.ts";
import type { Db } from "./db.ts";
import { conversations, members } from "./schema.ts";

export class ConversationStore implements Conversations {
  constructor(private readonly db: Db) {}

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
}
