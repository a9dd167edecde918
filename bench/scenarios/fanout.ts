// fan-out: one room of N members; S of them publish. Open loop (a fixed rate of messages) measures delivery
// latency, send to arrival at sampled members, or finds the rate where a server starts to fall behind;
// closed loop (each sender keeps W messages in flight, the next sent when one of its own comes back to it,
// W raised until something saturates) finds deliveries per second. Frames and bytes received are counted.
// Ours: room_send to a live room, as must-deliver (committed to Postgres first, seq, ack) and as
// coalesced danmaku (droppable); both go out on the room's adaptive tick (ROOM_TICK_MS, 50 ms), one frame
// per tick holding every message of that tick. Bun.serve coalescing (peers/bun-coalesce.ts) does the same
// with our tick queue and nothing else; the other peers publish each message as its own frame.
import { fmt, ratiosOf, target, type Ctx, type Measured, type Ratio, type Result, type Row, type Step } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { userIds } from "../lib/seed.ts";
import { LABEL, protoOf, TOKEN_SECRET, wsPath, type Server, type ServerKind } from "../lib/servers.ts";

export const ROOM = "bench";

/** Local sender indices for each worker: `senders` spread evenly, each worker's first connections. */
export function senderSplit(lg: LoadGen, senders: number): number[][] {
  return lg.workers.map((_, i) => Array.from({ length: Math.floor(senders / lg.workers.length) + (i < senders % lg.workers.length ? 1 : 0) }, (_, k) => k));
}

export interface FanParams {
  members: number;
  senders: number;
  /** the closed loop's window: fixed with `--window`, else the ceiling of the search (Ctx.sizeWindow) */
  window: number;
  /** whether the closed loop's window is raised until something saturates (no `--window`) */
  search: boolean;
  rate: number;
}

export function fanParams(ctx: Ctx, defaultMembers: number): FanParams {
  const members = ctx.opts.n ?? (ctx.opts.smoke ? 40 : defaultMembers);
  return {
    members,
    senders: Math.min(members, ctx.opts.smoke ? 2 : 4),
    window: ctx.opts.window ?? (ctx.opts.smoke ? 64 : 4096),
    search: ctx.opts.window === undefined,
    // 20,000 deliveries per second: below what every server here sustains (Node ws and Socket.IO fall
    // behind near 60k), so the latencies compare servers at work, not queues.
    rate: ctx.opts.rate ?? Math.max(1, Math.round((ctx.opts.smoke ? 2000 : 20_000) / members)),
  };
}

/** An open loop whose backlog grew: the rates where it kept up and where it stopped to. */
export interface Overflow {
  /** messages/s offered when it first fell behind (the ramp's first failing step) */
  at: number;
  /** the highest rate of the ramp it kept up with (0: none) */
  keptUpAt: number;
  /** delivered / offered deliveries at the nominal rate */
  share: number;
  /** latency at `keptUpAt` (ms) */
  p50?: number;
  p99?: number;
}

export interface FanLoops {
  closed: Measured;
  open: Measured;
  /** the closed loop's window per sender, and why it was not raised further */
  window: number;
  saturated: string;
  steps: Step[];
  overflow?: Overflow;
  /** the open loop at `costRate` (when asked), and the share of its offered deliveries that arrived */
  cost?: { m: Measured; rate: number; keptUp: number };
}

/** The loops behind a closed-loop measurement, for fanRow callers that do not pass them (cluster.ts). */
const loopsOf = new WeakMap<Measured, FanLoops>();

/**
 * Runs the open and closed loops of one message class on connections already in the room.
 *
 * Open loop first (a fresh server, no backlog), at `p.rate` messages/s: a server that delivers less than 90% of
 * the offered deliveries (messages sent × members) is falling behind, and its latency would be its backlog's
 * age. Then the rate is ramped up from 1/16 of it, doubling, to find where it started to overflow; its row
 * gives that rate and no latency.
 *
 * Closed loop sized to the server (Ctx.sizeWindow): each sender keeps W messages in flight; W starts small and
 * doubles until the server, Postgres (must-deliver), a generator process or the machine saturates, or the
 * throughput stops growing, or W reaches its ceiling, or messages are lost; then the measured window runs at
 * that W. A coalescer drops droppable items beyond MAX_TICK_ITEMS (500) per room per tick by design (a flood
 * guard): its ceiling keeps 450 in flight in all, and a window that loses messages goes back to the best one
 * before, or the loop would measure the guard.
 *
 * `costRate`: one more open loop, at that many messages/s, between the two: setups compared at the same offered
 * rate send the same frames with the same messages in each, where their closed loops stop at different rates and
 * so coalesce differently (cluster.ts compares CPU per delivery there).
 */
