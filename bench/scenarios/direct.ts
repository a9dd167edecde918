// direct: 1:1 messages between users on different nodes. Pairs of users send to each other (closed loop,
// W in flight per connection); on 2 nodes every pair is split, so each push crosses Redis on the
// recipient's per-user channel (docs/ARCHITECTURE.md, "Cluster"); on 1 node everything stays in process.
// What matters is what the split costs: pushes per second and per server CPU second, 2 nodes against 1.
// The 2 nodes run over one Redis and, in the same run, over a Redis Cluster of 3 masters and 3 replicas
// (sharded pub/sub: the per-user channels spread over the shards), with the Redis processes' CPU.
import { ratiosOf, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { userIds } from "../lib/seed.ts";
import { TOKEN_SECRET, type Server } from "../lib/servers.ts";

export async function direct(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 10 : 200);
  // Requests in flight per connection: fixed with --window, else raised until something saturates (Ctx.sizeWindow).
  const start = ctx.opts.window ?? 2;
  const notes: string[] = [];
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 200 : 2000);
  const users = userIds("dr", n - (n % 2));
  const peers = Object.fromEntries(users.map((u, i) => [u, users[i ^ 1]!]));
  const rows: Row[] = [];
  for (const [nodes, rcluster] of [[1, false], [2, false], [2, true]] as const) {
    const label = `ours ${nodes} node${nodes > 1 ? "s" : ""}${rcluster ? ", Redis Cluster" : ""}`;
    ctx.say(`direct · ${label} · ${users.length} connections sending 1:1${nodes > 1 ? ", every pair split over the nodes" : ""}`);
    let servers: Server[] = [];
    let lg: LoadGen | undefined;
    try {
      servers = (await ctx.ours({ name: `direct${nodes}${rcluster ? "rc" : ""}`, users, nodes, redis: rcluster ? "cluster" : nodes > 1 })).nodes;
      const redis = rcluster ? await ctx.redisCluster() : nodes > 1 ? await ctx.redis() : undefined;
      const redisPid = redis?.pids?.length ? redis.pids : redis?.pid;
      lg = await LoadGen.start(users.length, 2);
      // Connection i goes to node i % nodes: user i and its peer i ^ 1 land on different nodes.
      await lg.open({ proto: "native", ports: servers.map((s) => s.port), path: "/ws", users, tokenSecret: TOKEN_SECRET }, (k) => ctx.status(`  opening ${k}/${users.length}`));
      await lg.all({ op: "durable", mode: "closed", peers, window: start, rate: 0, bodyChars: 40 }, "started");
      let window = start;
      let saturated = "fixed window (--window)";
      if (ctx.opts.window === undefined)
        ({ window, saturated } = await ctx.sizeWindow(lg, servers, label, { redisPid }, { start, ceiling: 256, set: (w) => lg!.all({ op: "durableWindow", window: w }, "started").then(() => {}) }));
      notes.push(`${label}: closed loop at ${window} in flight per connection; ${ctx.opts.window === undefined ? "window not raised further: " : ""}${saturated}`);
      const closed = await ctx.window(lg, servers, "closed loop", { redisPid });
      await lg.all({ op: "stop" }, "stopped");
      await sleep(1000);
      await lg.all({ op: "durable", mode: "open", peers, window: 0, rate: rate / lg.workers.length, bodyChars: 40 }, "started");
      const open = await ctx.window(lg, servers, `open loop at ${rate}/s`);
      await lg.all({ op: "stop" }, "stopped");
      const pushes = closed.report.counters.msgs / closed.report.seconds;
      rows.push({
        server: label,
        value: pushes,
        unit: "pushes/s",
        p50: open.report.hist.pct(0.5),
        p99: open.report.hist.pct(0.99),
        cpu: (closed.cpu / Math.max(1, closed.report.counters.msgs)) * 1e6,
        cpuUnit: "server CPU µs per push",
        extra: {
          window,
          "acked sends/s": Math.round(closed.rate),
          "pushes per server CPU s": Math.round(closed.report.counters.msgs / closed.cpu),
          errors: closed.report.counters.errors + open.report.counters.errors,
          ...(redisPid ? { "redis CPU s": Number(closed.redis.toFixed(2)), "pushes per redis CPU s": Math.round(closed.report.counters.msgs / closed.redis) } : {}),
        },
      });
    } finally {
      await lg?.close();
      for (const s of servers) await s.stop();
    }
  }
  const per = (label: string) => (rows.find((r) => r.server === label)?.extra?.["pushes per server CPU s"] as number) ?? NaN;
  const eff = per("ours 2 nodes") / per("ours 1 node");
  return {
    scenario: "direct",
    title: "1:1 across nodes: per-user channels over Redis against one node",
    params: { connections: users.length, window: ctx.opts.window ?? "raised to saturation (≤ 256)", openLoopRate: rate, seconds: ctx.opts.seconds },
    rows,
    ratios: ratiosOf(rows),
    targets: [
      target("1:1 on 2 nodes (every push through Redis) vs 1 node, pushes per server CPU second", "none (reported)", eff, undefined, 2),
      target("1:1 on 2 nodes over a Redis Cluster (3 shards) vs over one Redis, pushes per server CPU second", "none (reported)", per("ours 2 nodes, Redis Cluster") / per("ours 2 nodes"), undefined, 2),
    ],
    notes: ["latency is the sender's ack (after commit); a push follows its commit at once, on the recipient's node", ...notes],
    seconds: (performance.now() - t0) / 1000,
  };
}
