// The customer-service desk protocol (seed 002, docs/desk.md) at /desk and on DESK_PORT: JSON frames keyed
// by `api_key`, answered with `{api_key, data, code, message, status}`. Agents (`call_type` 3) and guests
// (`call_type` 1) log in with a server JWT; routing, transfer and queues are the core's (core/desk.ts).
import { randomBytes } from "node:crypto";
import type { App } from "../../app.ts";
import { deskInput, FILE_TYPES, type Desk } from "../../core/desk.ts";
import { CoreError, type ErrorName } from "../../core/errors.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import type { Dialect, Session } from "../../hub/session.ts";
import { deskConvId, guestOf, type DeskAgentRow } from "../../store/desk.ts";
import { inboxOf } from "../../store/inbox.ts";
import { storeFailure } from "../../store/db.ts";

/** A login token with less than this left is answered with a fresh one (`is_refresh: 1`). */
export const REFRESH_BEFORE_SEC = 86400;
/** Lifetime of a refresh token. */
export const REFRESH_TTL_SEC = 7 * 86400;
const MAX_PAGE = 100;

export const Codes = {
  ok: 200,
  relogin: -9999,
  badToken: -31001,
  noAgent: -31002,
  agentDisabled: -31003,
  groupDisabled: -31004,
  otherUser: -31005,
  contentGid: -32101,
  contentGroup: -32102,
  notYourGroup: -32103,
  readGid: -32201,
  readGroup: -32202,
  readNotYours: -32203,
  sendGid: -32301,
  sendMsg: -32302,
  sendFileType: -32303,
  sendNotYours: -32304,
  transferGid: -32403,
  transferAix: -32404,
  transferUnavailable: -32405,
  transferNotYours: -32406,
  sendBlocked: -32305,
  suspendStatus: -32501,
  badFrame: -10001,
  unknownApi: -10002,
  agentsOnly: -10003,
  rateLimited: -10004,
  failed: -10005,
} as const;

/**
 * The code a core error answers a request with: the request's own code where the protocol has one (an
 * ownership refusal of 32400 is -32406 whichever check caught it), else the envelope's general codes. Every
 * core error is listed, so a new one is a decision, not a fall-through (test/unit/error-mapping.test.ts).
 */
const GENERAL: Record<ErrorName, number> = {
  bad_frame: Codes.badFrame,
  unknown_type: Codes.unknownApi,
  bad_request: Codes.failed,
  unauthorized: Codes.relogin,
  forbidden: Codes.failed,
  blocked: Codes.failed,
  muted: Codes.failed,
  not_member: Codes.failed,
  not_found: Codes.failed,
  conflict: Codes.failed,
  recall_expired: Codes.failed,
  rate_limited: Codes.rateLimited,
  slow_mode: Codes.rateLimited,
  unavailable: Codes.failed,
  internal: Codes.failed,
};
const BY_REQUEST: Record<number, Partial<Record<ErrorName, number>>> = {
  32100: { forbidden: Codes.notYourGroup, not_member: Codes.notYourGroup, not_found: Codes.notYourGroup },
  32200: { forbidden: Codes.readNotYours, not_member: Codes.readNotYours, not_found: Codes.readNotYours },
  32300: { forbidden: Codes.sendNotYours, not_member: Codes.sendNotYours, not_found: Codes.sendNotYours, blocked: Codes.sendBlocked },
  32400: {
    forbidden: Codes.transferNotYours,
    not_member: Codes.transferNotYours,
    not_found: Codes.transferNotYours,
    unavailable: Codes.transferUnavailable,
    conflict: Codes.transferUnavailable,
  },
};
export function deskErrorCode(apiKey: number | undefined, name: ErrorName): number {
  return (apiKey !== undefined ? BY_REQUEST[apiKey]?.[name] : undefined) ?? GENERAL[name];
}
/** Requests that only read. */
const DESK_READS = new Set([32000, 32100, 33000]);

