// heartbeat: N connections each pinging its server. Closed loop (one ping in flight per connection,
// the next sent as the pong arrives) finds the round trips per second; open loop (a fixed total rate,
// each ping timed from when it was due) measures latency and CPU per round trip. Ours answers {"t":"ping"}
// with a pong after parsing and checking the frame; the peers echo the frame (Socket.IO: an "hb" event
// answered by one).
//
// The closed loops run one server at a time, alone on the machine (they saturate it). For the open loop every
// server is started again and its connections opened, then the load takes turns in slices (ours, raw, ...,
// ours, raw, ...), each server's figures summed over its slices: a drift of the machine over the minutes
// of a run (other load, the host) then weighs on every server alike rather than on whichever ran last.
import { ratiosOf, target, type Ctx, type Measured, type Result, type Row } from "../lib/harness.ts";
import { Hist } from "../lib/hist.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { userIds } from "../lib/seed.ts";
import { FANOUT_ONLY, LABEL, protoOf, TOKEN_SECRET, wsPath, type Server, type ServerKind } from "../lib/servers.ts";

interface Up {
  kind: ServerKind;
  server: Server;
  lg: LoadGen;
  opened: number;
}

interface Open {
  count: number;
  seconds: number;
  cpu: number;
  busy: number;
  hist: Hist;
}

export async function heartbeat(ctx: Ctx): Promise<Result> {
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 20 : 2000);
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 200 : 10_000);
  const slices = ctx.opts.smoke ? 2 : 5;
  const t0 = performance.now();
  const kinds = ["ours", ...ctx.opts.peers.filter((k) => !FANOUT_ONLY.includes(k))] as ServerKind[];
  const users = userIds("hb", n);
  /** Starts a server and opens its connections. */
  const bringUp = async (kind: ServerKind): Promise<Up> => {
    const server = kind === "ours" ? (await ctx.ours({ name: "hb", users })).nodes[0]! : await ctx.peer(kind);
    const lg = await LoadGen.start(n, 2).catch(async (e) => {
      await server.stop();
      throw e;
    });
    const u: Up = { kind, server, lg, opened: 0 };
    try {
      const o = await lg.open(
        { proto: protoOf(kind), ports: [server.port], path: wsPath(kind), users: kind === "ours" ? users : undefined, tokenSecret: TOKEN_SECRET },
        (k) => ctx.status(`  opening ${k}/${n}`),
      );
      u.opened = o.ok;
      if (o.failed) ctx.say(`  ${o.failed} connections failed: ${o.errors.join("; ")}`);
      return u;
    } catch (e) {
      await takeDown(u);
      throw e;
    }
  };
  const takeDown = async ({ lg, server }: Up) => {
    await lg.close();
    await server.stop();
  };

  // Closed loops: each server alone on the machine, as it saturates it.
  const closed: { opened: number; m: Measured }[] = [];
  for (const kind of kinds) {
    ctx.say(`heartbeat · ${LABEL[kind]} · ${n} connections`);
    const u = await bringUp(kind);
    try {
      await u.lg.all({ op: "hb", mode: "closed", rate: 0 }, "started");
      closed.push({ opened: u.opened, m: await ctx.window(u.lg, [u.server], `${LABEL[kind]} closed loop`) });
      await u.lg.all({ op: "stop" }, "stopped");
    } finally {
      await takeDown(u);
    }
  }

  // Open loop: every server up at once, taking turns slice by slice.
  ctx.say(`heartbeat · open loop at ${rate}/s · ${kinds.map((k) => LABEL[k]).join(", ")} taking turns, ${slices} slices each`);
  const up: Up[] = [];
  const open: Open[] = kinds.map(() => ({ count: 0, seconds: 0, cpu: 0, busy: 0, hist: new Hist() }));
  try {
    for (const kind of kinds) up.push(await bringUp(kind));
    const slice = ctx.opts.seconds / slices;
    for (let k = 0; k < slices; k++) {
      for (const [i, { kind, server, lg }] of up.entries()) {
        await lg.all({ op: "hb", mode: "open", rate: rate / lg.workers.length }, "started");
        const m = await ctx.window(lg, [server], `${LABEL[kind]} open loop at ${rate}/s, slice ${k + 1}/${slices}`, { seconds: slice, warmup: Math.min(1, ctx.opts.warmup) });
        await lg.all({ op: "stop" }, "stopped");
        const s = open[i]!;
        s.count += m.report.counters.count;
        s.seconds += m.report.seconds;
        s.cpu += m.cpu;
        s.busy += m.machineBusy * m.report.seconds;
        s.hist.merge(m.report.hist);
      }
    }
  } finally {
    for (const u of up) await takeDown(u);
  }

  const rows: Row[] = kinds.map((kind, i) => {
    const { opened, m: c } = closed[i]!;
    const o = open[i]!;
    return {
      server: LABEL[kind],
      value: c.rate,
      unit: "round trips/s",
      p50: o.hist.pct(0.5),
      p99: o.hist.pct(0.99),
      cpu: (c.cpu / c.report.counters.count) * 1e6,
      cpuUnit: "server CPU µs per round trip",
      extra: {
        connections: opened,
        "closed-loop p50 ms": c.report.hist.pct(0.5),
        "closed-loop p99 ms": c.report.hist.pct(0.99),
        "open-loop achieved/s": Math.round(o.count / Math.max(o.seconds, 1e-9)),
        // /proc counts CPU in 10 ms ticks: under 50 ms of it (a smoke run) the figure would be noise.
        "open-loop server CPU µs per round trip": o.cpu >= 0.05 ? Number(((o.cpu / Math.max(1, o.count)) * 1e6).toFixed(1)) : "too little to measure",
        "open-loop machine busy %": Math.round((o.busy / Math.max(o.seconds, 1e-9)) * 100),
        "generator CPU %": Math.round(c.gen * 100),
      },
    };
  });
  const ratios = ratiosOf(rows);
  const raw = ratios.find((r) => r.peer === LABEL["bun-raw"]);
  // Server CPU per round trip in the open loop (a rate that leaves the machine headroom), raw / ours: above
  // 1× ours costs less per round trip.
  const openCpu = (r?: Row) => Number(r?.extra?.["open-loop server CPU µs per round trip"] ?? NaN);
  const rawRow = rows.find((r) => r.server === LABEL["bun-raw"]);
  const cpuRatio = openCpu(rawRow) / openCpu(rows[0]);
  if (rawRow && Number.isFinite(cpuRatio)) ratios.push({ ours: "ours", peer: rawRow.server, ratio: cpuRatio, what: "server CPU per round trip at the open-loop rate, peer / ours" });
  return {
    scenario: "heartbeat",
    title: "Heartbeat round trips",
    params: { connections: n, openLoopRate: rate, seconds: ctx.opts.seconds, openLoopSlices: slices },
    rows,
    ratios,
    targets: raw
      ? [
          target("heartbeat vs Bun.serve raw echo, round trips/s (closed loop)", "≥ 0.85×", raw.ratio, raw.ratio >= 0.85),
          target("heartbeat vs Bun.serve raw echo, server CPU per round trip (raw / ours, open loop)", "≥ 0.9×", cpuRatio, Number.isFinite(cpuRatio) ? cpuRatio >= 0.9 : undefined),
        ]
      : [],
    notes: [],
    seconds: (performance.now() - t0) / 1000,
  };
}
