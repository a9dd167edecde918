// The native protocol's command table: frame type → the core command it calls and the reply it makes. Every rule
// (membership, roles, mutes, blacklists, who may send where) is the core's: a handler only picks the fields
// of its frame and names the core call. A handler's result is the reply frame (`t` defaults to the frame's own
// type); a refusal is a CoreError thrown by the core, answered by index.ts as an error frame.
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import type { PageMarks } from "../../core/delivery.ts";
import type { Charge } from "../../core/limits.ts";
import { roomConvId, roomIdOf } from "../../core/conv-ids.ts";
import type { Session } from "../../hub/session.ts";
import type { FrameOf, FrameType } from "./decode.ts";

/** The core services the native protocol calls. */
export type NativeCore = Pick<App, "chat" | "messaging" | "groups" | "social" | "recalls" | "live" | "hub">;

export interface Ctx {
  core: NativeCore;
  s: Session;
  /** the logged-in user */
  me: string;
}

/** Under this key a reply holds the marks of the page it carries (a pull): handed to the hub, not written. */
export const PAGE = Symbol("page");

export interface Command {
  /** what the command costs from the connection's rate limit (core/limits.ts); nothing when unset */
  charge?: Charge;
  run(c: Ctx, f: any): Promise<Record<string, unknown> & { [PAGE]?: PageMarks }>;
}

const read = (run: Command["run"]): Command => ({ charge: "read", run });
const free = (run: Command["run"]): Command => ({ run });
const roomsOf = (s: Session) => [...s.topics].filter((t) => t.startsWith("r:")).length;

