// One Bun.serve per port. WebSocket upgrades go straight to Bun's native handler (one handler for all
// dialects, state on ws.data); every other request goes to the Elysia app. The bench compares this
// path with a bare Bun.serve echo server (bench/README.md).
import type { Server, ServerWebSocket } from "bun";
import type { App } from "../app.ts";
import { CloseCodes, CoreError, ErrorCodes } from "../core/errors.ts";
import { storeFailure } from "../core/store-errors.ts";
import { metric, metricBy, onCollect } from "../core/metrics.ts";
import { NO_TOPICS, type Dialect, type Session } from "../hub/session.ts";

interface Handler {
  fetch(req: Request): Response | Promise<Response>;
}

export interface Listener {
  server: Server<Session>;
  port: number;
  dialect?: Dialect;
}

let nextId = 0;
const mBusy = metric("chat_frames_busy_total", "Frames refused for arriving past MAX_FRAMES_IN_FLIGHT of their connection");
const mConnections = metric("chat_connections", "Open WebSocket connections", "gauge");
/** Frames received, per protocol (open connections per protocol are the hub's: Hub.add). */
const framesOf = metricBy("chat_frames_in_total", "Frames received from sockets, per protocol", "counter", "dialect");

/**
 * A connection past MAX_FRAMES_IN_FLIGHT whose frames keep coming: after this many times the cap in a row
 * refused (each answered with the protocol's busy error), it is closed with CloseCodes.flood.
 */
const FLOOD_FACTOR = 16;

/**
 * Frames of a connection that is not yet authenticated run one after another (an auth frame and the
 * frames right behind it must not race, nor those behind a connection's open); after that they run as they come, so pipelined sends share
 * group commits instead of waiting for each other. A frame (`counted`) is in flight from here until its
 * handler is done, whether it runs or waits its turn: `listen` caps them per connection.
 */
function run(app: App, s: Session, fn: () => unknown, serial = false, counted = false): void {
  if (counted) s.inflight++;
  const go = async () => {
    try {
      await fn();
    } catch (e) {
      app.log.error(`${s.dialect.name} session ${s.id}: ${(e as Error).stack ?? e}`);
    } finally {
      if (counted) s.inflight--;
    }
  };
  const chain = s.state.__chain as Promise<void> | undefined;
  if (!serial && s.userId && !chain) return void go();
  const next = (chain ?? Promise.resolve()).then(go);
  s.state.__chain = next;
  next.finally(() => {
    if (s.state.__chain === next) s.state.__chain = undefined;
  });
}

/**
 * The largest body a route takes. No route takes uploads, so it is MAX_BODY_BYTES for all; a route that
 * takes uploads gets its own limit here (and Bun's maxRequestBodySize becomes the largest of them).
 */
function bodyLimit(_path: string, max: number): number {
  return max;
}

const tooLarge = (max: number) =>
  Response.json({ code: ErrorCodes.bad_request, error: "bad_request", message: `the body is over ${max} bytes` }, { status: 413, headers: { connection: "close" } });

/**
 * Refuses a body over `max` bytes with 413 before it is read: a Content-Length over it at once, a chunked
 * body as soon as its bytes pass it (what came so far is dropped). A body under the limit is passed on
 * (a chunked one, read here, as a buffer).
 */
async function limitBody(req: Request, max: number): Promise<Request | Response> {
  if (!req.body) return req;
  const length = req.headers.get("content-length");
  if (length !== null) return Number(length) > max ? tooLarge(max) : req;
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      void reader.cancel().catch(() => {});
      return tooLarge(max);
    }
    chunks.push(value);
  }
  const headers = new Headers(req.headers);
  headers.delete("transfer-encoding");
  return new Request(req.url, { method: req.method, headers, body: Buffer.concat(chunks) });
}

/**
 * A handshake whose login could not be checked: a value the store refused (a NUL in an account name) is a
 * 400, a store that cannot be reached a 503 (retryable), anything else a logged 500.
 */
function upgradeFailed(app: App, dialect: Dialect, err: unknown): Response {
  const e = storeFailure(err);
  if (e instanceof CoreError) {
    const status = e.name === "unavailable" ? 503 : e.name === "unauthorized" ? 401 : e.name === "rate_limited" ? 429 : 400;
    return Response.json({ code: e.code, error: e.name, message: e.message }, { status, headers: status === 503 ? { "retry-after": "1" } : {} });
  }
  app.log.error(`${dialect.name} handshake: ${(err as Error).stack ?? err}`);
  return Response.json({ code: ErrorCodes.internal, error: "internal", message: "internal error, retry later" }, { status: 500 });
}

