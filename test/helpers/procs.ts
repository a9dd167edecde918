// Real processes for cluster tests: server nodes started as `bun src/main.ts` (each its own process, so
// one can be killed with SIGKILL), and a Redis server of the test's own that can be stopped and started
// again on the same port.
import type { Subprocess } from "bun";
import Redis, { Cluster } from "ioredis";
import { Keys } from "../../src/bus/keys.ts";
import { API_KEY } from "./server.ts";
import { freshPgUrl, redisClusterUrls } from "./services.ts";

const root = new URL("../../", import.meta.url).pathname;

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** Reads a process's output line by line in the background; `waitFor` resolves on the first matching line. */
class Lines {
  readonly all: string[] = [];
  private waiters: { re: RegExp; resolve(m: RegExpMatchArray): void }[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    void (async () => {
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of stream) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.all.push(line);
          for (const w of [...this.waiters]) {
            const m = line.match(w.re);
            if (m) {
              this.waiters.splice(this.waiters.indexOf(w), 1);
              w.resolve(m);
            }
          }
        }
      }
    })();
  }
  waitFor(re: RegExp, what: string, proc: Subprocess, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    for (const l of this.all) {
      const m = l.match(re);
      if (m) return Promise.resolve(m);
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${what}:\n${this.all.slice(-20).join("\n")}`)), timeoutMs);
      void proc.exited.then((code) => reject(new Error(`exited with ${code} before ${what}:\n${this.all.slice(-20).join("\n")}`)));
      this.waiters.push({
        re,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
    });
  }
}

export class RedisProc {
  proc!: Subprocess;
  readonly port = freePort();
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.proc = Bun.spawn(["redis-server", "--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
      stdout: "pipe",
      stderr: "inherit",
    });
    await new Lines(this.proc.stdout as ReadableStream<Uint8Array>).waitFor(/Ready to accept connections/, "redis", this.proc);
  }
  /** Kills Redis at once (nothing saved: a restarted Redis is empty, as after a crash). */
  async kill(): Promise<void> {
    this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

export interface NodeProc {
  proc: Subprocess;
  port: number;
  url: string;
  wsUrl: string;
  nodeId: string;
  log: Lines;
  api(path: string, body?: unknown, method?: string): Promise<{ status: number; body: any }>;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number>;
}

export const TOKEN_SECRET = "test-secret-test-secret-test-secret-42";

/**
 * Starts `bun src/main.ts` on a free port and waits for its "listening" line (with WORKERS=N and a fixed
 * PORT: for every worker's).
 */
export async function startNode(env: Record<string, string>): Promise<NodeProc> {
  const nodeId = env.NODE_ID ?? `node${freePort()}`;
  const proc = Bun.spawn([process.execPath, "src/main.ts"], {
    cwd: root,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", API_KEY, TOKEN_SECRET, LOG_LEVEL: "info", NODE_ID: nodeId, ...env },
    stdout: "ignore",
    stderr: "pipe",
  });
  const log = new Lines(proc.stderr as ReadableStream<Uint8Array>);
  const workers = Number(env.WORKERS ?? 1);
  for (let i = 1; i < workers; i++) await log.waitFor(new RegExp(`\\[${nodeId}-${i}\\] listening on :`), `worker ${i} to listen`, proc);
  const m = await log.waitFor(workers > 1 ? new RegExp(`\\[${nodeId}-0\\] listening on :(\\d+)`) : /listening on :(\d+)/, `node ${nodeId} to listen`, proc);
  const port = Number(m[1]);
  const url = `http://127.0.0.1:${port}`;
  return {
    proc,
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}`,
    nodeId,
    log,
    async api(path, body, method) {
      const res = await fetch(url + path, {
        method: method ?? (body === undefined ? "GET" : "POST"),
        headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: res.status, body: parsed };
    },
    async stop() {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}

/** Creates a user through a node's server API and returns a token for it. */
export async function userToken(node: NodeProc, id: string, fields: Record<string, unknown> = {}): Promise<string> {
  const r = await node.api("/api/users", { id, ...fields });
  if (r.status !== 200) throw new Error(`create user ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  const t = await node.api(`/api/users/${id}/token`, {});
  if (t.status !== 200) throw new Error(`token for ${id}: ${t.status} ${JSON.stringify(t.body)}`);
  return t.body.token;
}

/**
 * Waits for a condition that another process reaches in its own time (a lease running out, a reconnect):
 * checks it every 25 ms up to `timeoutMs`. Not a substitute for awaiting a message.
 */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await Bun.sleep(25);
  }
}

/**
 * What the cluster suites run against: a single Redis of the file's own, or the suite's Redis Cluster (3
 * masters, 3 replicas: test/run.sh, TEST_REDIS_CLUSTER_URLS).
 */
export type RedisMode = "redis" | "redis-cluster";
export const REDIS_MODES: RedisMode[] = ["redis", "redis-cluster"];

let prefixes = 0;

/**
 * A cluster for one test file: nodes sharing a fresh Postgres database and a Redis of the file's own (which a
 * test may kill and start again), presence leases of 1 s. `clients` are closed, and nodes killed, by stop().
 * With mode "redis-cluster" the nodes use the suite's shared Redis Cluster instead, under a REDIS_PREFIX of
 * their own.
 */
export class TestCluster {
  readonly redis = new RedisProc();
  dbUrl = "";
  readonly nodes: NodeProc[] = [];
  readonly clients: { ws: WebSocket; isClosed: boolean }[] = [];
  readonly prefix: string;

  constructor(
    private readonly extra: Record<string, string> = {},
    readonly mode: RedisMode = "redis",
  ) {
    this.prefix = mode === "redis" ? "chat:" : `tc${process.pid}x${++prefixes}:`;
  }

  /** The nodes' key layout (bus/keys.ts). */
  get keys(): Keys {
    return new Keys(this.prefix, this.mode === "redis-cluster");
  }

  /** REDIS_URL of the nodes. */
  get redisUrl(): string {
    return this.mode === "redis" ? this.redis.url : redisClusterUrls().join(",");
  }

  /** A connection of the test's own to the nodes' Redis (a cluster client on the cluster); disconnect it after. */
  redisClient(): Redis | Cluster {
    if (this.mode === "redis") return new Redis(this.redis.url);
    return new Cluster(redisClusterUrls().map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) })));
  }

  env(): Record<string, string> {
    return { DATABASE_URL: this.dbUrl, REDIS_URL: this.redisUrl, REDIS_PREFIX: this.prefix, PRESENCE_TTL_SEC: "1", DRAIN_TIMEOUT_SEC: "2", ...this.extra };
  }

  async start(n: number, prefix: string): Promise<void> {
    if (this.mode === "redis") await this.redis.start();
    this.dbUrl = await freshPgUrl();
    for (let i = 0; i < n; i++) await this.node({ NODE_ID: `${prefix}${i}` });
  }

  /** One more node (its process is killed by stop() too). */
  async node(env: Record<string, string>): Promise<NodeProc> {
    const n = await startNode({ ...this.env(), ...env });
    this.nodes.push(n);
    return n;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) if (!c.isClosed) c.ws.close();
    for (const n of this.nodes) n.proc.kill("SIGKILL");
    await Promise.all(this.nodes.map((n) => n.proc.exited));
    if (this.mode === "redis") await this.redis.kill().catch(() => {});
  }
}
