// Rooms protocol records (seed 004): its rooms (group conversations `g:rooms:<room>` whose members are the
// users who entered), its customer-service containers (`c:rooms:<id>`: the user side as members, agents as
// `agent` members while they serve it), login accounts per client project, and auto-replies.
import { and, asc, eq, sql } from "drizzle-orm";
import { containerConvId, containerOfConv } from "../core/conv-ids.ts";
import { rowsOf, type Db } from "./db.ts";
import type { ContainerRecords } from "../core/ports.ts";
import type { AutoReplyRow, ContainerAttrs, ContainerRow, OpenResult, RoomsAccountRow } from "../core/records.ts";
import { autoReplies, conversations, members, roomsAccounts } from "./schema.ts";

export class ContainerStore implements ContainerRecords {
  constructor(readonly db: Db) {}

  // ---- rooms ----

  /** The room's conversation, created by its first visitor, and the user as a member from the present on. */
  async enterRoom(conv: string, name: string, userId: string): Promise<void> {
    await this.db.insert(conversations).values({ id: conv, kind: "group", subtype: "rooms", name }).onConflictDoNothing();
    await this.db.execute(sql`
      insert into members (conv_id, user_id, role, delivered_seq, read_seq)
      select ${conv}, ${userId}, 'member', c.last_seq, c.last_seq from conversations c where c.id = ${conv}
      on conflict do nothing`);
  }

  // ---- containers ----

  async container(id: string): Promise<ContainerRow | undefined> {
    const [r] = await this.db
      .select()
      .from(conversations)
      .where(and(eq(conversations.id, containerConvId(id)), eq(conversations.kind, "container"), eq(conversations.subtype, "rooms")));
    return r && { id, conv: r.id, closed: r.closed, attrs: r.attributes as ContainerAttrs, lastSeq: Number(r.lastSeq) };
  }

  /**
   * Opens a container for `by`: a new one (`by` its first member; the caller decides who may create which
   * id), or one `by` belongs to on the user side (a closed one is reopened). `attrs` are merged in.
   */
  async open(id: string, by: string, attrs: ContainerAttrs, mayCreate: boolean): Promise<OpenResult> {
    const conv = containerConvId(id);
    return this.db.transaction(async (tx) => {
      if (mayCreate) {
        const made = await tx
          .insert(conversations)
          .values({ id: conv, kind: "container", subtype: "rooms", ownerId: attrs.accept ?? null, attributes: attrs as Record<string, unknown> })
          .onConflictDoNothing()
          .returning({ id: conversations.id });
        if (made.length) {
          await tx.insert(members).values({ convId: conv, userId: by, role: "member" });
          return "created";
        }
      }
      const [c] = await tx
        .select({ kind: conversations.kind, subtype: conversations.subtype, closed: conversations.closed })
        .from(conversations)
        .where(eq(conversations.id, conv))
        .for("update");
      if (!c || c.kind !== "container" || c.subtype !== "rooms") return "forbidden";
      const [m] = await tx
        .select({ role: members.role })
        .from(members)
        .where(and(eq(members.convId, conv), eq(members.userId, by)));
      if (m?.role !== "member") return "forbidden";
      await tx
        .update(conversations)
        .set({ closed: false, ownerId: attrs.accept ?? sql`owner_id`, attributes: sql`${conversations.attributes} || ${JSON.stringify(attrs)}::jsonb` })
        .where(eq(conversations.id, conv));
      return c.closed ? "reopened" : "open";
    });
  }

  /** Merges attributes (e.g. the seq of the request that opened it). */
  async setAttrs(id: string, attrs: ContainerAttrs): Promise<void> {
    await this.db
      .update(conversations)
      .set({ attributes: sql`${conversations.attributes} || ${JSON.stringify(attrs)}::jsonb` })
      .where(eq(conversations.id, containerConvId(id)));
  }

