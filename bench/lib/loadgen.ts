// The load generator as seen from the orchestrator: several worker processes (worker.ts), each holding
// fewer than 19,000 sockets (the open-file limit is 20,000), driven over IPC. Connections are spread over
// loopback addresses 127.0.0.1, .2, ... every PER_HOST of them: Bun's WebSocket client cannot bind a
// source address, and a distinct destination address gives the connections its own range of ephemeral
// ports just as a distinct source address would (about 28,000 per address pair here).
import type { Subprocess } from "bun";
import { join } from "node:path";
import { Hist } from "./hist.ts";
import { BUN } from "./servers.ts";
import { cpuSeconds } from "./machine.ts";

export type Proto = "native" | "raw" | "sio";
export const PER_WORKER = 18_000;
export const PER_HOST = 25_000;

export interface Counters {
  count: number;
  lost: number;
  errors: number;
  resyncs: number;
  closed: number;
  msgs: number;
  /** fan-out: frames and payload bytes (text frames: characters, all ASCII here) received by the members */
  frames: number;
  bytes: number;
  /** fan-out: messages the senders published */
  sent: number;
  startedAt: number;
  /** the first error frame received, for the log */
  lastError?: string;
  at?: number;
}

export type Cmd =
  | {
      op: "open";
      proto: Proto;
      hosts: string[];
      perHost: number;
      ports: number[];
      path: string;
      first: number;
      count: number;
      concurrency: number;
      users?: string[];
      tokenSecret?: string;
      sample?: number;
    }
  | { op: "join"; room: string; lanes: number }
  | { op: "hb"; mode: "closed" | "open"; rate: number; phase?: number }
  | { op: "idle"; everyMs: number }
  | { op: "fan"; worker: number; senders: number[]; mode: "closed" | "open"; window: number; rate: number; room: string; cls: "must" | "droppable"; phase?: number }
  /** closed-loop fan-out: raise each sender's window to `window` (messages in flight) */
  | { op: "fanWindow"; window: number }
  /** closed-loop durable sends: set each connection's window (raised: sent at once; lowered: as acks come) */
  | { op: "durableWindow"; window: number }
  | { op: "durable"; mode: "closed" | "open"; /** user → the user it sends to */ peers: Record<string, string>; window: number; rate: number; bodyChars: number; phase?: number }
  | {
      op: "pull";
      hosts: string[];
      port: number;
      /** users whose tokens this worker was given (op "tokens") */
      users: string[];
      mode: "closed" | "open";
      concurrency: number;
      rate: number;
      limit: number;
      durationMs: number;
      phase?: number;
    }
  /** Issues the tokens of users who will pull (the clients' login credentials, made before any window). */
  | { op: "tokens"; users: string[]; tokenSecret: string }
  | { op: "measure" | "report" | "stop" | "close" };

export interface Report {
  counters: Counters;
  hist: Hist;
  /** seconds covered by the report (from the measure command) */
  seconds: number;
  extra?: Hist;
}

export function hostsFor(total: number): string[] {
  const n = Math.max(1, Math.ceil(total / PER_HOST));
  return Array.from({ length: n }, (_, i) => `127.0.0.${i + 1}`);
}

class Worker {
  private waiters: { op: string; resolve(m: any): void }[] = [];
  onProgress?: (m: any) => void;
  constructor(readonly proc: Subprocess) {}

  handle(m: any): void {
    if (m.op === "progress") return this.onProgress?.(m);
    const i = this.waiters.findIndex((w) => w.op === m.op);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
  }

