// Friends, blacklist and follows. A friend request is answered by its recipient only; friendships are
// mutual. The blacklist is enforced where messages are written (store.appendBatch: `recipient` of a 1:1
// message, the owner of a container conversation — a desk guest's serving agent), so every send path of every
// protocol obeys it and no cache can let a blocked sender through. A blocked user
// cannot send friend requests either. Follows are one-way (a viewer follows a host).
import type { Chat } from "./chat.ts";
import { fail } from "./errors.ts";
import { storableText } from "./storable.ts";
import { USER_ID_RE } from "./ids.ts";
import type { SocialGraph, Users } from "./ports.ts";
import type { CoreEvent, FriendChange } from "./types.ts";

export type { FriendRow, RequestRow, UserRef } from "./records.ts";

export class Social {
  constructor(
    private readonly graph: SocialGraph,
    private readonly users: Users,
    private readonly chat: Pick<Chat, "userExists">,
    private readonly emit: (ev: CoreEvent) => void,
    /** told of each new follow (livepush's 43) */
    private readonly onFollow?: (me: string, other: string) => Promise<void>,
  ) {}

  /** Asks `to` to be friends; a pending request the other way is accepted instead. */
  async request(me: string, to: string, note = ""): Promise<"friends" | "accepted" | "pending"> {
    await this.other(me, to);
    if (typeof note !== "string" || note.length > 200) fail("bad_request", "`note` is at most 200 characters");
    storableText(note, "`note`");
    if (await this.graph.isBlocked(to, me)) fail("blocked", `${to} does not accept your requests`);
    const r = await this.graph.requestFriend(me, to, note);
    if (r === "pending") await this.tell("request", me, [to], note);
    if (r === "accepted") await this.tell("accepted", me, [to]);
    return r;
  }

  /** Accepts or refuses `from`'s pending request; the requester is told. */
  async answer(me: string, from: string, accept: boolean): Promise<void> {
    await this.other(me, from);
    if (!(await this.graph.answerRequest(me, from, accept))) fail("not_found", `no pending request from ${from}`);
    await this.tell(accept ? "accepted" : "refused", me, [from]);
  }

  requests(me: string, dir: "in" | "out" = "in", status?: string) {
    if (dir !== "in" && dir !== "out") fail("bad_request", "`dir` is in or out");
    if (status !== undefined && !["pending", "accepted", "refused"].includes(status)) fail("bad_request", "`status` is pending, accepted or refused");
    return this.graph.requestsOf(me, dir, status);
  }

  friends(me: string) {
    return this.graph.friendsOf(me);
  }

  async remove(me: string, friend: string): Promise<boolean> {
    await this.other(me, friend);
    const done = await this.graph.unfriend(me, friend);
    if (done) await this.tell("removed", me, [friend]);
    return done;
  }

  async remark(me: string, friend: string, remark: string): Promise<void> {
    if (typeof remark !== "string" || remark.length > 100) fail("bad_request", "`remark` is at most 100 characters");
    storableText(remark, "`remark`");
    if (!(await this.graph.setRemark(me, friend, remark))) fail("not_found", `${friend} is not your friend`);
  }

  async block(me: string, other: string): Promise<void> {
    await this.other(me, other);
    await this.graph.block(me, other);
  }

  unblock(me: string, other: string): Promise<boolean> {
    return this.graph.unblock(me, other);
  }

  blocked(me: string) {
    return this.graph.blockedBy(me);
  }

  /** Whether `me` blocked `other`. */
  isBlocked(me: string, other: string): Promise<boolean> {
    return this.graph.isBlocked(me, other);
  }

  async follow(me: string, host: string): Promise<boolean> {
    await this.other(me, host);
    const added = await this.graph.follow(me, host);
    if (added) void this.onFollow?.(me, host).catch(() => {});
    return added;
  }

  unfollow(me: string, host: string): Promise<boolean> {
    return this.graph.unfollow(me, host);
  }

  follows(who: string, side: "followers" | "following", limit = 100, after?: string) {
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) fail("bad_request", "`limit` is 1-1000");
    return this.graph.followList(who, side, limit, after);
  }

  followCounts(who: string) {
    return this.graph.followCounts(who);
  }

  private async other(me: string, other: string): Promise<void> {
    if (typeof other !== "string" || !USER_ID_RE.test(other)) fail("bad_request", "`user` must be a user id");
    if (other === me) fail("bad_request", "that is yourself");
    if (!(await this.chat.userExists(other))) fail("not_found", `no user ${other}`);
  }

  private async tell(change: FriendChange, actor: string, to: string[], note?: string): Promise<void> {
    const nick = (await this.users.getUser(actor))?.nick ?? "";
    this.emit({ type: "friend", change, user: { id: actor, nick }, ...(note ? { note } : {}), to: [...to, actor] });
  }
}
