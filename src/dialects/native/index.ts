// The native protocol at /ws: JSON text frames or msgpack binary frames (docs/protocol.md).
import { pack, unpack } from "msgpackr";
import type { App } from "../../app.ts";
import { CloseCodes, CoreError, ErrorCodes } from "../../core/errors.ts";
import { TokenBucket } from "../../core/ratelimit.ts";
import { directConvId, directPeer, groupIdOf, roomIdOf } from "../../core/conv-ids.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import { Deadlines } from "../../hub/expiry.ts";
import { storeFailure } from "../../core/store-errors.ts";
import type { Dialect, Frame, Session } from "../../hub/session.ts";
import { check, errorFrame, type FrameOf } from "./frames.ts";
import { groupFrame } from "./groups.ts";
import { roomEvent, roomFrame } from "./rooms.ts";
import { socialFrames } from "./social.ts";

interface NativeState {
  binary: boolean;
  /** send rate limit, made on the first send (most connections of a live room never send) */
  bucket?: TokenBucket;
  /** expiry (seconds) of the token the handshake carried */
  exp?: number;
}

const MSGPACK = "native/mp";
/** Frames that only read: each takes READ_COST tokens from the connection's bucket. */
const READS = new Set(["sync", "history", "convs", "receipts", "readers"]);
const st = (s: Session) => s.state as unknown as NativeState;

