// HTTP: health, metrics, and the server API for app backends (`Authorization: apikey <API_KEY>`).
// Route schemas validate input and generate the OpenAPI document served at /openapi/json.
import { openapi } from "@elysiajs/openapi";
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { CoreError } from "../core/errors.ts";
import { driverError, storeDown, storeFailure } from "../core/store-errors.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { renderMetrics } from "../core/metrics.ts";
import { apiGate, metricsKeyOk, serverAuth } from "./auth.ts";
import { deskHttp } from "./desk.ts";
import { messagingHttp } from "./groups.ts";
import { jimHttp } from "./jim.ts";
import { liveHttp } from "./live.ts";
import { livepushApi } from "./livepush.ts";
import { livepushHttp } from "../dialects/livepush/index.ts";
import { presenceHttp } from "./presence.ts";
import { roomsHttp } from "./rooms.ts";
import { ErrorBody, errorBody, httpStatus, UserId } from "./schemas.ts";
import { socialHttp } from "./social.ts";
import { socialApi } from "../dialects/social/index.ts";
import type { ConsoleStats } from "../console/stats.ts";
import type { ConsoleStreams } from "../console/stream.ts";
import { consoleHttp } from "./console.ts";
import { OPENAPI_UI, openapiAssets } from "./openapi-assets.ts";

const UserFields = {
  nick: t.Optional(t.String({ maxLength: 128 })),
  avatar: t.Optional(t.String({ maxLength: 1024 })),
  role: t.Optional(t.Union(["user", "host", "agent", "advisor", "visitor", "robot", "service"].map((r) => t.Literal(r)))),
  sex: t.Optional(t.Integer({ minimum: 0, maximum: 2 })),
  vip: t.Optional(t.Integer({ minimum: 0 })),
  attributes: t.Optional(t.Record(t.String(), t.Unknown())),
  /** For protocols that log in with a user name and password (stored as an argon2id hash). */
  password: t.Optional(t.String({ minLength: 1, maxLength: 256 })),
  disabled: t.Optional(t.Boolean()),
};

const UserOut = t.Object({
  id: t.String(),
  nick: t.String(),
  avatar: t.String(),
  role: t.String(),
  sex: t.Integer(),
  vip: t.Integer(),
  attributes: t.Record(t.String(), t.Unknown()),
  disabled: t.Boolean(),
});

type UserRow = Awaited<ReturnType<App["store"]["getUser"]>> & {};
const userOut = (u: UserRow) => ({
  id: u.id,
  nick: u.nick,
  avatar: u.avatar,
  role: u.role,
  sex: u.sex,
  vip: u.vip,
  attributes: u.attributes,
  disabled: u.disabled,
});

