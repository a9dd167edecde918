// What every scenario shares: options, lazily started services, our server on a seeded database,
// measurement windows (load-generator counters + CPU of each process over the same seconds), progress.
import { cpuSeconds, groupCpu, sleep } from "./machine.ts";
import { type LoadGen, type Report } from "./loadgen.ts";
import { freshDb, copyUsers } from "./seed.ts";
import { startPostgres, startRedis, startRedisCluster, type Pg, type Redis } from "./services.ts";
import { startServer, type Server, type ServerKind } from "./servers.ts";

export interface Options {
  smoke: boolean;
  /** connections / room members (each scenario has its own default) */
  n?: number;
  /** seconds of each measured window */
  seconds: number;
  warmup: number;
  peers: ServerKind[];
  /** offline-pull: messages in the store */
  store?: number;
  /** fan-out: open-loop rate in messages per second (default: 100,000 deliveries/s) */
  rate?: number;
  window?: number;
  /** runs of each scenario (`--repeat`; `--full`: 3) */
  repeat: number;
}

export interface Row {
  server: string;
  /** the main figure (bigger is better unless `lowerIsBetter`) */
  value: number;
  unit: string;
  lowerIsBetter?: boolean;
  p50?: number;
  p99?: number;
  /** CPU cost per unit of work */
  cpu?: number;
  cpuUnit?: string;
  /** the peer whose figures ours is compared with in `ratios` (omit: every non-ours row) */
  group?: string;
  extra?: Record<string, number | string>;
}

export interface Target {
  name: string;
  goal: string;
  value: string;
  /** undefined: no goal is set, the figure is only reported (never shown as met) */
  met: boolean | undefined;
  note?: string;
}

/** One figure's min / median / max over repeated runs (lib/repeat.ts). */
export interface Spread {
  name: string;
  min: number;
  median: number;
  max: number;
  runs: number;
}

export interface Result {
  scenario: string;
  title: string;
  params: Record<string, unknown>;
  rows: Row[];
  /** ours vs each peer: "ours row / peer row" → ratio of `value` */
  ratios: { ours: string; peer: string; ratio: number; p99Ratio?: number }[];
  targets: Target[];
  notes: string[];
  seconds: number;
  /** runs folded into this result (`--repeat`), and each ratio's, target's and row's spread over them */
  repeats?: number;
  spreads?: Spread[];
}

export class Ctx {
  private pgP?: Promise<Pg>;
  private redisP?: Promise<Redis>;
  private redisClusterP?: Promise<Redis & { pids: number[] }>;
  private statusAt = 0;
  private cleanups: (() => Promise<void>)[] = [];

  constructor(readonly opts: Options) {}

  pg(): Promise<Pg> {
    return (this.pgP ??= startPostgres().then((pg) => (this.cleanups.push(() => pg.stop()), pg)));
  }

  redis(): Promise<Redis> {
    return (this.redisP ??= startRedis().then((r) => (this.cleanups.push(() => r.stop()), r)));
  }

  /** A Redis Cluster of 3 masters and 3 replicas (its `url` is the seed list REDIS_URL takes). */
  redisCluster(): Promise<Redis & { pids: number[] }> {
    return (this.redisClusterP ??= startRedisCluster().then((r) => (this.cleanups.push(() => r.stop()), r)));
  }

  /** CPU seconds so far of the Postgres this run started (NaN when reusing the suite's). */
  async dbCpu(): Promise<number> {
    const pg = await this.pg();
    return pg.pids ? groupCpu(pg.pids) : NaN;
  }

  /** A progress line on stderr: rewritten in place on a terminal, one line every few seconds otherwise. */
  status(msg: string, force = false): void {
    if (process.stderr.isTTY) return void process.stderr.write(`\r\x1b[2K${msg}`);
    const t = Date.now();
    if (force || t - this.statusAt > 5000) {
      this.statusAt = t;
      process.stderr.write(`${msg}\n`);
    }
  }