const table: { [K in Exclude<FrameType, "auth" | "ping">]: Command } = {
  send: {
    charge: "send",
    async run({ core, s, me }, m: FrameOf<"send">) {
      const ack = await core.messaging.send(me, { to: m.to, conv: m.conv }, { kind: m.kind, body: m.body, cmid: m.cmid }, { session: s.id, topics: s.topics });
      return { t: "ack", msg: ack };
    },
  },
  sync: read(async ({ core, s, me }, m: FrameOf<"sync">) => {
    if (!m.mark) return await core.chat.pending(me, m);
    // Pull and mark: the page is marked delivered once the socket wrote the reply out.
    const page = await core.chat.pullPage(me, m, s.id);
    return { msgs: page.msgs, more: page.more, [PAGE]: page.marks };
  }),
  delivered: free(async ({ core, me }, m: FrameOf<"delivered">) => ({ t: "ok", conv: m.conv, seq: await core.chat.advance(me, m.conv, "delivered", m.seq) })),
  read: free(async ({ core, me }, m: FrameOf<"read">) => ({ t: "ok", conv: m.conv, seq: await core.chat.advance(me, m.conv, "read", m.seq) })),
  history: read(async ({ core, me }, m: FrameOf<"history">) => {
    const room = roomIdOf(m.conv);
    const page = room !== undefined ? await core.live.history(room, m) : await core.chat.history(me, m.conv, m);
    return { conv: m.conv, msgs: page.msgs, more: page.more };
  }),
  convs: read(async ({ core, me }, m: FrameOf<"convs">) => ({ convs: await core.chat.inbox(me, m) })),
  receipts: read(async ({ core, me }, m: FrameOf<"receipts">) => ({ conv: m.conv, counts: await core.chat.receiptCounts(me, m.conv, m.from, m.to) })),
  readers: read(async ({ core, me }, m: FrameOf<"readers">) => ({ conv: m.conv, seq: m.seq, users: await core.chat.readers(me, m.conv, m.seq) })),
  recall: free(async ({ core, s, me }, m: FrameOf<"recall">) => {
    if (!m.msg === !m.cmid) throw new CoreError("bad_request", "give exactly one of `msg` (server id) or `cmid`");
    const msg = await core.recalls.recall(me, { id: m.msg, cmid: m.cmid }, s.id);
    return { t: "recalled", conv: msg.conv, msg: msg.id, seq: msg.seq };
  }),

  // Live rooms: joining subscribes this connection to the room's topic.
  join_room: free(async ({ core, s, me }, f) => {
    const room = await core.live.join(me, f.room, roomsOf(s));
    core.hub.join(s, room.conv);
    return { ...room, online: await core.live.online(room.conv) };
  }),
  leave_room: free(async ({ core, s }, f) => {
    const conv = roomConvId(f.room);
    const left = s.topics.has(conv);
    if (left) core.hub.leave(s, conv);
    return { room: f.room, left, online: await core.live.online(conv) };
  }),
  room_send: {
    charge: "send",
    async run({ core, s, me }, m: FrameOf<"room_send">) {
      const input = { class: m.class, kind: m.kind, body: m.body, cmid: m.cmid };
      const ack = await core.messaging.send(me, { conv: roomConvId(m.room) }, input, { session: s.id, topics: s.topics });
      return { t: "ack", msg: ack };
    },
  },

  // Groups: each frame is one Groups command.
  group_create: free(async ({ core, me }, m: FrameOf<"group_create">) => ({
    group: await core.groups.create(me, { id: m.group, kind: m.kind, name: m.name, avatar: m.avatar, attributes: m.attributes, members: m.members }),
  })),
  group_info: free(async ({ core, me }, f) => ({ group: await core.groups.info(me, f.group) })),
  group_members: free(async ({ core, me }, f) => ({ group: f.group, members: await core.groups.members(me, f.group) })),
  group_join: free(async ({ core, me }, f) => {
    await core.groups.join(me, f.group);
    return { group: f.group };
  }),
  group_leave: free(async ({ core, me }, f) => ({ group: f.group, left: await core.groups.leave(me, f.group) })),
  group_add: free(async ({ core, me }, m: FrameOf<"group_add">) => ({ group: m.group, added: await core.groups.add(me, m.group, m.users) })),
  group_remove: free(async ({ core, me }, f) => ({ group: f.group, removed: await core.groups.remove(me, f.group, f.user) })),
  group_role: free(async ({ core, me }, f) => {
    await core.groups.setRole(me, f.group, f.user, f.role);
    return { group: f.group, user: f.user, role: f.role };
  }),
  group_mute: free(async ({ core, me }, f) => ({ group: f.group, user: f.user, mutedUntil: await core.groups.mute(me, f.group, f.user, f.seconds) })),
  group_update: free(async ({ core, me }, m: FrameOf<"group_update">) => ({
    group: await core.groups.update(me, m.group, { name: m.name, avatar: m.avatar, attributes: m.attributes }),
  })),
  group_dissolve: free(async ({ core, me }, f) => {
    await core.groups.dissolve(me, f.group);
    return { group: f.group };
  }),
  group_discover: free(async ({ core }, f) => ({ groups: await core.groups.discover(f.kind, f.area) })),

  // Friends, blacklist, follows: each frame is one Social command.
  friend_request: free(async ({ core, me }, f) => ({ user: f.user, status: await core.social.request(me, f.user, f.note) })),
  friend_answer: free(async ({ core, me }, f) => {
    await core.social.answer(me, f.user, f.accept);
    return { user: f.user, status: f.accept ? "accepted" : "refused" };
  }),
  friend_requests: free(async ({ core, me }, f) => ({ requests: await core.social.requests(me, f.dir, f.status) })),
  friends: free(async ({ core, me }) => ({ friends: await core.social.friends(me) })),
  friend_remove: free(async ({ core, me }, f) => ({ user: f.user, removed: await core.social.remove(me, f.user) })),
  friend_remark: free(async ({ core, me }, f) => {
    await core.social.remark(me, f.user, f.remark);
    return { user: f.user, remark: f.remark };
  }),
  block: free(async ({ core, me }, f) => {
    await core.social.block(me, f.user);
    return { user: f.user };
  }),
  unblock: free(async ({ core, me }, f) => ({ user: f.user, unblocked: await core.social.unblock(me, f.user) })),
  blocks: free(async ({ core, me }) => ({ users: await core.social.blocked(me) })),
  follow: free(async ({ core, me }, f) => ({ user: f.user, followed: await core.social.follow(me, f.user) })),
  unfollow: free(async ({ core, me }, f) => ({ user: f.user, unfollowed: await core.social.unfollow(me, f.user) })),
  followers: free(async ({ core, me }, f) => {
    const who = f.user ?? me;
    return { user: who, users: await core.social.follows(who, "followers", f.limit, f.after), ...(await core.social.followCounts(who)) };
  }),
  following: free(async ({ core, me }, f) => {
    const who = f.user ?? me;
    return { user: who, users: await core.social.follows(who, "following", f.limit, f.after), ...(await core.social.followCounts(who)) };
  }),
};

/** A Map: the frame type comes from the client (decode.ts has checked it is a known one). */
export const commands: ReadonlyMap<string, Command> = new Map(Object.entries(table));