export function listen(
  app: App,
  http: Handler,
  routes: Record<string, Dialect>,
  opts: {
    port: number;
    hostname: string;
    reusePort?: boolean;
    anyPath?: Dialect;
    /** paths of long-poll requests → their idle timeout in seconds (Bun's default would cut them at 10 s) */
    holds?: ReadonlyMap<string, number>;
  },
): Listener {
  const { cfg, hub } = app;
  onCollect(() => (mConnections.value = hub.all.size));

  const server = Bun.serve<Session>({
    port: opts.port,
    hostname: opts.hostname,
    reusePort: opts.reusePort,
    // Bun's own cap, for every route: the largest per-route limit (bodyLimit).
    maxRequestBodySize: cfg.maxBodyBytes,
    async fetch(req, server) {
      const url = new URL(req.url);
      const dialect = opts.anyPath ?? routes[url.pathname];
      if (!dialect || req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        const hold = opts.holds?.get(url.pathname);
        if (hold !== undefined) server.timeout(req, hold);
        const limited = await limitBody(req, bodyLimit(url.pathname, cfg.maxBodyBytes));
        return limited instanceof Response ? limited : http.fetch(limited);
      }
      if (app.draining) return new Response("shutting down", { status: 503 });
      let pre: Awaited<ReturnType<NonNullable<Dialect["upgrade"]>>>;
      try {
        pre = dialect.upgrade ? await dialect.upgrade(req, url, server.requestIP(req)?.address ?? "") : {};
      } catch (err) {
        return upgradeFailed(app, dialect, err);
      }
      if (pre instanceof Response) return pre;
      // The request (its headers, its URL) is not kept: a dialect reads what it needs in upgrade().
      // Holding them cost about 1.5 KB per idle connection (bench: connections).
      const session: Session = {
        id: `${++nextId}`,
        dialect,
        codec: pre.codec ?? dialect.name,
        userId: pre.userId,
        role: pre.role,
        ws: undefined as unknown as ServerWebSocket<Session>,
        closed: false,
        topics: NO_TOPICS as Set<string>,
        inflight: 0,
        refusedInRow: 0,
        framesOut: 0,
        state: pre.state ?? {},
      };
      if (server.upgrade(req, { data: session })) return undefined as unknown as Response;
      return new Response("WebSocket upgrade failed", { status: 400 });
    },
    websocket: {
      maxPayloadLength: cfg.maxFrameBytes,
      idleTimeout: cfg.idleTimeoutSec,
      backpressureLimit: cfg.backpressureBytes,
      closeOnBackpressureLimit: false,
      sendPings: true,
      open(ws) {
        const s = ws.data;
        s.ws = ws;
        hub.add(s);
        run(app, s, () => s.dialect.open(s), true); // frames right behind wait for the welcome
      },
      message(ws, data) {
        const s = ws.data;
        framesOf(s.dialect.name).value++;
        if (s.dialect.quick?.(s, data)) return;
        // Every protocol alike: at most MAX_FRAMES_IN_FLIGHT frames of one connection are handled at once
        // (reads and writes queue for the store, so a pipelining client would otherwise delay everyone).
        // A frame past it is answered with the protocol's busy error; one that keeps flooding is closed.
        if (s.inflight >= cfg.maxFramesInFlight) {
          if (++s.refusedInRow > cfg.maxFramesInFlight * FLOOD_FACTOR) {
            if (!s.closed) ws.close(CloseCodes.flood, "too many frames in flight");
            return;
          }
          mBusy.value++;
          return s.dialect.busy(s, data);
        }
        s.refusedInRow = 0;
        run(app, s, () => s.dialect.message(s, data), false, true);
      },
      drain(ws) {
        hub.drained(ws.data);
      },
      close(ws, code, reason) {
        const s = ws.data;
        s.closed = true;
        hub.remove(s);
        run(app, s, () => s.dialect.close(s, code, reason));
      },
    },
  });
  hub.addServer(server);
  return { server, port: server.port!, dialect: opts.anyPath };
}

/** Tells every client of this node to reconnect elsewhere (SIGTERM, rolling restarts). */
export function closeAll(app: App, reason = "server shutting down"): void {
  for (const s of app.hub.all) s.ws.close(CloseCodes.shutdown, reason);
}