  call<T = any>(cmd: Cmd, reply: string, timeoutMs = 600_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`worker: no ${reply} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        op: reply,
        resolve: (m) => {
          clearTimeout(t);
          resolve(m);
        },
      });
      this.proc.send(cmd);
    });
  }

  wait<T = any>(reply: string): Promise<T> {
    return new Promise((resolve) => this.waiters.push({ op: reply, resolve }));
  }
}

export class LoadGen {
  private constructor(
    readonly workers: Worker[],
    /** connections held by each worker */
    readonly sizes: number[],
  ) {}

  /** Starts enough workers for `total` connections (at least `min`), splitting them evenly. */
  static async start(total: number, min = 1): Promise<LoadGen> {
    const n = Math.max(min, Math.ceil(total / PER_WORKER));
    const workers: Worker[] = [];
    for (let i = 0; i < n; i++) {
      let w!: Worker;
      const proc = Bun.spawn([BUN, join(import.meta.dir, "worker.ts")], {
        stdio: ["ignore", "inherit", "inherit"],
        ipc: (m) => w.handle(m),
      });
      w = new Worker(proc);
      workers.push(w);
    }
    await Promise.all(workers.map((w) => w.wait("ready")));
    const sizes = workers.map((_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
    return new LoadGen(workers, sizes);
  }

  /**
   * Opens `sizes[i]` connections in worker i. `users` (native protocol) names the user of each
   * connection, in order; `progress` is told how many are open so far.
   */
  async open(
    o: { proto: Proto; ports: number[]; path: string; users?: string[]; tokenSecret?: string; concurrency?: number; sample?: number },
    progress?: (opened: number) => void,
  ): Promise<{ ok: number; failed: number; errors: string[]; seconds: number }> {
    const total = this.sizes.reduce((a, b) => a + b, 0);
    const hosts = hostsFor(total);
    const opened = this.workers.map(() => 0);
    const t0 = performance.now();
    let first = 0;
    const res = await Promise.all(
      this.workers.map((w, i) => {
        const count = this.sizes[i]!;
        const cmd: Cmd = {
          op: "open",
          proto: o.proto,
          hosts,
          perHost: PER_HOST,
          ports: o.ports,
          path: o.path,
          first,
          count,
          concurrency: o.concurrency ?? 64,
          users: o.users?.slice(first, first + count),
          tokenSecret: o.tokenSecret,
          sample: o.sample,
        };
        first += count;
        w.onProgress = (m) => {
          opened[i] = m.ok;
          progress?.(opened.reduce((a, b) => a + b, 0));
        };
        return w.call(cmd, "opened");
      }),
    );
    return {
      ok: res.reduce((s, r) => s + r.ok, 0),
      failed: res.reduce((s, r) => s + r.failed, 0),
      errors: res.flatMap((r) => r.errors),
      seconds: (performance.now() - t0) / 1000,
    };
  }

  async join(room: string, lanes = 32): Promise<number> {
    const r = await Promise.all(this.workers.map((w) => w.call({ op: "join", room, lanes }, "joined")));
    return r.reduce((s, x) => s + x.failed, 0);
  }

  /**
   * Sends a command to every worker (or a per-worker command) and waits for each acknowledgement. An open loop's
   * workers are given phases 0, 1/n, 2/n… of their period (Cmd `phase`): started together, their sends would
   * otherwise land at the same moments, in bursts of n, where the rate asked for is an even one.
   */
  async all(cmd: Cmd | ((i: number) => Cmd), reply: string): Promise<any[]> {
    const n = this.workers.length;
    return Promise.all(
      this.workers.map((w, i) => {
        const c = typeof cmd === "function" ? cmd(i) : cmd;
        return w.call("rate" in c && c.rate > 0 ? { ...c, phase: i / n } : c, reply);
      }),
    );
  }

  /** CPU seconds the load-generator processes have used so far. */
  cpu(): number {
    return this.workers.reduce((s, w) => s + cpuSeconds(w.proc.pid), 0);
  }

  /** CPU seconds each load-generator process has used so far (one JS thread each: 1 core is its limit). */
  cpuEach(): number[] {
    return this.workers.map((w) => cpuSeconds(w.proc.pid));
  }

  async measure(): Promise<number> {
    await this.all({ op: "measure" }, "measuring");
    return performance.now();
  }

  /** Counters and merged histogram since `measure()`. */
  async report(since: number): Promise<Report> {
    const rs = await this.all({ op: "report" }, "report");
    return merge(rs, (performance.now() - since) / 1000);
  }

  async pull(cmd: (i: number) => Cmd): Promise<Report> {
    const t0 = performance.now();
    const rs = await this.all(cmd, "pulled");
    const r = merge(rs, (performance.now() - t0) / 1000);
    r.extra = rs.reduce((h: Hist, x) => h.merge(Hist.from(x.connect)), new Hist());
    return r;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        await w.call({ op: "close" }, "closed", 30_000).catch(() => {});
        const t = setTimeout(() => w.proc.kill(), 5000);
        await w.proc.exited;
        clearTimeout(t);
      }),
    );
  }
}

function merge(rs: { counters: Counters; hist: [number, number][] }[], seconds: number): Report {
  const counters: Counters = { count: 0, lost: 0, errors: 0, resyncs: 0, closed: 0, msgs: 0, frames: 0, bytes: 0, sent: 0, startedAt: 0 };
  const hist = new Hist();
  for (const r of rs) {
    for (const k of ["count", "lost", "errors", "resyncs", "closed", "msgs", "frames", "bytes", "sent"] as const) counters[k] += r.counters[k] ?? 0;
    counters.lastError ??= r.counters.lastError;
    hist.merge(Hist.from(r.hist));
  }
  return { counters, hist, seconds };
}
