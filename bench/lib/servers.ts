// The servers under test, each a child process on a free port listening on every loopback address
// (the load generator spreads its connections over 127.0.0.1, .2, ...): ours (`bun src/main.ts`) and
// the peers in bench/peers/.
import { mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds, rssBytes, sleep } from "./machine.ts";
import { freePort } from "./services.ts";

export const ROOT = join(import.meta.dir, "../..");
export const BUN = process.execPath;
export const TOKEN_SECRET = "bench-secret-bench-secret-bench-secret-0001";
export const API_KEY = "bench-api-key";
export const LOGS = join(ROOT, "bench/results/logs");

export type ServerKind = "ours" | "bun-raw" | "node-ws" | "socketio" | "bun-http" | "bun-coalesce";
/** Peers that only make sense in a room fan-out (the others skip them). */
export const FANOUT_ONLY: ServerKind[] = ["bun-coalesce"];
/** How the load generator speaks to a server: our native protocol, plain echo/publish, Engine.IO framing. */
export type Proto = "native" | "raw" | "sio";
export const protoOf = (k: ServerKind): Proto => (k === "ours" ? "native" : k === "socketio" ? "sio" : "raw");

export const LABEL: Record<ServerKind, string> = {
  ours: "ours",
  "bun-raw": "Bun.serve raw",
  "node-ws": "Node ws",
  socketio: "Socket.IO",
  "bun-http": "Bun.serve raw HTTP",
  "bun-coalesce": "Bun.serve coalescing",
};

export interface Server {
  kind: ServerKind;
  port: number;
  pid: number;
  log: string;
  /** a full garbage collection in the server (SIGUSR2), then a pause for the allocator to give pages back */
  gc(): Promise<void>;
  cpu(): number;
  rss(): number;
  stop(): Promise<void>;
}

export interface StartOpts {
  databaseUrl?: string;
  redisUrl?: string;
  env?: Record<string, string>;
  name?: string;
}

export async function startServer(kind: ServerKind, opts: StartOpts = {}): Promise<Server> {
  const port = await freePort();
  mkdirSync(LOGS, { recursive: true });
  const log = join(LOGS, `${opts.name ?? kind}-${port}.log`);
  const fd = openSync(log, "w");
  const env: Record<string, string> = { ...(process.env as Record<string, string>), PORT: String(port), HOST: "0.0.0.0" };
  let cmd: string[];
  if (kind === "ours") {
    Object.assign(env, {
      TOKEN_SECRET,
      API_KEY,
      LOG_LEVEL: "warn",
      // The load generator is one client per connection at machine speed: the per-connection flood
      // limits would measure themselves, not the server.
      SEND_RATE: "1000000",
      SEND_BURST: "1000000",
      // fan-out keeps 256 messages in flight per sender
      MAX_FRAMES_IN_FLIGHT: "100000",
      IDLE_TIMEOUT_SEC: "120",
      NODE_ID: opts.name ?? `bench${port}`,
    });
    if (opts.databaseUrl) env.DATABASE_URL = opts.databaseUrl;
    else env.DATA_DIR = join(LOGS, `data-${port}`);
    if (opts.redisUrl) env.REDIS_URL = opts.redisUrl;
    // BENCH_PROFILE=1: each of our servers writes a CPU profile (markdown) under results/logs/prof at exit; =json: a .cpuprofile.
    cmd = process.env.BENCH_PROFILE ? [BUN, process.env.BENCH_PROFILE === "json" ? "--cpu-prof" : "--cpu-prof-md", `--cpu-prof-dir=${join(LOGS, "prof")}`, "bench/lib/ours.ts"] : [BUN, "bench/lib/ours.ts"];
  } else if (kind === "bun-raw") cmd = [BUN, "bench/peers/bun-raw.ts"];
  else if (kind === "bun-http") cmd = [BUN, "bench/peers/bun-http.ts"];
  else if (kind === "bun-coalesce") cmd = [BUN, "bench/peers/bun-coalesce.ts"];
  else {
    if (opts.redisUrl) env.REDIS_URL = opts.redisUrl;
    cmd = ["node", "--expose-gc", kind === "node-ws" ? "bench/peers/node-ws.mjs" : "bench/peers/socketio.mjs"];
  }
  Object.assign(env, opts.env);
  const proc = Bun.spawn(cmd, { cwd: ROOT, env, stdout: fd, stderr: fd, stdin: "ignore" });
  const started = Date.now();
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${kind} exited at start: ${tail(log)}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (r.ok) break;
    } catch {}
    if (Date.now() - started > 60_000) {
      proc.kill();
      throw new Error(`${kind} did not answer /healthz within 60 s: ${tail(log)}`);
    }
    await sleep(100);
  }
  return {
    kind,
    port,
    pid: proc.pid,
    log,
    async gc() {
      proc.kill("SIGUSR2");
      await sleep(1500);
    },
    cpu: () => cpuSeconds(proc.pid),
    rss: () => rssBytes(proc.pid),
    async stop() {
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "";
  }
}

/** Our native endpoint (tokens come with each connection). */
export function wsPath(kind: ServerKind, room?: string): string {
  if (kind === "ours") return "/ws";
  if (kind === "socketio") return `/socket.io/?EIO=4&transport=websocket${room ? `&room=${room}` : ""}`;
  return room ? `/?room=${room}` : "/";
}
