// One Bun.serve per port. WebSocket upgrades go straight to Bun's native handler (one handler for all
// dialects, state on ws.data); every other request goes to the Elysia app. The bench compares this
// path with a bare Bun.serve echo server (bench/README.md).
import type { Server, ServerWebSocket } from "bun";
import type { App } from "../app.ts";
import { CloseCodes } from "../core/errors.ts";
import { metric, onCollect } from "../core/metrics.ts";
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
const mConnections = metric("chat_connections", "Open WebSocket connections", "gauge");
const perDialect = new Map<string, { conns: { value: number }; frames: { value: number } }>();

/** Open connections and frames received, per protocol. */
function dialectCounter(name: string) {
  let c = perDialect.get(name);
  if (!c)
    perDialect.set(
      name,
      (c = {
        conns: metric("chat_connections_by_dialect", "Open connections per protocol", "gauge", { dialect: name }),
        frames: metric("chat_frames_in_total", "Frames received from sockets, per protocol", "counter", { dialect: name }),
      }),
    );
  return c;
}

/**
 * Frames of a connection that is not yet authenticated run one after another (an auth frame and the
 * frames right behind it must not race, nor those behind a connection's open); after that they run as they come, so pipelined sends share
 * group commits instead of waiting for each other.
 */
function run(app: App, s: Session, fn: () => unknown, serial = false): void {
  const go = async () => {
    try {
      await fn();
    } catch (e) {
      app.log.error(`${s.dialect.name} session ${s.id}: ${(e as Error).stack ?? e}`);
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

export function listen(
  app: App,
  http: Handler,
  routes: Record<string, Dialect>,
  opts: { port: number; hostname: string; reusePort?: boolean; anyPath?: Dialect },
): Listener {
  const { cfg, hub } = app;
  onCollect(() => (mConnections.value = hub.all.size));

  const server = Bun.serve<Session>({
    port: opts.port,
    hostname: opts.hostname,
    reusePort: opts.reusePort,
    async fetch(req, server) {
      const url = new URL(req.url);
      const dialect = opts.anyPath ?? routes[url.pathname];
      if (!dialect || req.headers.get("upgrade")?.toLowerCase() !== "websocket") return http.fetch(req);
      if (app.draining) return new Response("shutting down", { status: 503 });
      const pre = dialect.upgrade ? await dialect.upgrade(req, url, server.requestIP(req)?.address ?? "") : {};
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
        dialectCounter(s.dialect.name).conns.value++;
        run(app, s, () => s.dialect.open(s), true); // frames right behind wait for the welcome
      },
      message(ws, data) {
        const s = ws.data;
        dialectCounter(s.dialect.name).frames.value++;
        if (s.dialect.quick?.(s, data)) return;
        run(app, s, () => s.dialect.message(s, data));
      },
      drain(ws) {
        hub.drained(ws.data);
      },
      close(ws, code, reason) {
        const s = ws.data;
        s.closed = true;
        hub.remove(s);
        dialectCounter(s.dialect.name).conns.value--;
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
