// The native protocol's social frames (docs/protocol.md "Friends, blacklist, follows"): each maps onto
// one Social command and answers with a frame of the same type.
import type { Social } from "../../core/social.ts";

type Handler = (social: Social, me: string, f: any) => Promise<Record<string, unknown>>;

export const socialFrames: Record<string, Handler> = {
  friend_request: async (x, me, f) => ({ user: f.user, status: await x.request(me, f.user, f.note) }),
  friend_answer: async (x, me, f) => {
    await x.answer(me, f.user, f.accept);
    return { user: f.user, status: f.accept ? "accepted" : "refused" };
  },
  friend_requests: async (x, me, f) => ({ requests: await x.requests(me, f.dir, f.status) }),
  friends: async (x, me) => ({ friends: await x.friends(me) }),
  friend_remove: async (x, me, f) => ({ user: f.user, removed: await x.remove(me, f.user) }),
  friend_remark: async (x, me, f) => {
    await x.remark(me, f.user, f.remark);
    return { user: f.user, remark: f.remark };
  },
  block: async (x, me, f) => {
    await x.block(me, f.user);
    return { user: f.user };
  },
  unblock: async (x, me, f) => ({ user: f.user, unblocked: await x.unblock(me, f.user) }),
  blocks: async (x, me) => ({ users: await x.blocked(me) }),
  follow: async (x, me, f) => ({ user: f.user, followed: await x.follow(me, f.user) }),
  unfollow: async (x, me, f) => ({ user: f.user, unfollowed: await x.unfollow(me, f.user) }),
  followers: async (x, me, f) => {
    const who = f.user ?? me;
    return { user: who, users: await x.follows(who, "followers", f.limit, f.after), ...(await x.followCounts(who)) };
  },
  following: async (x, me, f) => {
    const who = f.user ?? me;
    return { user: who, users: await x.follows(who, "following", f.limit, f.after), ...(await x.followCounts(who)) };
  },
};
