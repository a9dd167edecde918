// fan-out: one room of N members; S of them publish. Closed loop (each sender keeps W messages in
// flight, the next sent when one of its own comes back to it) finds deliveries per second; open loop
// (a fixed rate of messages) measures delivery latency, send to arrival at sampled members.
// Ours: room_send to a live room, as must-deliver (committed to Postgres first, seq, ack) and as
// coalesced danmaku (droppable); both go out on the room's tick (ROOM_TICK_MS, 50 ms), one frame per
// tick holding every message of that tick. The peers publish each message as its own frame.
import { ratiosOf, target, type Ctx, type Measured, type Result, type Row } from "../lib/harness.ts";
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
  window: number;
  rate: number;
}

export function fanParams(ctx: Ctx, defaultMembers: number): FanParams {
  const members = ctx.opts.n ?? (ctx.opts.smoke ? 40 : defaultMembers);
  return {
    members,
    senders: Math.min(members, ctx.opts.smoke ? 2 : 4),
    window: ctx.opts.window ?? 256,
    // 20,000 deliveries per second: below what every server here sustains (Node ws and Socket.IO fall
    // behind near 60k), so the latencies compare servers at work, not queues.
    rate: ctx.opts.rate ?? Math.max(1, Math.round((ctx.opts.smoke ? 2000 : 20_000) / members)),
  };
}

/** Runs the closed and open loops of one message class on connections already in the room. */
export async function fanLoops(ctx: Ctx, lg: LoadGen, servers: Server[], p: FanParams, cls: "must" | "droppable", label: string, o: { db?: boolean; redisPid?: number | number[] } = {}) {
  const split = senderSplit(lg, p.senders);
  // Danmaku beyond MAX_TICK_ITEMS (500) per room per tick are dropped by design (a flood guard): keep
  // the messages in flight below it, or the closed loop would measure the guard.
  const window = cls === "droppable" && servers[0]!.kind === "ours" ? Math.min(p.window, Math.floor(450 / p.senders)) : p.window;
  const run = (mode: "closed" | "open") =>
    lg.all(
      (i) => ({ op: "fan", worker: i, senders: split[i]!, mode, window, rate: (p.rate * split[i]!.length) / p.senders, room: ROOM, cls }),
      "started",
    );
  await run("closed");
  const closed = await ctx.window(lg, servers, `${label} closed loop`, o);
  await lg.all({ op: "stop" }, "stopped");
  await drain(ctx, lg);
  await run("open");
  const open = await ctx.window(lg, servers, `${label} open loop at ${p.rate} msg/s`, o);
  await lg.all({ op: "stop" }, "stopped");
  await drain(ctx, lg);
  return { closed, open };
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

export function fanRow(server: string, members: number, closed: Measured, open: Measured, group?: string): Row {
  return {
    server,
    group,
    value: closed.rate,
    unit: "deliveries/s",
    p50: open.report.hist.pct(0.5),
    p99: open.report.hist.pct(0.99),
    cpu: (closed.cpu / closed.report.counters.count) * 1e6,
    cpuUnit: "server CPU s per 1M deliveries",
    extra: {
      "msgs/s": Math.round(closed.rate / members),
      ...(Number.isFinite(closed.db) ? { "db CPU s/1M": Number(((closed.db / closed.report.counters.count) * 1e6).toFixed(2)) } : {}),
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
  const users = userIds("fo", p.members);
  for (const kind of ["ours", ...ctx.opts.peers] as ServerKind[]) {
    ctx.say(`fan-out · ${LABEL[kind]} · room of ${p.members}, ${p.senders} senders`);
    const server = kind === "ours" ? (await ctx.ours({ name: "fanout", users })).nodes[0]! : await ctx.peer(kind);
    let lg: LoadGen | undefined;
    try {
      lg = await openRoom(ctx, kind, [server], users);
      if (kind === "ours") {
        const must = await fanLoops(ctx, lg, [server], p, "must", "must-deliver", { db: true });
        rows.push(fanRow("ours must-deliver", p.members, must.closed, must.open));
        const dm = await fanLoops(ctx, lg, [server], p, "droppable", "danmaku");
        rows.push(fanRow("ours danmaku", p.members, dm.closed, dm.open));
      } else {
        const r = await fanLoops(ctx, lg, [server], p, "droppable", "publish");
        rows.push(fanRow(LABEL[kind], p.members, r.closed, r.open));
      }
    } finally {
      await lg?.close();
      await server.stop();
    }
  }
  const ratios = ratiosOf(rows);
  const must = rows.find((r) => r.server === "ours must-deliver")!;
  const dm = rows.find((r) => r.server === "ours danmaku")!;
  const vs = (peer: ServerKind) => ratios.find((r) => r.ours === "ours must-deliver" && r.peer === LABEL[peer])?.ratio;
  const targets = [target("danmaku vs our must-deliver", "≥ 3×", dm.value / must.value, dm.value / must.value >= 3)];
  const raw = vs("bun-raw");
  if (raw !== undefined) targets.push(target("must-deliver vs Bun.serve raw publish", "≥ 0.85×", raw, raw >= 0.85));
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
    params: { members: p.members, senders: p.senders, window: p.window, openLoopMsgsPerSec: p.rate, seconds: ctx.opts.seconds },
    rows,
    ratios,
    targets,
    notes: [
      "deliveries = messages × members that received them; ours carries all of a tick's messages in one frame per member, the peers one frame per message",
      "ours' ticks adapt: a quiet room sends at once, a busy one coalesces a tick's messages (ROOM_TICK_MS = 50 ms)",
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}
