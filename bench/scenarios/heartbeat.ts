// heartbeat: N connections each pinging its server. Closed loop (one ping in flight per connection,
// the next sent as the pong arrives) finds the round trips per second; open loop (a fixed total rate,
// each ping timed from when it was due) measures latency. Ours answers {"t":"ping"} with a pong after
// parsing and checking the frame; the peers echo the frame (Socket.IO: an "hb" event answered by one).
import { ratiosOf, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { userIds } from "../lib/seed.ts";
import { FANOUT_ONLY, LABEL, protoOf, TOKEN_SECRET, wsPath, type Server, type ServerKind } from "../lib/servers.ts";

export async function heartbeat(ctx: Ctx): Promise<Result> {
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 20 : 2000);
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 200 : 10_000);
  const t0 = performance.now();
  const rows: Row[] = [];
  for (const kind of ["ours", ...ctx.opts.peers.filter((k) => !FANOUT_ONLY.includes(k))] as ServerKind[]) {
    ctx.say(`heartbeat · ${LABEL[kind]} · ${n} connections`);
    const users = userIds("hb", n);
    let server: Server;
    if (kind === "ours") server = (await ctx.ours({ name: "hb", users })).nodes[0]!;
    else server = await ctx.peer(kind);
    const lg = await LoadGen.start(n, 2);
    try {
      const o = await lg.open(
        { proto: protoOf(kind), ports: [server.port], path: wsPath(kind), users: kind === "ours" ? users : undefined, tokenSecret: TOKEN_SECRET },
        (k) => ctx.status(`  opening ${k}/${n}`),
      );
      if (o.failed) ctx.say(`  ${o.failed} connections failed: ${o.errors.join("; ")}`);
      await lg.all({ op: "hb", mode: "closed", rate: 0 }, "started");
      const closed = await ctx.window(lg, [server], "closed loop");
      await lg.all({ op: "hb", mode: "open", rate: rate / lg.workers.length }, "started");
      const open = await ctx.window(lg, [server], `open loop at ${rate}/s`);
      await lg.all({ op: "stop" }, "stopped");
      rows.push({
        server: LABEL[kind],
        value: closed.rate,
        unit: "round trips/s",
        p50: open.report.hist.pct(0.5),
        p99: open.report.hist.pct(0.99),
        cpu: (closed.cpu / closed.report.counters.count) * 1e6,
        cpuUnit: "server CPU µs per round trip",
        extra: {
          connections: o.ok,
          "closed-loop p50 ms": closed.report.hist.pct(0.5),
          "closed-loop p99 ms": closed.report.hist.pct(0.99),
          "open-loop achieved/s": open.rate,
          // /proc counts CPU in 10 ms ticks: under 50 ms of it (a smoke run) the figure would be noise.
          "open-loop server CPU µs per round trip": open.cpu >= 0.05 ? Number(((open.cpu / Math.max(1, open.report.counters.count)) * 1e6).toFixed(1)) : "too little to measure",
          "open-loop machine busy %": Math.round(open.machineBusy * 100),
          "generator CPU %": Math.round(closed.gen * 100),
        },
      });
    } finally {
      await lg.close();
      await server.stop();
    }
  }
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
    params: { connections: n, openLoopRate: rate, seconds: ctx.opts.seconds },
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