export async function fanLoops(ctx: Ctx, lg: LoadGen, servers: Server[], p: FanParams, cls: "must" | "droppable", label: string, o: { db?: boolean; redisPid?: number | number[]; costRate?: number } = {}): Promise<FanLoops> {
  const split = senderSplit(lg, p.senders);
  // A coalescer's droppable messages: at most 450 in flight in all, under its per-tick cap of 500.
  const coalescer = cls === "droppable" && (servers[0]!.kind === "ours" || servers[0]!.kind === "bun-coalesce");
  const ceiling = coalescer ? Math.max(1, Math.min(p.window, Math.floor(450 / p.senders))) : p.window;
  const start = (mode: "closed" | "open", window: number, rate: number) =>
    lg.all((i) => ({ op: "fan", worker: i, senders: split[i]!, mode, window, rate: (rate * split[i]!.length) / p.senders, room: ROOM, cls }), "started");
  const stop = async () => {
    await lg.all({ op: "stop" }, "stopped");
    await drain(ctx, lg);
  };
  const keptUp = (m: Measured) => m.report.counters.count / Math.max(1, m.report.counters.sent * p.members);

  await start("open", 0, p.rate);
  const open = await ctx.window(lg, servers, `${label} open loop at ${p.rate} msg/s`, o);
  await stop();
  let overflow: Overflow | undefined;
  if (keptUp(open) < 0.9) {
    overflow = { at: p.rate, keptUpAt: 0, share: keptUp(open) };
    ctx.say(`  ${label} fell behind at ${p.rate} msg/s (delivered ${(overflow.share * 100).toFixed(0)}% of the offered): ramping up from ${fmt(p.rate / 16)} msg/s`);
    const short = ctx.opts.smoke ? { seconds: 0.3, warmup: 0.1 } : { seconds: Math.min(4, ctx.opts.seconds), warmup: 1 };
    for (const rate of [p.rate / 16, p.rate / 8, p.rate / 4, p.rate / 2]) {
      await start("open", 0, rate);
      const m = await ctx.window(lg, servers, `${label} ramp at ${fmt(rate)} msg/s`, { ...o, ...short });
      await stop();
      if (keptUp(m) < 0.9) {
        overflow.at = rate;
        break;
      }
      Object.assign(overflow, { keptUpAt: rate, p50: m.report.hist.pct(0.5), p99: m.report.hist.pct(0.99) });
    }
  }

  let cost: FanLoops["cost"];
  if (o.costRate) {
    await start("open", 0, o.costRate);
    const m = await ctx.window(lg, servers, `${label} open loop at ${fmt(o.costRate)} msg/s`, o);
    await stop();
    cost = { m, rate: o.costRate, keptUp: keptUp(m) };
  }

  let window = p.search ? Math.min(ceiling, ctx.opts.smoke ? 4 : 8) : ceiling;
  await start("closed", window, 0);
  let saturated = "fixed window (--window)";
  let steps: Step[] = [];
  if (p.search) {
    const found = await ctx.sizeWindow(lg, servers, label, o, {
      start: window,
      ceiling,
      ceilingWhy: coalescer ? "450 in flight in all: under the per-tick cap of 500 droppable items" : undefined,
      stopOnLoss: true,
      set: (w) => lg.all({ op: "fanWindow", window: w }, "started").then(() => {}),
    });
    ({ window, saturated, steps } = found);
  }
  const closed = await ctx.window(lg, servers, `${label} closed loop at window ${window}`, o);
  await stop();
  const r = { closed, open, window, saturated, steps, overflow, cost };
  loopsOf.set(closed, r);
  return r;
}

/**
 * Waits until what the closed loop queued has been delivered (a server that fell behind may hold
 * seconds of frames), so a window never measures the previous one's backlog. Bounded: 60 s.
 */
async function drain(ctx: Ctx, lg: LoadGen): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const t = await lg.measure();
    await sleep(500);
    const r = await lg.report(t);
    if (r.counters.count < 50) return;
    ctx.status(`  draining the backlog: ${r.counters.count} deliveries in the last 0.5 s`);
  }
}

/**
 * A fan-out row: deliveries/s of the closed loop, p50/p99 of the open loop (none when it overflowed: its
 * latency would be its backlog's age), frames/s and payload bytes/s received, and the CPU cost per million
 * deliveries: the server's, plus Postgres' when `db` (must-deliver commits each message first).
 */
