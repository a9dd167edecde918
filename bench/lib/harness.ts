// What every scenario shares: options, lazily started services, our server on a seeded database,
// measurement windows (load-generator counters + CPU of each process over the same seconds), progress.
import { join } from "node:path";
import { cpuSeconds, groupCpu, machineCpu, sleep } from "./machine.ts";
import { type LoadGen, type Report } from "./loadgen.ts";
import { freshDb, copyUsers } from "./seed.ts";
import { pgStatements, startPostgres, startRedis, startRedisCluster, type Pg, type Redis } from "./services.ts";
import { LOGS, startServer, type Server, type ServerKind } from "./servers.ts";

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

export interface Ratio {
  ours: string;
  peer: string;
  ratio: number;
  p99Ratio?: number;
  /** the figure compared, when not the rows' main one */
  what?: string;
}

/** A ratio's name in spreads and charts: "ours / peer" (and the figure compared). */
export const ratioName = (x: Ratio) => `${x.ours} / ${x.peer}${x.what ? ` (${x.what})` : ""}`;

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
  /**
   * ours vs each peer: "ours row / peer row" → ratio of `value` (of the figure named by `what`, when set:
   * e.g. frames/s, or a CPU cost given as peer / ours so that above 1× is ours costing less)
   */
  ratios: Ratio[];
  targets: Target[];
  notes: string[];
  seconds: number;
  /** runs folded into this result (`--repeat`), and each ratio's, target's and row's spread over them */
  repeats?: number;
  spreads?: Spread[];
  /** every measured window of every run (JSON only): its latency histogram and the CPU seconds of each process */
  windows?: WindowRecord[];
}

/** One measured window as the JSON keeps it. */
export interface WindowRecord {
  /** the run (0-based) of a repeated scenario */
  run: number;
  label: string;
  seconds: number;
  /** counted events (deliveries, round trips, acks …) and the fan-out's frames, payload bytes and messages sent */
  count: number;
  frames: number;
  bytes: number;
  sent: number;
  /** CPU seconds over the window of each process: `server <kind> <i>`, `postgres`, `redis`, `generator <i>` */
  cpu: Record<string, number>;
  /** the machine's busy share of all its cores over the window (/proc/stat) */
  machineBusy: number;
  /** latency histogram: [bucket, count] pairs of lib/hist.ts (1%-wide log buckets; bucket i's upper edge is 1.01^i µs) */
  hist: [number, number][];
}

export class Ctx {
  private pgP?: Promise<Pg>;
  private redisP?: Promise<Redis>;
  private redisClusterP?: Promise<Redis & { pids: number[] }>;
  private statusAt = 0;
  private cleanups: (() => Promise<void>)[] = [];
  private windows: WindowRecord[] = [];

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