  say(msg: string): void {
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`${msg}\n`);
  }

  async close(): Promise<void> {
    for (const c of this.cleanups.reverse()) await c().catch(() => {});
    this.cleanups = [];
  }

  /** Our server on a fresh database holding `users`; Postgres is started on first use. */
  async ours(o: { name: string; users: string[]; redis?: boolean | "cluster"; nodes?: number; env?: Record<string, string>; db?: string }): Promise<{ nodes: Server[]; db: string }> {
    const pg = await this.pg();
    const db = o.db ?? (await freshDb(pg, o.name));
    if (!o.db && o.users.length) await copyUsers(db, o.users);
    const redisUrl = o.redis === "cluster" ? (await this.redisCluster()).url : o.redis ? (await this.redis()).url : undefined;
    const nodes: Server[] = [];
    for (let i = 0; i < (o.nodes ?? 1); i++) nodes.push(await startServer("ours", { databaseUrl: db, redisUrl, env: o.env, name: `${o.name}-n${i + 1}` }));
    return { nodes, db };
  }

  async peer(kind: ServerKind, o: { redis?: boolean; name?: string } = {}): Promise<Server> {
    const redisUrl = o.redis ? (await this.redis()).url : undefined;
    return startServer(kind, { redisUrl, name: o.name });
  }

  /**
   * One measured window: warm up, reset the workers' counters, run `seconds`, read them back; CPU of
   * `servers` (and of Postgres / Redis when asked) over exactly that window.
   */
  async window(lg: LoadGen, servers: Server[], label: string, o: { db?: boolean; redisPid?: number | number[] } = {}): Promise<Measured> {
    const redisPids = o.redisPid === undefined ? [] : ([] as number[]).concat(o.redisPid);
    const redisCpu = async () => (redisPids.length ? redisPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) : NaN);
    await this.tick(label, this.opts.warmup, lg);
    const cpu0 = servers.map((s) => s.cpu());
    const db0 = o.db ? await this.dbCpu() : NaN;
    const r0 = await redisCpu();
    const g0 = lg.cpu();
    const t = await lg.measure();
    await this.tick(label, this.opts.seconds, lg);
    const report = await lg.report(t);
    // Load-generator CPU as a share of the cores it could use: near 100% means the figure is the
    // generator's limit, not the server's (the machine has 2 cores for servers and generator alike).
    const genCpu = lg.cpu() - g0;
    const gen = genCpu / report.seconds / Math.min(lg.workers.length, navigator.hardwareConcurrency);
    const cpu = servers.map((s, i) => s.cpu() - cpu0[i]!);
    const db = o.db ? (await this.dbCpu()) - db0 : NaN;
    const redis = (await redisCpu()) - r0;
    const rate = report.counters.count / report.seconds;
    this.say(
      `  ${label}: ${fmt(rate)}/s  p50 ${fmtMs(report.hist.pct(0.5))}  p99 ${fmtMs(report.hist.pct(0.99))}  server CPU ${cpu.map((c) => c.toFixed(2)).join("+")} s  generator ${(gen * 100).toFixed(0)}% (${genCpu.toFixed(2)} CPU s of ${(report.seconds * navigator.hardwareConcurrency).toFixed(1)} on the machine)` +
        (o.db ? `  db CPU ${db.toFixed(2)} s` : "") +
        (report.counters.lost || report.counters.errors || report.counters.resyncs || report.counters.closed
          ? `  (lost ${report.counters.lost}, errors ${report.counters.errors}, resyncs ${report.counters.resyncs}, closed ${report.counters.closed})`
          : "") +
        (report.counters.lastError ? `\n    first error: ${report.counters.lastError}` : ""),
    );
    return { report, rate, cpu: cpu.reduce((a, b) => a + b, 0), cpuEach: cpu, db, redis, gen, genCpu };
  }

  private async tick(label: string, seconds: number, _lg: LoadGen): Promise<void> {
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      this.status(`  ${label}: ${((end - Date.now()) / 1000).toFixed(0)} s left`);
      await sleep(Math.min(500, end - Date.now()));
    }
  }
}

export interface Measured {
  report: Report;
  /** counted events per second */
  rate: number;
  /** CPU seconds of the servers over the window (sum) */
  cpu: number;
  cpuEach: number[];
  db: number;
  redis: number;
  /** load-generator CPU seconds over the window (all its processes, from /proc) */
  genCpu: number;
  /** load-generator CPU over the window, as a fraction of the cores it could use */
  gen: number;
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return "–";
  if (Number.isInteger(n) && Math.abs(n) < 1e4) return String(n);
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (Math.abs(n) >= 100) return n.toFixed(0);
  return n.toPrecision(3);
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  return ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 100 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(0)} ms`;
}

/** Ratios of each "ours" row to each peer row of the same group. */
export function ratiosOf(rows: Row[]): Result["ratios"] {
  const out: Result["ratios"] = [];
  for (const o of rows.filter((r) => r.server.startsWith("ours"))) {
    for (const p of rows.filter((r) => !r.server.startsWith("ours") && (r.group ?? "") === (o.group ?? ""))) {
      const ratio = o.lowerIsBetter ? p.value / o.value : o.value / p.value;
      out.push({ ours: o.server, peer: p.server, ratio, p99Ratio: o.p99 && p.p99 ? o.p99 / p.p99 : undefined });
    }
  }
  return out;
}

/** A target (`ok`: whether its goal is reached), or, with `ok` undefined, a figure reported with no goal. */
export const target = (name: string, goal: string, value: number, ok: boolean | undefined, digits = 2, note?: string): Target => ({
  name,
  goal,
  value: Number.isFinite(value) ? value.toFixed(digits) : "n/a",
  met: ok,
  note,
});
