// The social graph: friend requests, friendships (stored both ways), blacklist and follows.
import { and, asc, desc, eq, gt, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import type { SocialGraph } from "../core/ports.ts";
import type { FriendRow, RequestRow, UserRef } from "../core/records.ts";
import { blocks, follows, friendRequests, friendships, users } from "./schema.ts";

/** Friends, friend requests, the blacklist and follows. */
export class SocialStore implements SocialGraph {
  constructor(private readonly db: Db) {}

  /**
   * `from` asks `to` to be friends. Already friends: "friends". A pending request the other way is accepted
   * instead: "accepted" (friends both ways). Otherwise the request is (re)opened: "pending".
   */
  async requestFriend(from: string, to: string, note: string): Promise<"friends" | "accepted" | "pending"> {
    return this.db.transaction(async (tx) => {
      const [f] = await tx.select().from(friendships).where(and(eq(friendships.userId, from), eq(friendships.friendId, to)));
      if (f) return "friends";
      const back = await tx
        .update(friendRequests)
        .set({ status: "accepted", updatedAt: sql`now()` })
        .where(and(eq(friendRequests.fromId, to), eq(friendRequests.toId, from), eq(friendRequests.status, "pending")))
        .returning({ f: friendRequests.fromId });
      if (back.length) {
        await befriend(tx as unknown as Db, from, to);
        return "accepted";
      }
      await tx
        .insert(friendRequests)
        .values({ fromId: from, toId: to, note, status: "pending" })
        .onConflictDoUpdate({ target: [friendRequests.fromId, friendRequests.toId], set: { status: "pending", note, updatedAt: sql`now()` } });
      return "pending";
    });
  }

  /** `me` answers `from`'s pending request. False when there is none. */
  async answerRequest(me: string, from: string, accept: boolean): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx
        .update(friendRequests)
        .set({ status: accept ? "accepted" : "refused", updatedAt: sql`now()` })
        .where(and(eq(friendRequests.fromId, from), eq(friendRequests.toId, me), eq(friendRequests.status, "pending")))
        .returning({ f: friendRequests.fromId });
      if (!rows.length) return false;
      if (accept) await befriend(tx as unknown as Db, me, from);
      return true;
    });
  }

  async requestsOf(me: string, dir: "in" | "out", status?: string): Promise<RequestRow[]> {
    const mine = dir === "in" ? eq(friendRequests.toId, me) : eq(friendRequests.fromId, me);
    const other = dir === "in" ? friendRequests.fromId : friendRequests.toId;
    const rows = await this.db
      .select({ r: friendRequests, nick: sql<string>`coalesce(${users.nick}, '')` })
      .from(friendRequests)
      .leftJoin(users, eq(users.id, other))
      .where(status ? and(mine, eq(friendRequests.status, status)) : mine)
      .orderBy(desc(friendRequests.updatedAt))
      .limit(1000);
    return rows.map(({ r, nick }) => ({ from: r.fromId, to: r.toId, status: r.status, note: r.note, nick, updatedAt: r.updatedAt.getTime() }));
  }

  async friendsOf(me: string): Promise<FriendRow[]> {
    const rows = await this.db
      .select({ f: friendships, nick: sql<string>`coalesce(${users.nick}, '')`, avatar: sql<string>`coalesce(${users.avatar}, '')` })
      .from(friendships)
      .leftJoin(users, eq(users.id, friendships.friendId))
      .where(eq(friendships.userId, me))
      .orderBy(asc(friendships.friendId))
      .limit(10_000);
    return rows.map(({ f, nick, avatar }) => ({ user: f.friendId, nick, avatar, remark: f.remark, since: f.createdAt.getTime() }));
  }

  /** Ends a friendship both ways. */
  async unfriend(a: string, b: string): Promise<boolean> {
    const rows = await this.db
      .delete(friendships)
      .where(sql`(${friendships.userId}, ${friendships.friendId}) in ((${a}::text, ${b}::text), (${b}::text, ${a}::text))`)
      .returning({ u: friendships.userId });
    return rows.length > 0;
  }

  async setRemark(me: string, friend: string, remark: string): Promise<boolean> {
    const rows = await this.db
      .update(friendships)
      .set({ remark })
      .where(and(eq(friendships.userId, me), eq(friendships.friendId, friend)))
      .returning({ u: friendships.userId });
    return rows.length > 0;
  }

  async block(me: string, other: string): Promise<void> {
    await this.db.insert(blocks).values({ userId: me, blockedId: other }).onConflictDoNothing();
  }

  async unblock(me: string, other: string): Promise<boolean> {
    const rows = await this.db
      .delete(blocks)
      .where(and(eq(blocks.userId, me), eq(blocks.blockedId, other)))
      .returning({ u: blocks.userId });
    return rows.length > 0;
  }

  async isBlocked(by: string, who: string): Promise<boolean> {
    const [r] = await this.db.select({ u: blocks.userId }).from(blocks).where(and(eq(blocks.userId, by), eq(blocks.blockedId, who)));
    return !!r;
  }

  async blockedBy(me: string): Promise<UserRef[]> {
    const rows = await this.db
      .select({ b: blocks, nick: sql<string>`coalesce(${users.nick}, '')`, avatar: sql<string>`coalesce(${users.avatar}, '')` })
      .from(blocks)
      .leftJoin(users, eq(users.id, blocks.blockedId))
      .where(eq(blocks.userId, me))
      .orderBy(asc(blocks.blockedId))
      .limit(10_000);
    return rows.map(({ b, nick, avatar }) => ({ user: b.blockedId, nick, avatar, since: b.createdAt.getTime() }));
  }

  async follow(me: string, host: string): Promise<boolean> {
    const rows = await this.db.insert(follows).values({ userId: me, followeeId: host }).onConflictDoNothing().returning({ u: follows.userId });
    return rows.length > 0;
  }

  async unfollow(me: string, host: string): Promise<boolean> {
    const rows = await this.db
      .delete(follows)
      .where(and(eq(follows.userId, me), eq(follows.followeeId, host)))
      .returning({ u: follows.userId });
    return rows.length > 0;
  }

  /** Followers of `host` in id order, `after` an id for the next page; or the hosts `me` follows. */
  async followList(who: string, side: "followers" | "following", limit: number, after?: string): Promise<UserRef[]> {
    const mine = side === "followers" ? follows.followeeId : follows.userId;
    const other = side === "followers" ? follows.userId : follows.followeeId;
    const rows = await this.db
      .select({ u: other, at: follows.createdAt, nick: sql<string>`coalesce(${users.nick}, '')`, avatar: sql<string>`coalesce(${users.avatar}, '')` })
      .from(follows)
      .leftJoin(users, eq(users.id, other))
      .where(after ? and(eq(mine, who), gt(other, after)) : eq(mine, who))
      .orderBy(asc(other))
      .limit(limit);
    return rows.map((r) => ({ user: r.u, nick: r.nick, avatar: r.avatar, since: r.at.getTime() }));
  }

  async followCounts(who: string): Promise<{ followers: number; following: number }> {
    const [r] = await this.db
      .select({
        followers: sql<number>`count(*) filter (where ${follows.followeeId} = ${who})::int`,
        following: sql<number>`count(*) filter (where ${follows.userId} = ${who})::int`,
      })
      .from(follows)
      .where(sql`${follows.followeeId} = ${who} or ${follows.userId} = ${who}`);
    return { followers: Number(r?.followers ?? 0), following: Number(r?.following ?? 0) };
  }
}

async function befriend(db: Db, a: string, b: string): Promise<void> {
  await db
    .insert(friendships)
    .values([
      { userId: a, friendId: b },
      { userId: b, friendId: a },
    ])
    .onConflictDoNothing();
}