  /**
   * BENCH_PG_STATEMENTS=1: `start` clears Postgres's statement statistics; `end` writes the statements that took
   * the most time since then to results/logs/pg-statements/<label>.md (a no-op otherwise).
   */
  async pgStatements(label: string, phase: "start" | "end"): Promise<void> {
    if (!process.env.BENCH_PG_STATEMENTS) return;
    const name = label.replace(/[^a-z0-9]+/gi, "-").replace(/^-|-$/g, "");
    await pgStatements(await this.pg(), phase === "end" ? join(LOGS, "pg-statements", `${name}-${Date.now()}.md`) : undefined);
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

  /** The windows measured since the last call, attached to the scenario's result (run.ts). */
  collect(r: Result, run = 0): Result {
    r.windows = [...(r.windows ?? []), ...this.windows.map((w) => ({ ...w, run }))];
    this.windows = [];
    return r;
  }

  /**
   * One measured window: warm up, reset the workers' counters, run `seconds`, read them back; CPU of
   * `servers` (and of Postgres / Redis when asked) over exactly that window. `seconds` / `warmup` override
   * the run's (the short steps of a search).
   */
  async window(lg: LoadGen, servers: Server[], label: string, o: { db?: boolean; redisPid?: number | number[]; seconds?: number; warmup?: number } = {}): Promise<Measured> {
    const redisPids = o.redisPid === undefined ? [] : ([] as number[]).concat(o.redisPid);
    const redisCpu = () => (redisPids.length ? redisPids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) : NaN);
    await this.tick(label, o.warmup ?? this.opts.warmup, lg);
    const cpu0 = servers.map((s) => s.cpu());
    if (o.db) await this.pgStatements(label, "start");
    const db0 = o.db ? await this.dbCpu() : NaN;
    const r0 = redisCpu();
    const g0 = lg.cpuEach();
    const m0 = machineCpu();
    const t = await lg.measure();
    await this.tick(label, o.seconds ?? this.opts.seconds, lg);
    const report = await lg.report(t);
    // Load-generator CPU as a share of the cores it could use: near 100% means the figure is the
    // generator's limit, not the server's (the machine has 2 cores for servers and generator alike).
    const gens = lg.cpuEach().map((c, i) => c - g0[i]!);
    const genCpu = gens.reduce((a, b) => a + b, 0);
    const gen = genCpu / report.seconds / Math.min(lg.workers.length, navigator.hardwareConcurrency);
    const cpu = servers.map((s, i) => s.cpu() - cpu0[i]!);
    const db = o.db ? (await this.dbCpu()) - db0 : NaN;
    if (o.db) await this.pgStatements(label, "end");
    const redis = redisCpu() - r0;
    const m1 = machineCpu();
    const machineBusy = (m1.busy - m0.busy) / (m1.total - m0.total);
    const rate = report.counters.count / report.seconds;
    const procs: Record<string, number> = {};
    servers.forEach((s, i) => (procs[`server ${s.kind} ${i + 1}`] = round2(cpu[i]!)));
    if (o.db) procs.postgres = round2(db);
    if (redisPids.length) procs.redis = round2(redis);
    gens.forEach((g, i) => (procs[`generator ${i + 1}`] = round2(g)));
    const c = report.counters;
    this.windows.push({ run: 0, label, seconds: round2(report.seconds), count: c.count, frames: c.frames, bytes: c.bytes, sent: c.sent, cpu: procs, machineBusy: round2(machineBusy), hist: report.hist.toJSON() });
    this.say(
      `  ${label}: ${fmt(rate)}/s  p50 ${fmtMs(report.hist.pct(0.5))}  p99 ${fmtMs(report.hist.pct(0.99))}  server CPU ${cpu.map((c) => c.toFixed(2)).join("+")} s  generator ${(gen * 100).toFixed(0)}% (${genCpu.toFixed(2)} CPU s of ${(report.seconds * navigator.hardwareConcurrency).toFixed(1)} on the machine)` +
        (o.db ? `  db CPU ${db.toFixed(2)} s` : "") +
        (report.counters.lost || report.counters.errors || report.counters.resyncs || report.counters.closed
          ? `  (lost ${report.counters.lost}, errors ${report.counters.errors}, resyncs ${report.counters.resyncs}, closed ${report.counters.closed})`
          : "") +
        (report.counters.lastError ? `\n    first error: ${report.counters.lastError}` : ""),
    );
    return { report, rate, cpu: cpu.reduce((a, b) => a + b, 0), cpuEach: cpu, db, redis, gen, genCpu, gens, machineBusy };
  }