  /** Adds an agent whose cursors start at `fromSeq`; an agent already in keeps its cursors. True when added. */
  async addAgent(id: string, agent: string, fromSeq: number): Promise<boolean> {
    const rows = await this.db
      .insert(members)
      .values({ convId: containerConvId(id), userId: agent, role: "agent", deliveredSeq: fromSeq, readSeq: fromSeq })
      .onConflictDoNothing()
      .returning({ u: members.userId });
    return rows.length > 0;
  }

  /** Adds user-side members (server API: a container shared by several users). Returns those added. */
  async addUsers(id: string, userIds: string[]): Promise<string[]> {
    if (!userIds.length) return [];
    const rows = await this.db
      .insert(members)
      .values(userIds.map((u) => ({ convId: containerConvId(id), userId: u, role: "member" })))
      .onConflictDoNothing()
      .returning({ u: members.userId });
    return rows.map((r) => r.u);
  }

  /** Closes an open container and takes its agents out, in one transaction. False when it was not open. */
  async close(id: string): Promise<boolean> {
    const conv = containerConvId(id);
    return this.db.transaction(async (tx) => {
      const done = await tx
        .update(conversations)
        .set({ closed: true })
        .where(and(eq(conversations.id, conv), eq(conversations.closed, false)))
        .returning({ id: conversations.id });
      if (!done.length) return false;
      await tx.delete(members).where(and(eq(members.convId, conv), eq(members.role, "agent")));
      return true;
    });
  }

  /** Open containers an agent serves, oldest first, with the roomName each was opened under. */
  async agentContainers(agent: string, limit: number): Promise<{ id: string; conv: string; room?: string }[]> {
    const res = await this.db.execute(sql`
      select c.id, c.attributes ->> 'room' as room from members m join conversations c on c.id = m.conv_id
       where m.user_id = ${agent} and m.role = 'agent' and c.kind = 'container' and c.subtype = 'rooms' and not c.closed
       order by m.joined_at, c.id limit ${limit}`);
    return rowsOf<{ id: string; room: string | null }>(res).map((r) => ({ id: containerOfConv(r.id)!, conv: r.id, room: r.room ?? undefined }));
  }

  // ---- accounts ----

  async account(clientType: string, account: string): Promise<RoomsAccountRow | undefined> {
    const [r] = await this.db
      .select()
      .from(roomsAccounts)
      .where(and(eq(roomsAccounts.clientType, clientType), eq(roomsAccounts.account, account)));
    return r;
  }

  async putAccount(a: { clientType: string; account: string; userId: string; passwordHash: string }): Promise<RoomsAccountRow> {
    const [r] = await this.db
      .insert(roomsAccounts)
      .values(a)
      .onConflictDoUpdate({
        target: [roomsAccounts.clientType, roomsAccounts.account],
        set: { userId: a.userId, passwordHash: a.passwordHash, updatedAt: new Date() },
      })
      .returning();
    return r!;
  }

  async deleteAccount(clientType: string, account: string): Promise<boolean> {
    const rows = await this.db
      .delete(roomsAccounts)
      .where(and(eq(roomsAccounts.clientType, clientType), eq(roomsAccounts.account, account)))
      .returning({ a: roomsAccounts.account });
    return rows.length > 0;
  }

  // ---- auto-replies ----

  async autoReply(code: string): Promise<AutoReplyRow | undefined> {
    const [r] = await this.db.select().from(autoReplies).where(eq(autoReplies.code, code));
    return r;
  }

  autoReplies(): Promise<AutoReplyRow[]> {
    return this.db.select().from(autoReplies).orderBy(asc(autoReplies.code));
  }

  async putAutoReply(r: { code: string; content: string; name?: string; icon?: string }): Promise<AutoReplyRow> {
    const set = { content: r.content, name: r.name ?? "", icon: r.icon ?? "", updatedAt: new Date() };
    const [row] = await this.db
      .insert(autoReplies)
      .values({ code: r.code, ...set })
      .onConflictDoUpdate({ target: autoReplies.code, set })
      .returning();
    return row!;
  }

  async deleteAutoReply(code: string): Promise<boolean> {
    const rows = await this.db.delete(autoReplies).where(eq(autoReplies.code, code)).returning({ c: autoReplies.code });
    return rows.length > 0;
  }
}