/** The server API's users: create or update, read, issue a client token. */
function usersHttp(app: Pick<App, "store" | "tokens" | "chat">, apiKey: string | undefined) {
  const { store, tokens, chat } = app;
  return new Elysia({ prefix: "/api" })
    .use(serverAuth(apiKey))
    .post(
      "/users",
      async ({ body }) => {
        const { password, ...rest } = body;
        const u = await store.upsertUser({ ...rest, passwordHash: password ? await Bun.password.hash(password) : undefined });
        chat.forgetUser(u.id);
        return userOut(u);
      },
      {
        body: t.Object({ id: t.String({ pattern: USER_ID_RE.source }), ...UserFields }),
        response: { 200: UserOut, 401: ErrorBody },
        detail: { summary: "Create or update a user", tags: ["users"] },
      },
    )
    .get(
      "/users/:id",
      async ({ params, set }) => {
        const u = await store.getUser(params.id);
        if (!u) {
          set.status = 404;
          return errorBody("not_found", `no user ${params.id}`);
        }
        return userOut(u);
      },
      { params: t.Object({ id: UserId() }), response: { 200: UserOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody }, detail: { summary: "Read a user", tags: ["users"] } },
    )
    .post(
      "/users/:id/token",
      async ({ params, body, set }) => {
        const u = await store.getUser(params.id);
        if (!u || u.disabled) {
          set.status = 404;
          return errorBody("not_found", `no active user ${params.id}`);
        }
        return tokens.issue(u.id, body?.ttlSec ?? 86400);
      },
      {
        params: t.Object({ id: UserId() }),
        body: t.Optional(t.Object({ ttlSec: t.Optional(t.Integer({ minimum: 1, description: "seconds, default 86400; at most TOKEN_MAX_TTL_SEC (400 above it)" })) })),
        response: { 200: t.Object({ token: t.String(), expiresAt: t.Number() }), 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Issue a client token (JWT, HS256) for a user", tags: ["users"] },
      },
    );
}

/** The HTTP app: health, metrics and the server API's routers, each given the services it calls. */
export function httpApp(app: App, consoleStats?: ConsoleStats, consoleStreams?: ConsoleStreams) {
  const { cfg, store } = app;

  /**
   * Why the store is down, or undefined when it answers: one `select 1` at a time (concurrent health checks
   * share it), given up after HEALTH_TIMEOUT_MS, so a store that hangs is reported instead of hanging the check.
   */
  let probe: Promise<string | undefined> | undefined;
  function storeHealth(): Promise<string | undefined> {
    if (probe) return probe;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${app.cfg.healthTimeoutMs} ms${app.writesFailing() ? `; writes failing: ${app.writesFailing()}` : ""}`), app.cfg.healthTimeoutMs);
    });
    const ping = store.ping().then(
      () => undefined,
      (e) => storeDown(e) ?? driverError(e).message,
    );
    probe = Promise.race([ping, timeout]).finally(() => {
      clearTimeout(timer);
      probe = undefined;
    });
    return probe;
  }

  const root = new Elysia()
    .use(
      openapi({
        path: "/openapi",
        // Swagger UI from the npm package swagger-ui-dist, served below: the page fetches nothing elsewhere.
        provider: "swagger-ui",
        swagger: { ...OPENAPI_UI } as never,
        documentation: {
          info: { title: "chatd server API", version: "0.1.0", description: "Server-to-server API for app backends." },
          components: { securitySchemes: { apikey: { type: "apiKey", in: "header", name: "Authorization" } } },
        },
      }),
    )
    .use(openapiAssets())
    // Authentication first: a request for the server API without its key is answered 401 before its
    // body is parsed or anything validated (the body limit is checked before this, in the transport).
    .onRequest(apiGate(cfg.apiKey))
    .onError(({ error: raw, code, set }) => {
      // A store failure is classified once (core/store-errors.ts): a refused value is a 400, an unreachable
      // store or a rolled-back transaction a retryable 503.
      const error = storeFailure(raw);
      if (error instanceof CoreError) {
        set.status = httpStatus[error.name] ?? 400;
        if (error.name === "unavailable") set.headers["retry-after"] = "1";
        return errorBody(error.name, error.message);
      }
      if (code === "VALIDATION") {
        set.status = 400;
        const first = (error as { all?: { path?: string; message?: string }[] }).all?.[0];
        return errorBody("bad_request", first ? `${first.path || "body"}: ${first.message}` : "invalid request");
      }
      // Elysia builds a validation error's text with the refused value in a template string: a value that
      // cannot become a string (an object whose own `toString` is not a function) throws a TypeError there
      // instead. Still a value that failed its schema.
      if (error instanceof TypeError && /elysia[/\\]dist[/\\]error\.m?js/.test(error.stack ?? "")) {
        set.status = 400;
        return errorBody("bad_request", "a value does not match the route's schema");
      }
      if (code === "NOT_FOUND") {
        set.status = 404;
        return errorBody("not_found", "no such route");
      }
      if (code === "PARSE") {
        set.status = 400;
        return errorBody("bad_request", "the body is not valid JSON");
      }
      app.log.error(`http: ${(error as Error).stack ?? error}`);
      set.status = 500;
      return errorBody("internal", "internal error");
    })
    .get(
      "/healthz",
      async ({ set }) => {
        const reason = await storeHealth();
        const storeOk = reason === undefined;
        const bus = app.bus.state();
        const ok = storeOk && bus === "ok" && !app.draining;
        if (!storeOk || app.draining) set.status = 503;
        return {
          status: ok ? "ok" : storeOk && !app.draining ? "degraded" : "down",
          node: app.cfg.nodeId,
          store: { driver: app.storeDriver, ok: storeOk, ...(reason ? { reason } : {}) },
          bus: { kind: app.bus.kind, state: bus },
          connections: app.hub.all.size,
          uptimeSec: Math.round((Date.now() - app.startedAt) / 1000),
        };
      },
      {
        detail: {
          summary: "Store and bus state",
          description:
            "503 when the store is down (with `store.reason`) or the node is draining; answered within HEALTH_TIMEOUT_MS: " +
            "the store is probed with `select 1` (one probe shared by concurrent checks) and counts as down when it does not answer in time.",
          tags: ["ops"],
        },
      },
    )
    .get(
      "/metrics",
      ({ headers }) => {
        // METRICS_KEY set: only a scraper presenting it (`Authorization: Bearer <key>`) reads the metrics.
        if (!metricsKeyOk(cfg.metricsKey, headers.authorization)) {
          return new Response("missing or wrong `Authorization: Bearer <METRICS_KEY>`\n", { status: 401, headers: { "www-authenticate": "Bearer" } });
        }
        return new Response(renderMetrics(), { headers: { "content-type": "text/plain; version=0.0.4" } });
      },
      {
        detail: {
          summary: "Prometheus metrics",
          description: "Open unless METRICS_KEY is set; then `Authorization: Bearer <METRICS_KEY>` is required (401 otherwise).",
          tags: ["ops"],
        },
      },
    )
    .use(usersHttp(app, cfg.apiKey))
    .use(messagingHttp(app, cfg.apiKey))
    .use(liveHttp(app, cfg.apiKey))
    .use(socialHttp(app, cfg.apiKey))
    .use(deskHttp(app, cfg.apiKey))
    .use(roomsHttp(app, cfg.apiKey))
    .use(jimHttp(app, cfg.apiKey))
    .use(presenceHttp(app, cfg.apiKey))
    .use(socialApi(app))
    .use(livepushApi(app, cfg.apiKey))
    .use(livepushHttp(app))
    .use(consoleStats ? consoleHttp(app, cfg.apiKey, consoleStats, consoleStreams) : new Elysia());
  // The console's live streams read the server API through this app itself (its key check, its routes).
  consoleStreams?.serveWith((req) => root.handle(req));
  return root;
}
