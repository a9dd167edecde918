// The chat store: users, conversations and messages, one implementation per port (users.ts,
// conversations.ts, messages.ts), joined into one object for the services that read more than one of them.
import { sql } from "drizzle-orm";
import type { AppendStages, ChatStore, Conversations, Messages, Users } from "../core/ports.ts";
import type { AppendItem, HistoryQuery, NewConversation, UserInput } from "../core/records.ts";
import type { Db } from "./db.ts";

export class Store implements ChatStore {
  private readonly users: Users;
  private readonly conversations: Conversations;
  private readonly messages: Messages;

  constructor(
    readonly db: Db,
    parts: { users: Users; conversations: Conversations; messages: Messages },
  ) {
    ({ users: this.users, conversations: this.conversations, messages: this.messages } = parts);
  }

  /** One `select 1` (the health check's probe). */
  async ping(): Promise<void> {
    await this.db.execute(sql`select 1`);
  }

  getUser(id: string) {
    return this.users.getUser(id);
  }
  getUsers(ids: string[]) {
    return this.users.getUsers(ids);
  }
  upsertUser(u: UserInput) {
    return this.users.upsertUser(u);
  }

  getConversation(id: string) {
    return this.conversations.getConversation(id);
  }
  createConversation(c: NewConversation, memberRoles: Record<string, string>) {
    return this.conversations.createConversation(c, memberRoles);
  }
  getMember(convId: string, userId: string) {
    return this.conversations.getMember(convId, userId);
  }
  memberIds(convId: string) {
    return this.conversations.memberIds(convId);
  }

  appendBatch(items: AppendItem[], stages?: AppendStages) {
    return this.messages.appendBatch(items, stages);
  }
  pending(userId: string, opts: { conv?: string; limit: number; after?: { conv: string; seq: number } }) {
    return this.messages.pending(userId, opts);
  }
  pull(userId: string, opts: { conv?: string; limit: number }) {
    return this.messages.pull(userId, opts);
  }
  history(convId: string, q: HistoryQuery) {
    return this.messages.history(convId, q);
  }
  advanceCursor(userId: string, convId: string, field: "delivered" | "read", seq: number) {
    return this.messages.advanceCursor(userId, convId, field, seq);
  }
  advanceCursors(userId: string, field: "delivered" | "read", to: { conv: string; seq: number }[]) {
    return this.messages.advanceCursors(userId, field, to);
  }
  advancePushed(userId: string, pushed: { conv: string; seqs: readonly number[] }[]) {
    return this.messages.advancePushed(userId, pushed);
  }
  advancePulled(marks: readonly { user: string; conv: string; seq: number }[]) {
    return this.messages.advancePulled(marks);
  }
}
