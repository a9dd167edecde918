// The desk command table (docs/desk.md): api_key → the core command it calls, one table for agents and one for
// guests. Every rule (routing, whose guest it is, transfer) is the core's (core/desk.ts); a handler checks its
// frame's fields, calls the core and answers with the request's codes (a core error is mapped in index.ts).
import { randomBytes } from "node:crypto";
import type { App } from "../../app.ts";
import { deskInput, FILE_TYPES } from "../../core/desk.ts";
import type { Charge } from "../../core/limits.ts";
import type { Session } from "../../hub/session.ts";
import { deskConvId, guestOf } from "../../core/conv-ids.ts";
import type { DeskAgentRow } from "../../core/records.ts";
import { int, str, type Fields } from "./decode.ts";
import { Codes, frame, messageInfo } from "./encode.ts";

/** A login token with less than this left is answered with a fresh one (`is_refresh: 1`). */
export const REFRESH_BEFORE_SEC = 86400;
/** Lifetime of a refresh token. */
export const REFRESH_TTL_SEC = 7 * 86400;
const MAX_PAGE = 100;

export interface DeskState {
  ix: string;
  as?: "agent" | "guest";
  exp?: number;
  agent?: DeskAgentRow;
  group?: string;
  /** the login's routing step (agent or guest up), which a close waits for */
  up?: Promise<unknown>;
}
export const st = (s: Session) => s.state as unknown as DeskState;

export const newState = (): DeskState => ({ ix: randomBytes(10).toString("hex") });

export interface Command {
  /** what it costs from the connection's rate limit before it runs; a send is charged once its fields are checked */
  charge?: Charge;
  run(s: Session, me: string, apiKey: number, f: Fields): Promise<void>;
}

/** The core services the desk protocol calls. */
export type DeskCore = Pick<App, "hub" | "tokens" | "logins" | "messaging" | "limits" | "chat" | "desk">;