export function nativeDialect(app: App): Dialect {
  const { chat, tokens, hub, cfg, groups, recalls, live } = app;
  const expiries = new Deadlines((s) => s.ws.close(CloseCodes.authFailed, "token expired"));
  const bucketOf = (s: Session) => (st(s).bucket ??= new TokenBucket(cfg.sendRate, cfg.sendBurst));

  const encode = (s: Session, obj: unknown): Frame => (st(s).binary ? pack(obj) : JSON.stringify(obj));
  const reply = (s: Session, obj: Record<string, unknown>) => hub.send(s, encode(s, obj));
  const error = (s: Session, id: unknown, name: keyof typeof ErrorCodes, message: string, extra?: object) =>
    reply(s, errorFrame(id, name, message, extra));

  /** Authenticates the connection; a token for another user than the one bound is refused. */
  async function bind(s: Session, userId: string, role: string, exp?: number): Promise<void> {
    if (s.userId && s.userId !== userId) throw new CoreError("forbidden", "token is for another user");
    if (!s.userId) await hub.bindUser(s, userId, role);
    if (exp) expiries.set(s, exp * 1000);
    else expiries.clear(s);
  }

  async function handle(s: Session, type: string, f: any): Promise<void> {
    if (type === "ping") return void reply(s, { t: "pong", id: f.id, ts: Date.now() });
    if (type === "auth") {
      const who = await tokens.verify(f.token);
      const user = who && (await chat.activeUser(who.userId));
      if (!who || !user) {
        error(s, f.id, "unauthorized", "invalid or expired token");
        return s.ws.close(CloseCodes.authFailed, "invalid token");
      }
      await bind(s, user.id, user.role, who.exp);
      return void reply(s, { t: "welcome", id: f.id, user: who.userId, node: hub.nodeId, ts: Date.now() });
    }
    const me = s.userId;
    if (!me) return void error(s, f.id, "unauthorized", "send an auth frame first");
    if (cfg.readCost && READS.has(type)) {
      const wait = bucketOf(s).take(undefined, cfg.readCost);
      if (wait) return void error(s, f.id, "rate_limited", `too many requests, retry in ${wait} ms`, { retryAfterMs: wait });
    }
    switch (type) {
      case "send": {
        const wait = bucketOf(s).take();
        if (wait) return void error(s, f.id, "rate_limited", `too many messages, retry in ${wait} ms`, { retryAfterMs: wait });
        const m = f as FrameOf<"send">;
        if (!m.to === !m.conv) return void error(s, f.id, "bad_request", "give exactly one of `to` (a user) or `conv`");
        const input = { kind: m.kind, body: m.body, cmid: m.cmid };
        const to = m.to ?? directPeer(m.conv!, me);
        if (!m.to && to && directConvId(me, to) !== m.conv) return void error(s, f.id, "not_member", `not a member of ${m.conv}`);
        const group = m.conv && groupIdOf(m.conv);
        let ack;
        if (to) ack = await chat.sendDirect(me, to, input, s.id);
        else if (group) ack = await groups.send(me, group, input, s.id);
        else return void error(s, f.id, "not_found", `cannot send to ${m.conv}`);
        return void reply(s, { t: "ack", id: f.id, msg: ack });
      }
      case "sync": {
        const m = f as FrameOf<"sync">;
        const page = m.mark ? await chat.pull(me, m, s.id) : await chat.pending(me, m);
        return void reply(s, { t: "sync", id: f.id, msgs: page.msgs, more: page.more });
      }
      case "delivered":
      case "read": {
        const m = f as FrameOf<"read">;
        const seq = await chat.advance(me, m.conv, type, m.seq);
        return void reply(s, { t: "ok", id: f.id, conv: m.conv, seq });
      }
      case "history": {
        const m = f as FrameOf<"history">;
        const room = roomIdOf(m.conv);
        const page = room !== undefined ? await live.history(room, m) : await chat.history(me, m.conv, m);
        return void reply(s, { t: "history", id: f.id, conv: m.conv, msgs: page.msgs, more: page.more });
      }
      case "convs": {
        const m = f as FrameOf<"convs">;
        return void reply(s, { t: "convs", id: f.id, convs: await chat.inbox(me, m) });
      }
      case "receipts": {
        const m = f as FrameOf<"receipts">;
        return void reply(s, { t: "receipts", id: f.id, conv: m.conv, counts: await chat.receiptCounts(me, m.conv, m.from, m.to) });
      }
      case "readers": {
        const m = f as FrameOf<"readers">;
        return void reply(s, { t: "readers", id: f.id, conv: m.conv, seq: m.seq, users: await chat.readers(me, m.conv, m.seq) });
      }
      case "recall": {
        const m = f as FrameOf<"recall">;
        if (!m.msg === !m.cmid) return void error(s, f.id, "bad_request", "give exactly one of `msg` (server id) or `cmid`");
        const msg = await recalls.recall(me, { id: m.msg, cmid: m.cmid }, s.id);
        return void reply(s, { t: "recalled", id: f.id, conv: msg.conv, msg: msg.id, seq: msg.seq });
      }
      case "join_room":
      case "leave_room":
      case "room_send":
        return void reply(s, { t: type, id: f.id, ...(await roomFrame(app, s, bucketOf(s), type, f)) });
      default:
        if (type.startsWith("group_")) return void reply(s, { t: type, id: f.id, ...(await groupFrame(groups, me, type, f)) });
        if (Object.hasOwn(socialFrames, type)) return void reply(s, { t: type, id: f.id, ...(await socialFrames[type]!(app.social, me, f)) });
        return void error(s, f.id, "unknown_type", `unknown frame type ${JSON.stringify(type)}`);
    }
  }

  return {
    name: "native",

    async upgrade(req, url) {
      const binary = url.searchParams.get("format") === "msgpack";
      const state: NativeState = { binary };
      const token = url.searchParams.get("token") ?? req.headers.get("authorization")?.replace(/^Bearer /i, "");
      if (!token) return { codec: binary ? MSGPACK : "native/json", state: state as never };
      const who = await tokens.verify(token);
      const user = who && (await chat.activeUser(who.userId));
      if (!who || !user) {
        return new Response(JSON.stringify({ code: ErrorCodes.unauthorized, error: "unauthorized", message: "invalid or expired token" }), {
          status: 401,
          headers: { "content-type": "application/json" },
        });
      }
      state.exp = who.exp;
      return { codec: binary ? MSGPACK : "native/json", userId: user.id, role: user.role, state: state as never };
    },

    async open(s) {
      if (s.userId) {
        const userId = s.userId;
        s.userId = undefined;
        await bind(s, userId, s.role ?? "user", st(s).exp);
        reply(s, { t: "welcome", user: userId, node: hub.nodeId, ts: Date.now() });
      }
    },

    // Heartbeats are most of the frames: a JSON ping of the documented shape is answered right here,
    // without the schema check and the async path (anything else falls through to message()).
    quick(s, data) {
      if (typeof data !== "string" || data.length > 96 || !data.startsWith('{"t":"ping"')) return false;
      let f: { t?: unknown; id?: unknown };
      try {
        f = JSON.parse(data);
      } catch {
        return false;
      }
      const id = f.id;
      let n = 0;
      for (const _ in f) n++;
      if (n > 2 || (n === 2 && !((typeof id === "string" && id.length <= 64) || Number.isInteger(id)))) return false;
      hub.send(s, id === undefined ? `{"t":"pong","ts":${Date.now()}}` : `{"t":"pong","id":${JSON.stringify(id)},"ts":${Date.now()}}`);
      return true;
    },

    busy(s, data) {
      let id: unknown;
      try {
        id = (typeof data === "string" ? JSON.parse(data) : unpack(data))?.id;
      } catch {}
      error(s, typeof id === "string" || typeof id === "number" ? id : undefined, "rate_limited", `too many frames in flight (at most ${cfg.maxFramesInFlight}): wait for replies`);
    },

    async message(s, data) {
      let f: unknown;
      try {
        f = typeof data === "string" ? JSON.parse(data) : unpack(data);
      } catch {
        return void error(s, undefined, "bad_frame", typeof data === "string" ? "text frames must be JSON" : "binary frames must be msgpack");
      }
      if (typeof f !== "object" || f === null || Array.isArray(f)) return void error(s, undefined, "bad_frame", "a frame is an object with a `t` field");
      const id = (f as { id?: unknown }).id;
      const c = check(f as Record<string, unknown>);
      if ("error" in c) return void error(s, typeof id === "string" || typeof id === "number" ? id : undefined, c.unknown ? "unknown_type" : "bad_request", c.error);
      try {
        await handle(s, c.type, c.frame);
      } catch (err) {
        const e = storeFailure(err);
        if (e instanceof CoreError) error(s, id, e.name, e.message, e.retryAfterMs ? { retryAfterMs: e.retryAfterMs } : undefined);
        else {
          app.log.error(`native ${c.type} from ${s.userId}: ${(e as Error).stack ?? e}`);
          error(s, id, "internal", "internal error, retry later");
        }
      }
    },

    close(s) {
      expiries.clear(s);
    },

    encode(ev: CoreEvent, codec: string): Frame | undefined {
      const out = (obj: unknown) => (codec === MSGPACK ? pack(obj) : JSON.stringify(obj));
      switch (ev.type) {
        case "message":
          return out({ t: "msg", msg: ev.msg satisfies Message });
        case "cursor":
          return out({ t: "receipt", conv: ev.conv, user: ev.user, field: ev.field, seq: ev.seq });
        case "receipts":
          return out({ t: "receipts", conv: ev.conv, counts: ev.counts });
        case "recall":
          return out({ t: "recall", conv: ev.conv, msg: ev.id, seq: ev.seq, from: ev.from });
        case "friend": {
          const { type: _t, to: _to, ...rest } = ev;
          return out({ t: "friend", ...rest });
        }
        case "member": {
          const { type: _t, to: _to, ...rest } = ev;
          return out({ t: "member", ...rest });
        }
        case "room":
        case "resync":
          return out(roomEvent(ev));
        case "gap":
          return out({ t: "gap" });
      }
    },
  };
}
