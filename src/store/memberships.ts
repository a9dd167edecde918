// Membership changes beyond the Store's basics: joining with cursors at the present, leaving, roles,
// timed mutes, member lists, and conversation settings.
import { and, asc, eq, inArray, sql } from "drizzle-orm";
import { built, rowsOf, run, type Built, type Db } from "./db.ts";
import type { Memberships } from "../core/ports.ts";
import type { MemberInfo } from "../core/records.ts";
import { conversations, members, users } from "./schema.ts";

/** The statement of `conversationsWithMembers` per conversation kind (a checked literal in it, see there). */
const WITH_MEMBERS = new Map<string, Built>();

/** Membership changes and conversation lists. */
export class MembershipStore implements Memberships {
  constructor(private readonly db: Db) {}

  /**
   * Adds members whose cursors start at the conversation's present: what was written before they joined
   * is history, not unread. Existing members are left as they are. Returns the ids actually added.
   */
  async addMembers(convId: string, roles: Record<string, string>): Promise<string[]> {
    const ids = Object.keys(roles);
    if (!ids.length) return [];
    const res = await this.db.execute(sql`
      insert into members (conv_id, user_id, role, delivered_seq, read_seq)
      select ${convId}, u.id, r.role, c.last_seq, c.last_seq
        from jsonb_each_text(${JSON.stringify(roles)}::jsonb) as r(id, role)
        join users u on u.id = r.id
        join conversations c on c.id = ${convId}
      on conflict do nothing
      returning user_id`);
    return rowsOf<{ user_id: string }>(res).map((r) => r.user_id);
  }

  async removeMember(convId: string, userId: string): Promise<boolean> {
    const rows = await this.db
      .delete(members)
      .where(and(eq(members.convId, convId), eq(members.userId, userId)))
      .returning({ u: members.userId });
    return rows.length > 0;
  }

  async setMemberRole(convId: string, userId: string, role: string): Promise<boolean> {
    const rows = await this.db
      .update(members)
      .set({ role })
      .where(and(eq(members.convId, convId), eq(members.userId, userId)))
      .returning({ u: members.userId });
    return rows.length > 0;
  }