export function fanRow(server: string, members: number, closed: Measured, open: Measured, group?: string, loops?: FanLoops): Row {
  const secs = closed.report.seconds;
  const n = Math.max(1, closed.report.counters.count);
  const db = Number.isFinite(closed.db) ? closed.db : 0;
  loops ??= loopsOf.get(closed);
  const ov = loops?.overflow;
  return {
    server,
    group,
    value: closed.rate,
    unit: "deliveries/s",
    p50: ov ? undefined : open.report.hist.pct(0.5),
    p99: ov ? undefined : open.report.hist.pct(0.99),
    cpu: ((closed.cpu + db) / n) * 1e6,
    cpuUnit: Number.isFinite(closed.db) ? "CPU s (server + Postgres) per 1M deliveries" : "server CPU s per 1M deliveries",
    extra: {
      "msgs/s": Math.round(closed.rate / members),
      "frames/s": Math.round(closed.report.counters.frames / secs),
      "bytes/s": Math.round(closed.report.counters.bytes / secs),
      "bytes per delivery": Number((closed.report.counters.bytes / n).toFixed(1)),
      ...(Number.isFinite(closed.db) ? { "server CPU s/1M": Number(((closed.cpu / n) * 1e6).toFixed(3)), "db CPU s/1M": Number(((closed.db / n) * 1e6).toFixed(3)) } : {}),
      ...(loops ? { window: loops.window } : {}),
      ...(ov ? { "overflows at msgs/s": ov.at, "kept up at msgs/s": ov.keptUpAt, ...(ov.keptUpAt ? { "p50 there ms": ov.p50 ?? NaN, "p99 there ms": ov.p99 ?? NaN } : {}) } : {}),
      "open-loop deliveries/s": Math.round(open.rate),
      "generator CPU %": Math.round(closed.gen * 100),
      "server CPU s": Number(closed.cpu.toFixed(2)),
      ...(Number.isFinite(closed.db) ? { "db CPU s": Number(closed.db.toFixed(2)) } : {}),
      "generator CPU s": Number(closed.genCpu.toFixed(2)),
      lost: closed.report.counters.lost + open.report.counters.lost,
      resyncs: closed.report.counters.resyncs + open.report.counters.resyncs,
      errors: closed.report.counters.errors + open.report.counters.errors,
      closed: closed.report.counters.closed + open.report.counters.closed,
    },
  };
}

/** What the closed-loop search and the open loop found for a row, as notes. */
export function fanNotes(server: string, loops: FanLoops, p: FanParams): string[] {
  const out = [`${server}: closed loop at ${loops.window} in flight per sender (${p.senders} senders); ${p.search ? "window not raised further: " : ""}${loops.saturated}`];
  const ov = loops.overflow;
  if (ov)
    out.push(
      `${server}: OVERFLOWS — the open loop at ${fmt(p.rate)} msg/s delivered ${(ov.share * 100).toFixed(0)}% of the offered; ramping up, it kept up at ${ov.keptUpAt ? `${fmt(ov.keptUpAt)} msg/s` : "none of the rates tried"} and fell behind from ${fmt(ov.at)} msg/s (${fmt(ov.at * p.members)} deliveries/s): no latency is given (it would be the backlog's age)`,
    );
  return out;
}

/**
 * Ours against the raw Bun peers (one frame per message, and coalescing per tick as ours does) in frames/s,
 * payload bytes/s and CPU per delivery (the peer's / ours: above 1× ours costs less), beside `ratiosOf`'s
 * deliveries/s.
 */
export function fanRatios(rows: Row[]): Ratio[] {
  const out = ratiosOf(rows);
  const raw = rows.filter((r) => r.server === LABEL["bun-raw"] || r.server === LABEL["bun-coalesce"]);
  for (const o of rows.filter((r) => r.server.startsWith("ours"))) {
    for (const p of raw) {
      const x = (k: string) => Number(o.extra?.[k]) / Number(p.extra?.[k]);
      out.push({ ours: o.server, peer: p.server, what: "frames/s", ratio: x("frames/s") });
      out.push({ ours: o.server, peer: p.server, what: "bytes/s", ratio: x("bytes/s") });
      // None when ours used no measurable CPU (/proc's 10 ms ticks, a smoke run's second).
      const cpu = (p.cpu ?? NaN) / (o.cpu ?? NaN);
      if (Number.isFinite(cpu)) out.push({ ours: o.server, peer: p.server, what: "CPU per delivery, peer / ours", ratio: cpu });
    }
  }
  return out;
}

/** Opens the members (all on `servers`' ports, round robin) and, for ours, joins them to the room. */
export async function openRoom(ctx: Ctx, kind: ServerKind, servers: Server[], users: string[]): Promise<LoadGen> {
  const n = users.length;
  const lg = await LoadGen.start(n, 2);
  const o = await lg.open(
    {
      proto: protoOf(kind),
      ports: servers.map((s) => s.port),
      path: wsPath(kind, ROOM),
      users: kind === "ours" ? users : undefined,
      tokenSecret: TOKEN_SECRET,
      sample: 100,
    },
    (k) => ctx.status(`  opening ${k}/${n}`),
  );
  ctx.say(`  ${o.ok} connections in ${o.seconds.toFixed(1)} s${o.failed ? `, ${o.failed} failed: ${o.errors.join("; ")}` : ""}`);
  if (kind === "ours") {
    const t = performance.now();
    const failed = await lg.join(ROOM);
    // Every join is announced to the room on its tick: let those notices finish before measuring.
    await sleep(1000);
    ctx.say(`  joined in ${((performance.now() - t) / 1000).toFixed(1)} s${failed ? `, ${failed} failed` : ""}`);
  }
  return lg;
}

