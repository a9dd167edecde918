// cluster fan-out: the fan-out room (danmaku, closed and open loop as in fanout.ts) with its members
// and senders spread over 2 nodes that share it through Redis, against the same room on 1 node; the
// same for Socket.IO with @socket.io/redis-adapter. What matters is the work per delivery: 2 nodes should
// deliver at least 0.8× of 1 node's rate for the same total server CPU (deliveries per CPU second), compared
// at the same offered rate (2,000,000 deliveries/s, an open loop every setup of ours keeps up with): there
// each setup sends the same frames with the same messages in them. Their closed loops stop at different
// rates, and a coalescing server's CPU per delivery falls as each frame carries more messages, so the
// closed loops' deliveries per CPU second are reported beside it but compare batching as much as clustering.
// Ours on 2 nodes runs twice in one run: over a single Redis, and over a Redis Cluster of 3 masters and 3
// replicas (sharded pub/sub: the room's channel lives on one shard), with the Redis processes' CPU beside.
import { fmt, ratiosOf, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import type { LoadGen } from "../lib/loadgen.ts";
import { userIds } from "../lib/seed.ts";
import type { Server } from "../lib/servers.ts";
import { fanLoops, fanParams, fanRow, openRoom } from "./fanout.ts";

export async function cluster(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const p = fanParams(ctx, 1000);
  const users = userIds("cl", p.members);
  const costRate = Math.max(1, Math.round((ctx.opts.smoke ? 8_000 : 2_000_000) / p.members));
  const rows: Row[] = [];
  const kinds: (readonly ["ours" | "socketio", number, boolean])[] = [
    ["ours", 1, false],
    ["ours", 2, false],
    ["ours", 2, true],
    ...ctx.opts.peers.filter((k) => k === "socketio").flatMap((k) => [[k, 1, false] as const, [k, 2, false] as const]),
  ];
  for (const [kind, nodes, rcluster] of kinds) {
    const label = `${kind === "ours" ? "ours" : "Socket.IO"} ${nodes} node${nodes > 1 ? "s" : ""}${rcluster ? ", Redis Cluster" : ""}`;
    ctx.say(`cluster fan-out · ${label} · room of ${p.members}, ${p.senders} senders`);
    const redis = rcluster ? await ctx.redisCluster() : nodes > 1 ? await ctx.redis() : undefined;
    const redisPid = redis?.pids?.length ? redis.pids : redis?.pid;
    let servers: Server[] = [];
    let lg: LoadGen | undefined;
    try {
      if (kind === "ours") servers = (await ctx.ours({ name: `cluster${nodes}${rcluster ? "rc" : ""}`, users, nodes, redis: rcluster ? "cluster" : nodes > 1 })).nodes;
      else for (let i = 0; i < nodes; i++) servers.push(await ctx.peer("socketio", { redis: nodes > 1, name: `socketio-n${i + 1}` }));
      lg = await openRoom(ctx, kind, servers, users);
      // Socket.IO falls behind near 60k deliveries/s: it has no run at the matched rate.
      const r = await fanLoops(ctx, lg, servers, p, "droppable", "danmaku", { redisPid, costRate: kind === "ours" ? costRate : undefined });
      const row = fanRow(label, p.members, r.closed, r.open, `${nodes}`);
      row.extra!["deliveries per server CPU s"] = Math.round(r.closed.report.counters.count / r.closed.cpu);
      if (r.cost) {
        row.extra![`deliveries per server CPU s at ${fmt(r.cost.rate)} msg/s`] = Math.round(r.cost.m.report.counters.count / r.cost.m.cpu);
        row.extra![`kept up at ${fmt(r.cost.rate)} msg/s`] = `${Math.round(r.cost.keptUp * 100)}%`;
      }
      row.extra!["server CPU s"] = Number(r.closed.cpu.toFixed(2));
      if (redisPid) {
        row.extra!["redis CPU s"] = Number(r.closed.redis.toFixed(2));
        row.extra!["deliveries per redis CPU s"] = Math.round(r.closed.report.counters.count / r.closed.redis);
      }
      rows.push(row);
    } finally {
      await lg?.close();
      for (const s of servers) await s.stop();
    }
  }
  const perCpu = (label: string) => {
    const r = rows.find((x) => x.server === label);
    return r ? (r.extra!["deliveries per server CPU s"] as number) : NaN;
  };
  const rate = (label: string) => rows.find((x) => x.server === label)?.value ?? NaN;
  const atCost = `deliveries per server CPU s at ${fmt(costRate)} msg/s`;
  const perCpuAtCost = (label: string) => Number(rows.find((x) => x.server === label)?.extra?.[atCost] ?? NaN);
  const keptUp = (label: string) => parseInt(String(rows.find((x) => x.server === label)?.extra?.[`kept up at ${fmt(costRate)} msg/s`] ?? "0")) >= 90;
  const matched = perCpuAtCost("ours 2 nodes") / perCpuAtCost("ours 1 node");
  // Only a rate both kept up with compares the same work; a smoke run's CPU is too little to measure.
  const comparable = keptUp("ours 2 nodes") && keptUp("ours 1 node") && !ctx.opts.smoke;
  const eff = perCpu("ours 2 nodes") / perCpu("ours 1 node");
  const targets = [
    target(`ours 2 nodes vs 1 node, deliveries per server CPU second at the same rate (${fmt(costRate * p.members)} deliveries/s)`, "≥ 0.8×", matched, comparable ? matched >= 0.8 : undefined),
    target("ours 2 nodes vs 1 node, deliveries per server CPU second, each in its closed loop", "none (reported)", eff, undefined, 2),
  ];
  const rc = perCpu("ours 2 nodes, Redis Cluster") / perCpu("ours 2 nodes");
  targets.push(target("ours 2 nodes over a Redis Cluster (3 shards) vs over one Redis, deliveries per server CPU second", "none (reported)", rc, undefined, 2));
  const notes = [
    `ours 2 nodes over a Redis Cluster / over one Redis, deliveries/s: ${(rate("ours 2 nodes, Redis Cluster") / rate("ours 2 nodes")).toFixed(2)}×; per server CPU second: ${rc.toFixed(2)}×`,
    `ours 2 nodes / 1 node, deliveries/s: ${(rate("ours 2 nodes") / rate("ours 1 node")).toFixed(2)}×; per server CPU second: ${matched.toFixed(2)}× at ${fmt(costRate)} msg/s each, ${eff.toFixed(2)}× in their closed loops`,
    "danmaku (droppable) traffic; 1 node runs the in-process bus, 2 nodes the Redis bus; Redis CPU is shown apart",
  ];
  if (rows.some((r) => r.server.startsWith("Socket.IO"))) {
    const sio = perCpu("Socket.IO 2 nodes") / perCpu("Socket.IO 1 node");
    notes.push(`Socket.IO 2 nodes / 1 node, per server CPU second: ${sio.toFixed(2)}×; deliveries/s ${fmt(rate("Socket.IO 2 nodes"))} vs ${fmt(rate("Socket.IO 1 node"))}`);
  }
  return {
    scenario: "cluster",
    title: "Cluster fan-out: one room over 2 nodes through Redis",
    params: { members: p.members, senders: p.senders, window: p.window, openLoopMsgsPerSec: p.rate, matchedMsgsPerSec: costRate, seconds: ctx.opts.seconds },
    rows,
    ratios: ratiosOf(rows),
    targets,
    notes,
    seconds: (performance.now() - t0) / 1000,
  };
}
