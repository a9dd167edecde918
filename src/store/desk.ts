// Customer-service desk records (agent groups, agents) and the one transaction that hands a guest's
// conversation from one agent to another (or to its first agent).
import { and, asc, eq, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import { conversations, deskAgents, deskGroups, members } from "./schema.ts";

export type DeskGroupRow = typeof deskGroups.$inferSelect;
export type DeskAgentRow = typeof deskAgents.$inferSelect;

export const deskConvId = (guest: string) => `c:desk:${guest}`;
export const guestOf = (conv: string) => (conv.startsWith("c:desk:") ? conv.slice(7) : undefined);

export class DeskStore {
  constructor(readonly db: Db) {}

  async putGroup(g: { id: string; name?: string; disabled?: boolean }): Promise<DeskGroupRow> {
    const set: Partial<DeskGroupRow> = {};
    if (g.name !== undefined) set.name = g.name;
    if (g.disabled !== undefined) set.disabled = g.disabled;
    const [row] = await this.db
      .insert(deskGroups)
      .values({ id: g.id, name: g.name ?? "", disabled: g.disabled ?? false })
      .onConflictDoUpdate({ target: deskGroups.id, set: Object.keys(set).length ? set : { id: g.id } })
      .returning();
    return row!;
  }

  async group(id: string): Promise<DeskGroupRow | undefined> {
    const [row] = await this.db.select().from(deskGroups).where(eq(deskGroups.id, id));
    return row;
  }

  groups(): Promise<DeskGroupRow[]> {
    return this.db.select().from(deskGroups).orderBy(asc(deskGroups.id));
  }

  async putAgent(a: { userId: string; groupId?: string; capacity?: number; disabled?: boolean }): Promise<DeskAgentRow | undefined> {
    const set: Partial<DeskAgentRow> = {};
    if (a.groupId !== undefined) set.groupId = a.groupId;
    if (a.capacity !== undefined) set.capacity = a.capacity;
    if (a.disabled !== undefined) set.disabled = a.disabled;
    if (a.groupId === undefined) {
      const [row] = await this.db.update(deskAgents).set(set).where(eq(deskAgents.userId, a.userId)).returning();
      return row;
    }
    const [row] = await this.db
      .insert(deskAgents)
      .values({ userId: a.userId, groupId: a.groupId, capacity: a.capacity ?? 10, disabled: a.disabled ?? false })
      .onConflictDoUpdate({ target: deskAgents.userId, set })
      .returning();
    return row;
  }

  async agent(userId: string): Promise<DeskAgentRow | undefined> {
    const [row] = await this.db.select().from(deskAgents).where(eq(deskAgents.userId, userId));
    return row;
  }

  agents(groupId?: string): Promise<DeskAgentRow[]> {
    const q = this.db.select().from(deskAgents);
    return (groupId ? q.where(eq(deskAgents.groupId, groupId)) : q).orderBy(asc(deskAgents.userId));
  }

  /** The guest's conversation, created (guest as its only member) when it is new; `group` is updated. */
  async guestConversation(guest: string, group: string) {
    const id = deskConvId(guest);
    await this.db.transaction(async (tx) => {
      await tx
        .insert(conversations)
        .values({ id, kind: "container", subtype: "desk", attributes: { group } })
        .onConflictDoUpdate({ target: conversations.id, set: { attributes: sql`${conversations.attributes} || ${JSON.stringify({ group })}::jsonb` } });
      await tx.insert(members).values({ convId: id, userId: guest, role: "member" }).onConflictDoNothing();
    });
    const [row] = await this.db.select().from(conversations).where(eq(conversations.id, id));
    return row!;
  }

  /**
   * Hands the guest's conversation to `to`, in one transaction: the owner moves only if it is still `from`
   * (a concurrent hand-over loses), the old agent's membership goes, and the new agent's membership takes
   * over the old agent's cursors — so the unread state moves with the guest. A first agent (`from` null)
   * starts at zero: everything the guest wrote is unread. False when the owner was not `from`.
   */
  async handOver(guest: string, from: string | null, to: string): Promise<boolean> {
    const id = deskConvId(guest);
    return this.db.transaction(async (tx) => {
      const moved = await tx
        .update(conversations)
        .set({ ownerId: to })
        .where(and(eq(conversations.id, id), from === null ? sql`owner_id is null` : eq(conversations.ownerId, from)))
        .returning({ id: conversations.id });
      if (!moved.length) return false;
      let cursors = { deliveredSeq: 0, readSeq: 0, lastSentSeq: 0 };
      if (from !== null && from !== to) {
        const [old] = await tx
          .delete(members)
          .where(and(eq(members.convId, id), eq(members.userId, from)))
          .returning({ deliveredSeq: members.deliveredSeq, readSeq: members.readSeq, lastSentSeq: members.lastSentSeq });
        if (old) cursors = old;
      }
      await tx
        .insert(members)
        .values({ convId: id, userId: to, role: "agent", ...cursors })
        .onConflictDoNothing();
      return true;
    });
  }
}