export async function fanout(ctx: Ctx): Promise<Result> {
  const p = fanParams(ctx, 1000);
  const t0 = performance.now();
  const rows: Row[] = [];
  const notes: string[] = [];
  const users = userIds("fo", p.members);
  for (const kind of ["ours", ...ctx.opts.peers] as ServerKind[]) {
    ctx.say(`fan-out · ${LABEL[kind]} · room of ${p.members}, ${p.senders} senders`);
    const server = kind === "ours" ? (await ctx.ours({ name: "fanout", users })).nodes[0]! : await ctx.peer(kind);
    let lg: LoadGen | undefined;
    try {
      lg = await openRoom(ctx, kind, [server], users);
      const one = async (name: string, cls: "must" | "droppable", label: string, o: { db?: boolean } = {}) => {
        const r = await fanLoops(ctx, lg!, [server], p, cls, label, o);
        rows.push(fanRow(name, p.members, r.closed, r.open, undefined, r));
        notes.push(...fanNotes(name, r, p));
      };
      if (kind === "ours") {
        await one("ours must-deliver", "must", "must-deliver", { db: true });
        await one("ours danmaku", "droppable", "danmaku");
      } else await one(LABEL[kind], "droppable", "publish");
    } finally {
      await lg?.close();
      await server.stop();
    }
  }
  const ratios = fanRatios(rows);
  const must = rows.find((r) => r.server === "ours must-deliver")!;
  const dm = rows.find((r) => r.server === "ours danmaku")!;
  const vs = (peer: ServerKind, what?: string) => ratios.find((r) => r.ours === "ours must-deliver" && r.peer === LABEL[peer] && r.what === what)?.ratio;
  const targets = [target("danmaku vs our must-deliver", "≥ 3×", dm.value / must.value, dm.value / must.value >= 3)];
  // Like for like: the raw Bun.serve that coalesces per tick as ours does (the per-message raw peer sends
  // hundreds of times more frames for the same deliveries; its ratios are printed, with no goal).
  const co = vs("bun-coalesce");
  if (co !== undefined) {
    targets.push(target("must-deliver vs Bun.serve coalescing, deliveries/s", "≥ 0.85×", co, co >= 0.85));
    const cpu = vs("bun-coalesce", "CPU per delivery, peer / ours") ?? NaN;
    targets.push(target("must-deliver vs Bun.serve coalescing, CPU per delivery (peer / ours; ours counts Postgres)", "none (reported)", cpu, undefined));
  }
  const sio = vs("socketio");
  if (sio !== undefined) targets.push(target("must-deliver vs Socket.IO", "≥ 5×", sio, sio >= 5));
  // Adaptive ticks: at 20 messages/s in a room of 1,000 a message waits for no tick.
  const at20 = p.rate === 20 && p.members === 1000;
  for (const r of [must, dm]) {
    targets.push(target(`${r.server} open-loop p50`, "≤ 10 ms at 20 msg/s, 1,000 members", r.p50 ?? NaN, at20 ? (r.p50 ?? Infinity) <= 10 : undefined));
    targets.push(target(`${r.server} open-loop p99`, "≤ 30 ms at 20 msg/s, 1,000 members", r.p99 ?? NaN, at20 ? (r.p99 ?? Infinity) <= 30 : undefined));
  }
  return {
    scenario: "fanout",
    title: "Fan-out to one room",
    params: { members: p.members, senders: p.senders, window: p.search ? `raised to saturation (≤ ${p.window})` : p.window, openLoopMsgsPerSec: p.rate, seconds: ctx.opts.seconds },
    rows,
    ratios,
    targets,
    notes: [
      "deliveries = messages × members that received them; ours and Bun.serve coalescing carry all of a tick's messages in one frame per member, the other peers one frame per message",
      "ticks adapt (ours and Bun.serve coalescing alike, src/core/room-ticks.ts): a quiet room sends at once, a busy one coalesces a tick's messages (ROOM_TICK_MS = 50 ms, bucket of 3 frames)",
      "frames/s and bytes/s are what the members received (payload bytes; ours' items carry the message's id, seq, sender and time); CPU per delivery counts Postgres for must-deliver",
      ...notes,
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}
