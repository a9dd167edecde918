// Customer-service desk records (agent groups, agents) and the one transaction that hands a guest's
// conversation from one agent to another (or to its first agent).
import { and, asc, eq, sql } from "drizzle-orm";
import { deskConvId } from "../core/conv-ids.ts";
import { storableText } from "../core/storable.ts";
import type { Db } from "./db.ts";
import type { DeskRecords } from "../core/ports.ts";
import type { DeskAgentRow, DeskGroupRow } from "../core/records.ts";
import { conversations, deskAgents, deskGroups, members } from "./schema.ts";

export class DeskStore implements DeskRecords {
  constructor(readonly db: Db) {}

  async putGroup(g: { id: string; name?: string; disabled?: boolean }): Promise<DeskGroupRow> {
    storableText(g.id, "`id`");
    storableText(g.name, "`name`");
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
    storableText(id, "`group`");
    const [row] = await this.db.select().from(deskGroups).where(eq(deskGroups.id, id));
    return row;
  }

  groups(): Promise<DeskGroupRow[]> {
    return this.db.select().from(deskGroups).orderBy(asc(deskGroups.id));
  }

  async putAgent(a: { userId: string; groupId?: string; capacity?: number; disabled?: boolean }): Promise<DeskAgentRow | undefined> {
    storableText(a.userId, "`user`");
    storableText(a.groupId, "`group`");
    const set: Partial<DeskAgentRow> = {};
    if (a.groupId !== undefined) set.groupId = a.groupId;
    if (a.capacity !== undefined) set.capacity = a.capacity;
    if (a.disabled !== undefined) set.disabled = a.disabled;
    if (a.groupId === undefined) {
      // Nothing to change (an empty PUT): the record as it is.
      if (Object.keys(set).length === 0) return this.agent(a.userId);
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

  /** An agent's record with its group's, in one read (every request of a logged-in agent checks both). */
  async agentWithGroup(userId: string): Promise<{ agent: DeskAgentRow; group: DeskGroupRow | null } | undefined> {
    const [row] = await this.db
      .select({ agent: deskAgents, group: deskGroups })
      .from(deskAgents)
      .leftJoin(deskGroups, eq(deskGroups.id, deskAgents.groupId))
      .where(eq(deskAgents.userId, userId));
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
   * Hands the guest's conversation to `to`, in one transaction on its locked row: the owner moves only
   * when `version` is newer than the routing decision that moved it last (a decision reaching the store
   * late cannot undo a later one) and, with `from` given, only if the owner is still `from` (of two
   * concurrent transfers one loses). The old agent's membership goes and the new agent's takes over its
   * cursors — so the unread state moves with the guest. A first agent (no owner before) starts at zero:
   * everything the guest wrote is unread. False when nothing moved.
   */
  async handOver(guest: string, to: string, version: number, from?: string): Promise<boolean> {
    const id = deskConvId(guest);
    return this.db.transaction(async (tx) => {
      const [row] = await tx
        .select({ owner: conversations.ownerId, attributes: conversations.attributes })
        .from(conversations)
        .where(eq(conversations.id, id))
        .for("update");
      if (!row) return false;
      const last = Number((row.attributes as { routeVersion?: unknown } | null)?.routeVersion ?? 0);
      if (!(version > last) || (from !== undefined && row.owner !== from)) return false;
      await tx
        .update(conversations)
        .set({ ownerId: to, attributes: sql`${conversations.attributes} || ${JSON.stringify({ routeVersion: version })}::jsonb` })
        .where(eq(conversations.id, id));
      let cursors = { deliveredSeq: 0, readSeq: 0, lastSentSeq: 0 };
      if (row.owner !== null && row.owner !== to) {
        const [old] = await tx
          .delete(members)
          .where(and(eq(members.convId, id), eq(members.userId, row.owner)))
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
