// The native protocol at /ws: JSON text frames or msgpack binary frames (docs/protocol.md). A translator:
// decode.ts turns bytes into a typed frame, commands.ts maps each frame type onto a core command, encode.ts
// turns replies and events into bytes. This file is the Dialect the transport calls: login, the rate limit,
// and a core error answered as an error frame.
import type { App } from "../../app.ts";
import type { PageMarks } from "../../core/delivery.ts";
import { CloseCodes, CoreError, ErrorCodes, type ErrorName } from "../../core/errors.ts";
import { Deadlines } from "../../hub/expiry.ts";
import { storeFailure } from "../../core/store-errors.ts";
import type { Dialect, Session } from "../../hub/session.ts";
import { commands, PAGE, type NativeCore } from "./commands.ts";
import { decode, frameId, quickPing } from "./decode.ts";
import { encode, errorFrame, JSON_CODEC, MSGPACK, pong, serialize } from "./encode.ts";

interface NativeState {
  binary: boolean;
  /** expiry (seconds) of the token the handshake carried */
  exp?: number;
}

const st = (s: Session) => s.state as unknown as NativeState;

/** What the native protocol uses of the node: its core services, the hub, the limits and two settings. */
export type NativeNode = NativeCore & Pick<App, "logins" | "hub" | "cfg" | "limits" | "log">;

export function nativeDialect(app: NativeNode): Dialect {
  const { logins, hub, cfg, limits, log } = app;
  const expiries = new Deadlines((s) => s.ws.close(CloseCodes.authFailed, "token expired"));

  const reply = (s: Session, obj: Record<string, unknown>, page?: PageMarks) => hub.send(s, serialize(obj, st(s).binary), page);
  const error = (s: Session, id: unknown, name: ErrorName, message: string, extra?: object) => reply(s, errorFrame(id, name, message, extra));

  /**
   * Authenticates the connection; a token for another user than the one bound is refused. `welcome` is sent before
   * any push of the user (the hub holds pushes that come while the login is being bound).
   */
  async function bind(s: Session, userId: string, role: string, exp: number | undefined, welcome: () => void): Promise<void> {
    if (s.userId && s.userId !== userId) throw new CoreError("forbidden", "token is for another user");
    if (!s.userId) await hub.bindUser(s, userId, role, welcome);
    else welcome();
    if (exp) expiries.set(s, exp * 1000);
    else expiries.clear(s);
  }

  async function auth(s: Session, id: unknown, token: unknown): Promise<void> {
    const user = (await logins.byJwt(token))?.user;
    if (!user) {
      error(s, id, "unauthorized", "invalid or expired token");
      return s.ws.close(CloseCodes.authFailed, "invalid token");
    }
    await bind(s, user.id, user.role, user.exp, () => reply(s, { t: "welcome", id, user: user.id, node: hub.nodeId, ts: Date.now() }));
  }

  async function handle(s: Session, type: string, id: unknown, f: any): Promise<void> {
    if (type === "ping") return void reply(s, { t: "pong", id, ts: Date.now() });
    if (type === "auth") return auth(s, id, f.token);
    const me = s.userId;
    if (!me) return void error(s, id, "unauthorized", "send an auth frame first");
    const cmd = commands.get(type)!;
    const wait = cmd.charge ? limits.take(s, cmd.charge) : 0;
    if (wait) {
      const what = cmd.charge === "read" ? "requests" : "messages";
      return void error(s, id, "rate_limited", `too many ${what}, retry in ${wait} ms`, { retryAfterMs: wait });
    }
    const { [PAGE]: page, ...out } = await cmd.run({ core: app, s, me }, f);
    reply(s, { t: type, id, ...out }, page);
  }

  // The last pong written: pings with the same id in the same millisecond are answered with the same string.
  let lastPong: { at: number; id: string | null; frame: string } = { at: 0, id: null, frame: "" };
  return {
    name: "native",

    async upgrade(req, url) {
      const binary = url.searchParams.get("format") === "msgpack";
      const state: NativeState = { binary };
      const codec = binary ? MSGPACK : JSON_CODEC;
      const token = url.searchParams.get("token") ?? req.headers.get("authorization")?.replace(/^Bearer /i, "");
      if (!token) return { codec, state: state as never };
      const user = (await logins.byJwt(token))?.user;
      if (!user) {
        return new Response(JSON.stringify({ code: ErrorCodes.unauthorized, error: "unauthorized", message: "invalid or expired token" }), {
          status: 401,
          headers: { "content-type": "application/json" },
        });
      }
      state.exp = user.exp;
      return { codec, userId: user.id, role: user.role, state: state as never };
    },

    async open(s) {
      if (s.userId) {
        const userId = s.userId;
        s.userId = undefined;
        await bind(s, userId, s.role ?? "user", st(s).exp, () => reply(s, { t: "welcome", user: userId, node: hub.nodeId, ts: Date.now() }));
      }
    },

    // Heartbeats are most of the frames: a JSON ping of the documented shape is answered right here,
    // without the schema check and the async path (anything else falls through to message()).
    quick(s, data) {
      const id = quickPing(data);
      if (id === undefined) return false;
      const now = Date.now();
      if (now !== lastPong.at || id !== lastPong.id) lastPong = { at: now, id, frame: pong(id, now) };
      hub.send(s, lastPong.frame);
      return true;
    },

    busy(s, data) {
      error(s, frameId(data), "rate_limited", `too many frames in flight (at most ${cfg.maxFramesInFlight}): wait for replies`);
    },

    async message(s, data) {
      const d = decode(data);
      if ("error" in d) return void error(s, d.id, d.error, d.message);
      try {
        await handle(s, d.type, d.id, d.frame);
      } catch (err) {
        const e = storeFailure(err);
        if (e instanceof CoreError) error(s, d.id, e.name, e.message, e.retryAfterMs ? { retryAfterMs: e.retryAfterMs } : undefined);
        else {
          log.error(`native ${d.type} from ${s.userId}: ${(e as Error).stack ?? e}`);
          error(s, d.id, "internal", "internal error, retry later");
        }
      }
    },

    close(s) {
      expiries.clear(s);
    },

    encode,
  };
}