  /**
   * Sizes a closed loop to the server: its window (requests in flight per sender, already running at `start`)
   * doubles, a short step each, until a process saturates — a server process, Postgres (when `o.db`), the
   * busiest load-generator process (≥ 90% of a core each: one JS thread), or the bench's processes together
   * fill the machine (≥ 90% of all its cores) — or the throughput stops growing (two doublings without 5% over
   * the best step: the window goes back to the best one), or the window reaches `ceiling`, or (`stopOnLoss`)
   * messages were lost or the server refused sends (the window goes back to the best step before). Says which.
   */
  async sizeWindow(
    lg: LoadGen,
    servers: Server[],
    label: string,
    o: { db?: boolean; redisPid?: number | number[] },
    s: { start: number; ceiling: number; ceilingWhy?: string; stopOnLoss?: boolean; set(window: number): Promise<void> },
  ): Promise<{ window: number; saturated: string; steps: Step[] }> {
    const step = this.opts.smoke ? { seconds: 0.2, warmup: 0.1 } : { seconds: 2, warmup: 1 };
    const cores = navigator.hardwareConcurrency;
    const steps: Step[] = [];
    let window = s.start;
    let saturated = "";
    for (let k = 0; ; k++) {
      const m = await this.window(lg, servers, `${label} closed loop, window ${window}`, { ...o, ...step });
      const x: Step = {
        window,
        rate: m.rate,
        server: Math.max(...m.cpuEach) / m.report.seconds,
        db: Number.isFinite(m.db) ? m.db / m.report.seconds : 0,
        generator: Math.max(...m.gens) / m.report.seconds,
        machine: m.machineBusy,
      };
      const best = steps.reduce<Step | undefined>((b, y) => (!b || y.rate > b.rate ? y : b), undefined);
      steps.push(x);
      // Flat: two doublings in a row without 5% more than the best step so far (one step is noise on a busy machine).
      const flat = best && steps.length >= 3 && steps.slice(-2).every((y) => y.rate < best.rate * 1.05) && best.window < steps.at(-2)!.window;
      const bench = (m.cpu + (Number.isFinite(m.db) ? m.db : 0) + m.genCpu) / m.report.seconds / cores;
      const cpus = `server ${x.server.toFixed(2)}${o.db ? `, Postgres ${x.db.toFixed(2)}` : ""}, busiest generator process ${x.generator.toFixed(2)} cores; machine ${(x.machine * 100).toFixed(0)}% busy`;
      const lost = m.report.counters.lost;
      // Sends answered with an error: the server shed load (its writer's queue full, commits past their timeout),
      // so this window measures its refusals, not its throughput.
      const refused = m.report.counters.errors;
      // Lost or refused: back to the best window before it (none before lost or refused anything). Not merely the
      // one before: past saturation a doubling can add a little throughput while the queue, and every latency,
      // grows, and the window that then sheds load would leave the loop measuring an overloaded server.
      const back = best?.window ?? window;
      saturated =
        lost > 0 && s.stopOnLoss
          ? `messages were lost at window ${window} (${lost}: dropped, or not back within 3 s), so it stays at ${back} (${cpus})`
          : refused > 0
          ? `the server refused ${refused} sends at window ${window} (it sheds load past its queue and commit-time bounds), so it stays at ${back} (${cpus})`
          : x.server >= SATURATED
          ? `the server saturated (${cpus})`
          : x.db >= SATURATED
            ? `Postgres saturated (${cpus})`
            : x.generator >= SATURATED
              ? `the generator saturated (${cpus})`
              : bench >= SATURATED
                ? `the machine saturated: server, Postgres and generator together use ${(bench * 100).toFixed(0)}% of its ${cores} cores (${cpus})`
                : flat
                  ? `throughput stopped growing with nothing of the bench saturated (best ${fmt(best.rate)}/s at window ${best.window}, then ${steps
                      .slice(-2)
                      .map((y) => `${fmt(y.rate)}/s at ${y.window}`)
                      .join(", ")}; ${cpus})`
                  : window >= s.ceiling
                    ? `window ceiling ${s.ceiling}${s.ceilingWhy ? ` (${s.ceilingWhy})` : ""} (${cpus})`
                    : this.opts.smoke && k >= 1
                      ? `smoke: 2 steps at most (${cpus})`
                      : "";
      if (saturated) {
        // Stopped because it no longer grew: measure at the window that did best.
        if (flat && best.window !== window) await s.set((window = best.window));
        // Lost messages or refused sends: back to the best window before (see `back`).
        else if (((lost > 0 && s.stopOnLoss) || refused > 0) && best) await s.set((window = best.window));
        break;
      }
      await s.set((window = Math.min(s.ceiling, window * 2)));
    }
    this.say(`  ${label}: closed loop at window ${window}: ${saturated}`);
    return { window, saturated, steps };
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
  /** CPU seconds of each load-generator process over the window */
  gens: number[];
  /** the machine's busy share of all its cores over the window */
  machineBusy: number;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Share of a core (or of the machine's cores) at which a process counts as saturated. */
const SATURATED = 0.9;

/** One step of a closed loop's sizing: its window, its rate and the cores each process used. */
export interface Step {
  window: number;
  rate: number;
  /** the busiest server process, Postgres, the busiest generator process (cores), and the machine's busy share */
  server: number;
  db: number;
  generator: number;
  machine: number;
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