export function deskCommands(app: DeskCore) {
  const { hub, tokens, logins, messaging, limits, chat, desk } = app;
  const reply = (s: Session, apiKey: unknown, code: number, data?: unknown, message?: string): void => {
    hub.send(s, frame(apiKey, code, data, message));
  };

  async function lists(s: Session) {
    const me = s.userId!;
    const state = st(s);
    const base: Record<string, unknown> = { ix: state.ix };
    if (state.as === "guest") {
      const live = await desk.guestLive(me);
      return { ...base, gid: me, group_id: state.group, aix: live.agent ?? null, queue_position: live.position ?? null };
    }
    const agents = await desk.agentList(state.agent!.groupId);
    const rows = (await chat.inbox(me, { kind: "container", empty: true, limit: 500 })).filter((r) => r.subtype === "desk");
    const gids = rows.map((r) => guestOf(r.conv)!);
    const users = new Map((await chat.profiles(gids)).map((u) => [u.id, u]));
    const online = await desk.onlineGuests(gids);
    return {
      ...base,
      admin_list: agents.map((a) => ({ aix: a.id, nick: a.nick, avatar: a.avatar, online: a.online ? 1 : 0, status: a.suspended ? 1 : 0, load: a.load, capacity: a.capacity })),
      guest_list: rows.map((r) => {
        const gid = guestOf(r.conv)!;
        const u = users.get(gid);
        return {
          gid,
          nick: u?.nick ?? "",
          avatar: u?.avatar ?? "",
          online: online.has(gid) ? 1 : 0,
          unread: r.unread,
          last_message: r.last ? messageInfo(r.last) : null,
          last_time: r.lastMsgAt,
        };
      }),
    };
  }

  async function refresh(userId: string, exp?: number) {
    if (!exp || exp * 1000 - Date.now() > REFRESH_BEFORE_SEC * 1000) return { is_refresh: 0, refresh_token: "" };
    return { is_refresh: 1, refresh_token: (await tokens.issue(userId, Math.min(REFRESH_TTL_SEC, tokens.maxTtlSec))).token };
  }

  async function login(s: Session, apiKey: unknown, f: Fields) {
    const callType = int(f.call_type);
    const who = await logins.byJwt(str(f.token));
    if (!who) return reply(s, apiKey, Codes.badToken, {}, "token unreadable");
    const user = who.user;
    if (s.userId && s.userId !== who.id) return reply(s, apiKey, Codes.otherUser, {}, "this connection is logged in as another user");
    const state = st(s);
    if (callType === 3) {
      if (state.as === "guest") return reply(s, apiKey, Codes.otherUser, {}, "this connection is logged in as a guest");
      if (!user) return reply(s, apiKey, Codes.agentDisabled, {}, "admin disabled or missing");
      const a = await desk.agentRecord(user.id);
      if (a === "no_agent") return reply(s, apiKey, Codes.noAgent, {}, "admin_id does not exist");
      if (a === "agent_disabled") return reply(s, apiKey, Codes.agentDisabled, {}, "admin disabled or missing");
      if (a === "group_disabled") return reply(s, apiKey, Codes.groupDisabled, {}, "agent group disabled or missing");
      const first = !s.userId;
      if (first) await hub.bindUser(s, user.id, user.role);
      if (s.closed) return;
      Object.assign(state, { as: "agent", exp: who.exp, agent: a });
      if (first) await (state.up = desk.agentUp(a));
    } else if (callType === 1) {
      if (!user) return reply(s, apiKey, Codes.badToken, {}, "token unreadable");
      const group = str(f.group_id);
      const g = group ? await desk.records.group(group) : undefined;
      if (!g || g.disabled) return reply(s, apiKey, Codes.groupDisabled, {}, "agent group disabled or missing");
      if (state.as === "agent") return reply(s, apiKey, Codes.otherUser, {}, "this connection is logged in as an agent");
      const first = !s.userId;
      if (first) await hub.bindUser(s, user.id, user.role);
      if (s.closed) return;
      Object.assign(state, { as: "guest", exp: who.exp, group: g.id });
      if (first) await (state.up = desk.guestUp(user.id, g.id));
    } else {
      return reply(s, apiKey, Codes.badFrame, {}, "call_type must be 0, 1 or 3");
    }
    reply(s, apiKey, Codes.ok, { ...(await lists(s)), ...(await refresh(user.id, who.exp)) });
  }

  /** A page of a guest's conversation: page 1 is the newest `size` messages; each page oldest first. */
  async function page(guest: string, f: Fields) {
    const index = Math.max(1, int(f.page_index) ?? 1);
    const size = Math.min(MAX_PAGE, Math.max(1, int(f.page_size) ?? 10));
    const { total, msgs } = await desk.page(guest, index, size);
    return { gid: guest, page_index: index, page_size: size, total, list: msgs.map(messageInfo) };
  }

  return {
    login,
    reply,
    // Maps: the api_key comes from the client.
    agent: new Map<number, Command>([
      [32000, { charge: "read", run: async (s, me, apiKey, f) => {
        return reply(s, apiKey, Codes.ok, { ...(await lists(s)), ...(await refresh(me, st(s).exp)) });
      } }],
      [32100, { charge: "read", run: async (s, me, apiKey, f) => {
        const agent = st(s).agent!;
        const gid = str(f.gid);
        const group = str(f.group_id);
        if (!gid) return reply(s, apiKey, Codes.contentGid, {}, "gid not null");
        if (!group) return reply(s, apiKey, Codes.contentGroup, {}, "group_id not null");
        if (group !== agent.groupId || !(await desk.mayRead(agent, gid))) return reply(s, apiKey, Codes.notYourGroup, {}, "not a guest of your group");
        return reply(s, apiKey, Codes.ok, { group_id: group, ...(await page(gid, f)) });
      } }],
      [32200, { run: async (s, me, apiKey, f) => {
        const gid = str(f.gid);
        const group = str(f.group_id);
        if (!gid) return reply(s, apiKey, Codes.readGid, {}, "gid not null");
        if (!group) return reply(s, apiKey, Codes.readGroup, {}, "group_id not null");
        if (!(await desk.markRead(me, gid, true))) return reply(s, apiKey, Codes.readNotYours, {}, "not your guest");
        return reply(s, apiKey, Codes.ok, { group_id: group, gid });
      } }],
      [32300, { run: async (s, me, apiKey, f) => {
        const gid = str(f.gid);
        if (!gid) return reply(s, apiKey, Codes.sendGid, {}, "gid not null");
        if (f.msg === undefined || f.msg === null || f.msg === "") return reply(s, apiKey, Codes.sendMsg, {}, "msg not null");
        const fileType = int(f.file_type ?? 0);
        if (fileType === undefined || fileType < 0 || fileType >= FILE_TYPES.length) return reply(s, apiKey, Codes.sendFileType, {}, "file_type must be 0-6");
        if (limits.take(s, "send")) return reply(s, apiKey, Codes.rateLimited, {}, "too many messages");
        // Whose guest it is, is the core's check (its `forbidden` answers -32304).
        const ack = await messaging.send(me, { conv: deskConvId(gid) }, deskInput(f.msg, fileType), { session: s.id });
        return reply(s, apiKey, Codes.ok, { gid, message_info: { id: ack.id, seq: ack.seq, gid, from: me, msg: f.msg, file_type: fileType, time: ack.ts } });
      } }],
      [32400, { run: async (s, me, apiKey, f) => {
        const gid = str(f.gid);
        const aix = str(f.aix);
        if (!gid) return reply(s, apiKey, Codes.transferGid, {}, "gid not null");
        if (!aix) return reply(s, apiKey, Codes.transferAix, {}, "aix not null");
        // Checked once, in the core, at the moment of the transfer: a concurrent transfer that moved the
        // guest first makes this one `forbidden` (-32406) or `conflict` (-32405), never a generic failure.
        const t = await desk.transfer(me, gid, aix);
        return reply(s, apiKey, Codes.ok, { gid, data: { from: me, to: aix }, guest_info: t.guest, recs: t.recs.map(messageInfo) });
      } }],
      [32500, { run: async (s, me, apiKey, f) => {
        const status = int(f.status);
        if (status !== 0 && status !== 1) return reply(s, apiKey, Codes.suspendStatus, {}, "status must be 0 (resume) or 1 (suspend)");
        await desk.suspend(me, status === 1);
        return reply(s, apiKey, Codes.ok, {});
      } }],
      [33000, { charge: "read", run: async (s, me, apiKey, f) => {
        const agent = st(s).agent!;
        const online = await desk.agentList(agent.groupId, true);
        return reply(s, apiKey, Codes.ok, {
          admin_list: online.map((a) => ({ aix: a.id, nick: a.nick, avatar: a.avatar, status: a.suspended ? 1 : 0, load: a.load, capacity: a.capacity })),
        });
      } }],
    ]),
    guest: new Map<number, Command>([
      [32000, { charge: "read", run: async (s, me, apiKey) => reply(s, apiKey, Codes.ok, { ...(await lists(s)), ...(await refresh(me, st(s).exp)) }) }],
      [32100, { charge: "read", run: async (s, me, apiKey, f) => reply(s, apiKey, Codes.ok, { group_id: st(s).group, ...(await page(me, f)) }) }],
      [32200, { run: async (s, me, apiKey) => {
        await desk.markRead(me, me, false);
        return reply(s, apiKey, Codes.ok, { group_id: st(s).group, gid: me });
      } }],
      [32300, { run: async (s, me, apiKey, f) => {
        if (f.msg === undefined || f.msg === null || f.msg === "") return reply(s, apiKey, Codes.sendMsg, {}, "msg not null");
        const fileType = int(f.file_type ?? 0);
        if (fileType === undefined || fileType < 0 || fileType >= FILE_TYPES.length) return reply(s, apiKey, Codes.sendFileType, {}, "file_type must be 0-6");
        if (limits.take(s, "send")) return reply(s, apiKey, Codes.rateLimited, {}, "too many messages");
        const ack = await messaging.send(me, { conv: deskConvId(me) }, deskInput(f.msg, fileType), { session: s.id });
        return reply(s, apiKey, Codes.ok, { gid: me, message_info: { id: ack.id, seq: ack.seq, gid: me, from: me, msg: f.msg, file_type: fileType, time: ack.ts } });
      } }],
      ...[32400, 32500, 33000].map((k): [number, Command] => [k, { charge: k === 33000 ? "read" : undefined, run: async (s, _me, apiKey) => reply(s, apiKey, Codes.agentsOnly, {}, "for agents only") }]),
    ]),
  };
}