  /**
   * Moves ownership in one transaction: the old owner becomes an admin. The conversation row is locked first,
   * as every writer of a conversation and its members does (a message batch locks it, then updates its
   * senders' member rows): locking the member rows first could deadlock with a batch in the same group. The two
   * member rows are then locked in user order, as every statement updating several member rows takes them
   * (store/messages.ts: a delivered-cursor update of both users could otherwise wait for this in a cycle).
   */
  async transferOwner(convId: string, from: string, to: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.select({ id: conversations.id }).from(conversations).where(eq(conversations.id, convId)).for("update");
      await tx
        .select({ u: members.userId })
        .from(members)
        .where(and(eq(members.convId, convId), inArray(members.userId, [from, to])))
        .orderBy(members.userId)
        .for("update");
      const rows = await tx
        .update(members)
        .set({ role: "owner" })
        .where(and(eq(members.convId, convId), eq(members.userId, to)))
        .returning({ u: members.userId });
      if (!rows.length) return false;
      await tx.update(members).set({ role: "admin" }).where(and(eq(members.convId, convId), eq(members.userId, from)));
      await tx.update(conversations).set({ ownerId: to }).where(eq(conversations.id, convId));
      return true;
    });
  }

  async setMute(convId: string, userId: string, until: Date | null): Promise<boolean> {
    const rows = await this.db
      .update(members)
      .set({ mutedUntil: until })
      .where(and(eq(members.convId, convId), eq(members.userId, userId)))
      .returning({ u: members.userId });
    return rows.length > 0;
  }

  async listMembers(convId: string, limit = 10_000): Promise<MemberInfo[]> {
    const rows = await this.db
      .select({
        user: members.userId,
        nick: sql<string>`coalesce(${users.nick}, '')`,
        role: members.role,
        mutedUntil: members.mutedUntil,
        readSeq: members.readSeq,
        deliveredSeq: members.deliveredSeq,
      })
      .from(members)
      .leftJoin(users, eq(users.id, members.userId))
      .where(eq(members.convId, convId))
      .orderBy(asc(members.joinedAt), asc(members.userId))
      .limit(limit);
    const now = Date.now();
    return rows.map((r) => ({
      ...r,
      mutedUntil: r.mutedUntil && r.mutedUntil.getTime() > now ? r.mutedUntil.getTime() : null,
    }));
  }

  async memberCount(convId: string): Promise<number> {
    const [r] = await this.db.select({ n: sql<number>`count(*)::int` }).from(members).where(eq(members.convId, convId));
    return Number(r?.n ?? 0);
  }

  async updateConversation(
    convId: string,
    set: Partial<Pick<typeof conversations.$inferInsert, "name" | "avatar" | "attributes" | "closed" | "slowModeSec">>,
  ): Promise<boolean> {
    const rows = await this.db.update(conversations).set(set).where(eq(conversations.id, convId)).returning({ id: conversations.id });
    return rows.length > 0;
  }

  /** Conversations of a kind (and subtype), optionally with an attribute equal to a value: discovery of open groups. */
  async findConversations(
    q: { kind: string; subtype?: string; attr?: [string, string]; limit: number },
  ): Promise<(typeof conversations.$inferSelect)[]> {
    const conds = [eq(conversations.kind, q.kind), eq(conversations.closed, false)];
    if (q.subtype) conds.push(eq(conversations.subtype, q.subtype));
    if (q.attr) conds.push(sql`${conversations.attributes} ->> ${q.attr[0]} = ${q.attr[1]}`);
    return this.db
      .select()
      .from(conversations)
      .where(and(...conds))
      .orderBy(asc(conversations.id))
      .limit(q.limit);
  }

  /** The user's conversations of one kind with their names and member ids, in one statement, by id. */
  async conversationsWithMembers(userId: string, kind: string): Promise<{ conv: string; name: string; members: string[] }[]> {
    return (await this.conversationsWithMembersOf([userId], kind)).get(userId) ?? [];
  }

  /**
   * The same for several users in one statement (presence notices look up every login and logout that came in
   * together at once): user → its conversations by id; a user in none has no entry. Each conversation's
   * members are read and parsed once, however many of the users are in it, and the users share that list.
   */
  async conversationsWithMembersOf(userIds: readonly string[], kind: string): Promise<Map<string, { conv: string; name: string; members: string[] }[]>> {
    const out = new Map<string, { conv: string; name: string; members: string[] }[]>();
    if (!userIds.length) return out;
    // Prepared: every login and logout asks it, mostly of users in no group at all. The kind is written into
    // the statement, not bound: bound, the generic plan cannot know how rare a kind is, so Postgres planned
    // every execution afresh (0.45 ms of planning for a 0.02 ms query; bench: offline-pull). The users travel
    // as one JSON array.
    let q = WITH_MEMBERS.get(kind);
    if (!q) {
      if (!/^[a-z_]+$/.test(kind)) throw new Error(`bad conversation kind ${JSON.stringify(kind)}`);
      q = built(sql`
        with mine as (
          select m.user_id, m.conv_id
            from members m
            join conversations c on c.id = m.conv_id and c.kind = ${sql.raw(`'${kind}'`)}
           where m.user_id in (select jsonb_array_elements_text(${sql.placeholder("users")}::text::jsonb))),
        convs as (
          select c.id, c.name, json_agg(o.user_id order by o.user_id) as members
            from (select distinct conv_id from mine) d
            join conversations c on c.id = d.conv_id
            join members o on o.conv_id = d.conv_id
           group by c.id, c.name)
        select (select json_agg(json_build_array(user_id, conv_id) order by user_id, conv_id) from mine)::text as mine,
               (select json_agg(json_build_array(id, name, members)) from convs)::text as convs`);
      WITH_MEMBERS.set(kind, q);
    }
    const [row] = await run<{ mine: string | null; convs: string | null }>(this.db, q, { users: JSON.stringify(userIds) });
    if (!row?.mine || !row.convs) return out;
    const convs = new Map((JSON.parse(row.convs) as [string, string | null, string[]][]).map(([id, name, members]) => [id, { conv: id, name: name ?? "", members }]));
    for (const [user, conv] of JSON.parse(row.mine) as [string, string][]) {
      const c = convs.get(conv);
      if (!c) continue;
      let list = out.get(user);
      if (!list) out.set(user, (list = []));
      list.push(c);
    }
    return out;
  }
}
