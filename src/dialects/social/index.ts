// The community app's chat API (seed 003, docs/social.md): HTTP interfaces under /anlife/v1.0/chat/ answered
// `{"datas": …}` or `{"error_code", "error_msg"}`, and this server's push socket at /anlife/v1.0/chat/push. A
// translator: decode.ts reads parameters, commands.ts maps each interface onto the core, encode.ts writes
// answers and pushes. This file authenticates (before a body is read when the token is in the query or an
// `Authorization: Bearer` header), charges the caller's rate limit and answers refusals in the protocol's format.
import { Elysia } from "elysia";
import type { App } from "../../app.ts";
import { CloseCodes, CoreError } from "../../core/errors.ts";
import { storeFailure } from "../../core/store-errors.ts";
import { Deadlines } from "../../hub/expiry.ts";
import type { Dialect, Session } from "../../hub/session.ts";
import { apiKeyOk } from "../../http/auth.ts";
import { socialInterfaces, type Interface, type SocialCore } from "./commands.ts";
import { bearer, PARAM_ERROR, readParams, Refusal } from "./decode.ts";
import { CODES, encodePush, failure, formats, ok } from "./encode.ts";

export const SOCIAL_BASE = "/anlife/v1.0/chat";
export const SOCIAL_PUSH_PATH = `${SOCIAL_BASE}/push`;

/** What the social API uses of the node. */
export type SocialNode = SocialCore & Pick<App, "logins" | "limits" | "cfg" | "log">;

const NOT_LOGGED_IN = CODES.unauthorized;

function answer(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", ...headers } });
}

/** A refusal in the protocol's format; retryable ones (rate, busy) carry Retry-After. */
function refused(code: string, detail: string, retryAfterMs?: number): Response {
  const retry = code === CODES.rate_limited || code === CODES.unavailable;
  return answer(failure(code, detail), 200, retry ? { "retry-after": String(Math.max(1, Math.ceil((retryAfterMs ?? 1000) / 1000))) } : {});
}

/** The HTTP interfaces, one Elysia route each (bodies are read here, not by Elysia: `parse: "none"`). */
export function socialApi(app: SocialNode) {
  const { logins, limits, cfg, log } = app;
  const fmt = formats(cfg);
  const table = socialInterfaces(app);

  async function handle(name: string, it: Interface, req: Request): Promise<Response> {
    try {
      if (it.method === "POST" && req.method !== "POST") return refused(PARAM_ERROR, `${name} takes POST`);
      const url = new URL(req.url);
      let me = "";
      if (it.auth === "cms") {
        // The back office only: the server API key, checked before the body is read.
        if (!apiKeyOk(cfg.apiKey, req.headers.get("authorization") ?? undefined)) return refused(NOT_LOGGED_IN, "the back office interfaces need `Authorization: apikey <key>`");
      }
      // A token in the header or the query string is checked before the body is read.
      const early = bearer(req) ?? url.searchParams.get("token") ?? undefined;
      let who = it.auth === "user" && early !== undefined ? await logins.byToken(early) : undefined;
      if (it.auth === "user" && early !== undefined && !who) return refused(NOT_LOGGED_IN, "invalid or expired token");
      // The body: at most MAX_BODY_BYTES (the transport refused a larger one before this).
      const p = await readParams(req, url);
      if (it.auth === "user") {
        if (!who) {
          const token = p.get("token");
          who = typeof token === "string" && token ? await logins.byToken(token) : undefined;
          if (!who) return refused(NOT_LOGGED_IN, token ? "invalid or expired token" : "`uid` and `token` are required");
        }
        const uid = p.get("uid");
        if (uid !== undefined && uid !== "" && String(uid) !== who.id) return refused(NOT_LOGGED_IN, "the token is not the token of `uid`");
        me = who.id;
        const wait = limits.takeUser(me, it.charge);
        if (wait) return refused(CODES.rate_limited, `too many requests, retry in ${wait} ms`, wait);
      }
      const datas = await it.run({ me, fmt }, p);
      return answer(it.alsoAs ? { ...ok(datas), [it.alsoAs]: datas } : ok(datas));
    } catch (err) {
      if (err instanceof Refusal) return refused(err.code, err.message);
      const e = storeFailure(err);
      if (e instanceof CoreError) return refused(CODES[e.name], e.message, e.retryAfterMs);
      log.error(`social ${name}: ${(err as Error).stack ?? err}`);
      return answer(failure(CODES.internal, "internal error"), 500);
    }
  }

  // Routes are added in a loop: the route types Elysia accumulates are not needed here.
  const api = new Elysia({ name: "social-api", prefix: SOCIAL_BASE }) as unknown as Elysia<typeof SOCIAL_BASE>;
  for (const [name, it] of table) {
    const detail = { summary: `${name}: ${it.summary}`, description: "Social API (docs/social.md): `uid` + `token`, or the server API key for cms/*. Answers `{datas}` or `{error_code, error_msg}`.", tags: ["social"] };
    const handler = ({ request }: { request: Request }) => handle(name, it, request);
    api.post(`/${name}`, handler, { parse: "none", detail });
    api.get(`/${name}`, handler, { detail });
  }
  // Anything else under the base path: the protocol's parameter error, not the server API's 404.
  api.all("/*", () => refused(PARAM_ERROR, "no such interface"), { parse: "none", detail: { hide: true } });
  return api;
}

interface PushState {
  refused?: boolean;
  exp?: number;
}
const st = (s: Session) => s.state as unknown as PushState;

/**
 * The push socket (an addition: the seed names no push transport): `GET /anlife/v1.0/chat/push?uid=..&token=..`
 * (or `Authorization: Bearer`) upgraded to a WebSocket that carries the seed's message pushes, receipt and
 * friend pushes. A push counts as delivered once written out: the offline interface does not give it again.
 */
export function socialPush(app: Pick<App, "logins" | "hub" | "cfg">): Dialect {
  const { logins, hub } = app;
  const fmt = formats(app.cfg);
  const expiries = new Deadlines((s) => s.ws.close(CloseCodes.authFailed, "token expired"));
  const send = (s: Session, o: unknown) => hub.send(s, JSON.stringify(o));
  return {
    name: "social",
    marksOnPush: true,

    async upgrade(req, url) {
      const token = bearer(req) ?? url.searchParams.get("token") ?? undefined;
      const who = token ? await logins.byToken(token) : undefined;
      const uid = url.searchParams.get("uid");
      if (!who || (uid && uid !== who.id)) return answer(failure(NOT_LOGGED_IN, who ? "the token is not the token of `uid`" : "invalid or missing token"), 401);
      return { userId: who.id, role: who.role, state: { exp: who.exp } as never };
    },

    async open(s) {
      const userId = s.userId!;
      s.userId = undefined;
      const exp = st(s).exp;
      if (exp) expiries.set(s, exp * 1000);
      // The welcome goes out first; pushes that arrive meanwhile wait behind it.
      await hub.bindUser(s, userId, s.role ?? "user", () => send(s, { welcome: { uid: userId } }));
    },

    message(s, data) {
      const text = typeof data === "string" ? data : data.toString("utf8");
      if (text.trim() === "ping") return void hub.send(s, "pong");
      send(s, failure(PARAM_ERROR, "this socket only pushes; send `ping` to keep it alive"));
    },

    busy(s) {
      send(s, failure(CODES.rate_limited, "too many frames in flight"));
    },

    close(s) {
      expiries.clear(s);
    },

    encode: (ev) => encodePush(ev, fmt),
  };
}
