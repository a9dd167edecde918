// connections: hold as many idle connections as the machine allows, each sending a heartbeat every
// 20 s, and read the server's resident memory before and after: memory per connection (the kernel's
// socket buffers are not in a process's RSS). One server process holds at most ~19,900 sockets (the
// open-file limit is 20,000), so past 18,000 ours runs several nodes, each on its own port; the peers
// run one process at up to 18,000. Every server is read after a full garbage collection (SIGUSR2:
// bench/lib/ours.ts, the peers), before and after, so the figure is what the connections hold.
import { type Ctx, type Result, type Row, target, ratiosOf } from "../lib/harness.ts";
import { LoadGen, PER_WORKER } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { userIds } from "../lib/seed.ts";
import { FANOUT_ONLY, LABEL, protoOf, TOKEN_SECRET, wsPath, type Server, type ServerKind } from "../lib/servers.ts";

const PER_NODE = 18_000;

export async function connections(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const want = ctx.opts.n ?? (ctx.opts.smoke ? 200 : PER_NODE);
  const rows: Row[] = [];
  for (const kind of ["ours", ...ctx.opts.peers.filter((k) => !FANOUT_ONLY.includes(k))] as ServerKind[]) {
    const n = kind === "ours" ? want : Math.min(want, PER_NODE);
    const nodes = Math.ceil(n / PER_NODE);
    ctx.say(`connections · ${LABEL[kind]} · ${n} idle connections${nodes > 1 ? ` over ${nodes} nodes` : ""}`);
    const users = userIds("c", n);
    const servers: Server[] = kind === "ours" ? (await ctx.ours({ name: "conns", users, nodes })).nodes : [await ctx.peer(kind)];
    let lg: LoadGen | undefined;
    try {
      for (const s of servers) await s.gc();
      const base = servers.map((s) => s.rss());
      lg = await LoadGen.start(n, Math.max(2, Math.ceil(n / PER_WORKER)));
      const o = await lg.open(
        { proto: protoOf(kind), ports: servers.map((s) => s.port), path: wsPath(kind), users: kind === "ours" ? users : undefined, tokenSecret: TOKEN_SECRET, concurrency: 128 },
        (k) => ctx.status(`  opening ${k}/${n}`),
      );
      ctx.say(`  ${o.ok} open in ${o.seconds.toFixed(1)} s (${(o.ok / o.seconds).toFixed(0)}/s)${o.failed ? `, ${o.failed} failed: ${o.errors.join("; ")}` : ""}`);
      await lg.all({ op: "idle", everyMs: 20_000 }, "started");
      const t = await lg.measure();
      await sleep((ctx.opts.warmup + ctx.opts.seconds) * 1000);
      const rep = await lg.report(t);
      for (const s of servers) await s.gc();
      const rss = servers.map((s) => s.rss());
      const grown = rss.reduce((a, r, i) => a + r - base[i]!, 0);
      const held = o.ok - rep.counters.closed;
      const per = grown / Math.max(1, o.ok);
      ctx.say(`  RSS ${servers.map((_, i) => `${(base[i]! / 2 ** 20).toFixed(0)} → ${(rss[i]! / 2 ** 20).toFixed(0)} MB`).join(", ")}: ${per.toFixed(0)} bytes per connection, ${held} held`);
      rows.push({
        server: LABEL[kind],
        value: per,
        unit: "bytes/connection",
        lowerIsBetter: true,
        extra: {
          connections: o.ok,
          held,
          nodes: servers.length,
          "connect/s": Math.round(o.ok / o.seconds),
          "RSS MB": Math.round(rss.reduce((a, b) => a + b, 0) / 2 ** 20),
          failed: o.failed,
        },
      });
    } finally {
      await lg?.close();
      for (const s of servers) await s.stop();
    }
  }
  const ours = rows[0]!;
  return {
    scenario: "connections",
    title: "Idle connections: server memory per connection",
    params: { connections: want, heartbeatSec: 20, holdSeconds: ctx.opts.warmup + ctx.opts.seconds },
    rows,
    ratios: ratiosOf(rows),
    targets: [target("process memory per idle connection", "≤ 4096 bytes", ours.value, ours.value <= 4096, 0)],
    notes: ["ratios here are peer bytes / our bytes: above 1× means ours uses less memory per connection"],
    seconds: (performance.now() - t0) / 1000,
  };
}
