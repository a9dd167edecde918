// moderation: what the moderation hook (docs/webhooks.md) costs per message. The same closed-loop 1:1 sends as
// `direct` on one node, without the hook and with MODERATION_URL_DIRECT pointing at a local receiver (a
// Bun.serve in the bench process answering `{"action":"allow"}`): acked sends per second, the ack's latency
// and the server's CPU per message, with and without the hook.
import { ratiosOf, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { userIds } from "../lib/seed.ts";
import { TOKEN_SECRET, type Server } from "../lib/servers.ts";

export async function moderation(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 10 : 100);
  const window = ctx.opts.window ?? 16;
  const users = userIds("md", n - (n % 2));
  const peers = Object.fromEntries(users.map((u, i) => [u, users[i ^ 1]!]));
  let calls = 0;
  const receiver = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      await req.arrayBuffer();
      calls++;
      return Response.json({ action: "allow" });
    },
  });
  const rows: Row[] = [];
  try {
    for (const hook of [false, true]) {
      const label = hook ? "ours, moderation hook" : "ours, no hook";
      ctx.say(`moderation · ${label} · ${users.length} connections sending 1:1`);
      const env: Record<string, string> = hook ? { MODERATION_URL_DIRECT: `http://127.0.0.1:${receiver.port}/mod`, WEBHOOK_SECRET: "bench-webhook-secret-0001" } : {};
      let servers: Server[] = [];
      let lg: LoadGen | undefined;
      try {
        servers = (await ctx.ours({ name: `moderation${hook ? 1 : 0}`, users, env })).nodes;
        lg = await LoadGen.start(users.length, 2);
        await lg.open({ proto: "native", ports: servers.map((s) => s.port), path: "/ws", users, tokenSecret: TOKEN_SECRET }, (k) => ctx.status(`  opening ${k}/${users.length}`));
        const before = calls;
        await lg.all({ op: "durable", mode: "closed", peers, window, rate: 0, bodyChars: 40 }, "started");
        const m = await ctx.window(lg, servers, "closed loop");
        await lg.all({ op: "stop" }, "stopped");
        await sleep(500);
        rows.push({
          server: label,
          value: m.rate,
          unit: "acked sends/s",
          p50: m.report.hist.pct(0.5),
          p99: m.report.hist.pct(0.99),
          cpu: (m.cpu / Math.max(1, m.report.counters.count)) * 1e6,
          cpuUnit: "server CPU µs per message",
          extra: { "hook calls": calls - before, errors: m.report.counters.errors },
        });
      } finally {
        await lg?.close();
        for (const s of servers) await s.stop();
      }
    }
  } finally {
    receiver.stop(true);
  }
  const [off, on] = rows;
  const extra = (on?.cpu ?? NaN) - (off?.cpu ?? NaN);
  return {
    scenario: "moderation",
    title: "moderation hook: cost per message with a local receiver",
    params: { connections: users.length, window, seconds: ctx.opts.seconds },
    rows,
    ratios: ratiosOf(rows),
    targets: [target("server CPU added per moderated message (µs)", "none (reported)", extra, undefined, 1)],
    notes: ["the receiver runs in the bench process on the same machine (its CPU is not the server's); each send waits for its answer before the commit"],
    seconds: (performance.now() - t0) / 1000,
  };
}