/** Pushes: a message for you, an assigned/transferred guest, your transfer done, your agent. */
export const Push = { message: 32399, assigned: 32401, handedOver: 32402, agent: 31100 } as const;

interface DeskState {
  ix: string;
  as?: "agent" | "guest";
  exp?: number;
  agent?: DeskAgentRow;
  group?: string;
  /** the login's routing step (agent or guest up), which a close waits for */
  up?: Promise<unknown>;
}
const st = (s: Session) => s.state as unknown as DeskState;

type Fields = Record<string, unknown>;
const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined);
const int = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? v : typeof v === "string" && /^-?\d{1,15}$/.test(v) ? Number(v) : undefined);

export function messageInfo(m: Message) {
  const body = m.body as { msg?: unknown } | null;
  const t = FILE_TYPES.indexOf(m.kind as (typeof FILE_TYPES)[number]);
  return {
    id: m.id,
    seq: m.seq,
    gid: guestOf(m.conv) ?? "",
    from: m.from,
    msg: body && typeof body === "object" && "msg" in body ? body.msg : body,
    file_type: t < 0 ? 0 : t,
    time: m.ts,
    ...(m.recalled ? { recalled: true } : {}),
  };
}

export function deskDialect(app: App): Dialect {
  const { hub, tokens, logins, messaging, limits, chat, store, log, cfg } = app;
  const desk: Desk = app.desk;

  const frame = (apiKey: unknown, code: number, data: unknown = {}, message = "") =>
    JSON.stringify({ api_key: apiKey ?? null, data, code, message, status: code > 0 ? "Success" : "Fail" });
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
    const rows = (await inboxOf(store.db, me, { kind: "container", empty: true, limit: 500 })).filter((r) => r.subtype === "desk");
    const gids = rows.map((r) => guestOf(r.conv)!);
    const users = new Map((await store.getUsers(gids)).map((u) => [u.id, u]));
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
    const conv = await store.getConversation(deskConvId(guest));
    const last = conv?.lastSeq ?? 0;
    const before = last - (index - 1) * size + 1;
    const msgs = before > 1 ? (await store.history(deskConvId(guest), { beforeSeq: before, limit: size, desc: true })).reverse() : [];
    return { gid: guest, page_index: index, page_size: size, total: last, list: msgs.map(messageInfo) };
  }

  async function agentRequest(s: Session, me: string, apiKey: number, f: Fields) {
    const agent = st(s).agent!;
    const gid = str(f.gid);
    switch (apiKey) {
      case 32000:
        return reply(s, apiKey, Codes.ok, { ...(await lists(s)), ...(await refresh(me, st(s).exp)) });
      case 32100: {
        const group = str(f.group_id);
        if (!gid) return reply(s, apiKey, Codes.contentGid, {}, "gid not null");
        if (!group) return reply(s, apiKey, Codes.contentGroup, {}, "group_id not null");
        if (group !== agent.groupId || !(await desk.mayRead(agent, gid))) return reply(s, apiKey, Codes.notYourGroup, {}, "not a guest of your group");
        return reply(s, apiKey, Codes.ok, { group_id: group, ...(await page(gid, f)) });
      }
      case 32200: {
        const group = str(f.group_id);
        if (!gid) return reply(s, apiKey, Codes.readGid, {}, "gid not null");
        if (!group) return reply(s, apiKey, Codes.readGroup, {}, "group_id not null");
        const conv = await store.getConversation(deskConvId(gid));
        if (!conv || conv.ownerId !== me) return reply(s, apiKey, Codes.readNotYours, {}, "not your guest");
        await chat.advance(me, conv.id, "read", conv.lastSeq);
        return reply(s, apiKey, Codes.ok, { group_id: group, gid });
      }
      case 32300: {
        if (!gid) return reply(s, apiKey, Codes.sendGid, {}, "gid not null");
        if (f.msg === undefined || f.msg === null || f.msg === "") return reply(s, apiKey, Codes.sendMsg, {}, "msg not null");
        const fileType = int(f.file_type ?? 0);
        if (fileType === undefined || fileType < 0 || fileType >= FILE_TYPES.length) return reply(s, apiKey, Codes.sendFileType, {}, "file_type must be 0-6");
        if (limits.take(s, "send")) return reply(s, apiKey, Codes.rateLimited, {}, "too many messages");
        // Whose guest it is, is the core's check (its `forbidden` answers -32304).
        const ack = await messaging.send(me, { conv: deskConvId(gid) }, deskInput(f.msg, fileType), { session: s.id });
        return reply(s, apiKey, Codes.ok, { gid, message_info: { id: ack.id, seq: ack.seq, gid, from: me, msg: f.msg, file_type: fileType, time: ack.ts } });
      }
      case 32400: {
        const aix = str(f.aix);
        if (!gid) return reply(s, apiKey, Codes.transferGid, {}, "gid not null");
        if (!aix) return reply(s, apiKey, Codes.transferAix, {}, "aix not null");
        // Checked once, in the core, at the moment of the transfer: a concurrent transfer that moved the
        // guest first makes this one `forbidden` (-32406) or `conflict` (-32405), never a generic failure.
        const t = await desk.transfer(me, gid, aix);
        return reply(s, apiKey, Codes.ok, { gid, data: { from: me, to: aix }, guest_info: t.guest, recs: t.recs.map(messageInfo) });
      }
      case 32500: {
        const status = int(f.status);
        if (status !== 0 && status !== 1) return reply(s, apiKey, Codes.suspendStatus, {}, "status must be 0 (resume) or 1 (suspend)");
        await desk.suspend(me, status === 1);
        return reply(s, apiKey, Codes.ok, {});
      }
      case 33000: {
        const online = await desk.agentList(agent.groupId, true);
        return reply(s, apiKey, Codes.ok, {
          admin_list: online.map((a) => ({ aix: a.id, nick: a.nick, avatar: a.avatar, status: a.suspended ? 1 : 0, load: a.load, capacity: a.capacity })),
        });
      }
    }
    return reply(s, apiKey, Codes.unknownApi, {}, `unknown api_key ${apiKey}`);
  }

  async function guestRequest(s: Session, me: string, apiKey: number, f: Fields) {
    switch (apiKey) {
      case 32000:
        return reply(s, apiKey, Codes.ok, { ...(await lists(s)), ...(await refresh(me, st(s).exp)) });
      case 32100:
        return reply(s, apiKey, Codes.ok, { group_id: st(s).group, ...(await page(me, f)) });
      case 32200: {
        const conv = await store.getConversation(deskConvId(me));
        if (conv) await chat.advance(me, conv.id, "read", conv.lastSeq);
        return reply(s, apiKey, Codes.ok, { group_id: st(s).group, gid: me });
      }
      case 32300: {
        if (f.msg === undefined || f.msg === null || f.msg === "") return reply(s, apiKey, Codes.sendMsg, {}, "msg not null");
        const fileType = int(f.file_type ?? 0);
        if (fileType === undefined || fileType < 0 || fileType >= FILE_TYPES.length) return reply(s, apiKey, Codes.sendFileType, {}, "file_type must be 0-6");
        if (limits.take(s, "send")) return reply(s, apiKey, Codes.rateLimited, {}, "too many messages");
        const ack = await messaging.send(me, { conv: deskConvId(me) }, deskInput(f.msg, fileType), { session: s.id });
        return reply(s, apiKey, Codes.ok, { gid: me, message_info: { id: ack.id, seq: ack.seq, gid: me, from: me, msg: f.msg, file_type: fileType, time: ack.ts } });
      }
      case 32400:
      case 32500:
      case 33000:
        return reply(s, apiKey, Codes.agentsOnly, {}, "for agents only");
    }
    return reply(s, apiKey, Codes.unknownApi, {}, `unknown api_key ${apiKey}`);
  }

  return {
    name: "desk",

    async upgrade() {
      return { codec: "desk", state: { ix: randomBytes(10).toString("hex") } as never };
    },

    open() {},

    busy(s, data) {
      let apiKey: unknown = null;
      try {
        const f = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
        if (f && typeof f === "object") apiKey = f.api_key ?? null;
      } catch {}
      reply(s, apiKey, Codes.rateLimited, {}, `too many requests in flight (at most ${cfg.maxFramesInFlight}): wait for answers`);
    },

    async message(s, data) {
      let f: unknown;
      try {
        f = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
      } catch {
        return reply(s, null, Codes.badFrame, {}, "frames are JSON objects");
      }
      if (typeof f !== "object" || f === null || Array.isArray(f)) return reply(s, null, Codes.badFrame, {}, "frames are JSON objects");
      const fields = f as Fields;
      const apiKey = int(fields.api_key);
      if (int(fields.call_type) === 0 && (apiKey === undefined || apiKey === 0)) return reply(s, fields.api_key ?? 0, Codes.ok, {}, "pong");
      try {
        if (apiKey === 31000) return await login(s, apiKey, fields);
        if (apiKey === undefined) return reply(s, fields.api_key, Codes.unknownApi, {}, "api_key is required");
        const state = st(s);
        if (!s.userId || !state.as) return reply(s, apiKey, Codes.relogin, {}, "log in first");
        if (state.exp && state.exp * 1000 <= Date.now()) return reply(s, apiKey, Codes.relogin, {}, "login expired");
        // Reads (lists, a page of messages, online agents) take READ_COST from the connection's bucket.
        if (DESK_READS.has(apiKey) && limits.take(s, "read")) return reply(s, apiKey, Codes.rateLimited, {}, "too many requests");
        if (state.as === "agent") {
          // A record disabled since the login ends the session.
          const a = await desk.agentRecord(s.userId);
          if (typeof a === "string") return reply(s, apiKey, Codes.relogin, {}, "login no longer valid");
          state.agent = a;
          return await agentRequest(s, s.userId, apiKey, fields);
        }
        return await guestRequest(s, s.userId, apiKey, fields);
      } catch (err) {
        const e = storeFailure(err);
        if (!(e instanceof CoreError)) log.error(`desk ${apiKey} from ${s.userId}: ${(e as Error).stack ?? e}`);
        if (e instanceof CoreError) reply(s, fields.api_key, deskErrorCode(apiKey, e.name), {}, e.message);
        else reply(s, fields.api_key, deskErrorCode(apiKey, "internal"), {}, "internal error, retry later");
      }
    },

    close(s) {
      const state = st(s);
      const id = s.userId;
      if (!id || !state.as) return;
      // After the login's routing step, so the routing state sees this session come and then go (a step
      // that failed counted nothing).
      const down = state.as === "agent" ? () => desk.agentDown(id) : () => desk.guestDown(id);
      void (state.up ?? Promise.resolve()).then(down, () => {});
    },

    encode(ev: CoreEvent): string | undefined {
      switch (ev.type) {
        case "message":
          if (!guestOf(ev.msg.conv)) return undefined;
          return frame(Push.message, Push.message, { gid: guestOf(ev.msg.conv), message_info: messageInfo(ev.msg) }, "new message");
        case "desk": {
          const gid = ev.guest.id;
          if (ev.change === "assigned") {
            return frame(Push.assigned, Push.assigned, { gid, guest_info: ev.guest, recs: (ev.recs ?? []).map(messageInfo), ...(ev.from ? { from_aix: ev.from } : {}) }, "guest online");
          }
          if (ev.change === "handed_over") return frame(Push.handedOver, Push.handedOver, { gid, aix: ev.agent, guest_info: ev.guest }, "transfer done");
          return frame(Push.agent, Push.agent, { gid, aix: ev.agent }, "agent assigned");
        }
        default:
          return undefined;
      }
    },
  };
}
