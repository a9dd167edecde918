// `bun run bench [scenario...] [options]`: runs the load tests side by side with their peers and writes
// a table (stdout), JSON and an SVG chart (bench/results/). See bench/README.md.
import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { Ctx, type Options, type Result } from "./lib/harness.ts";
import { load, machine } from "./lib/machine.ts";
import { merge } from "./lib/repeat.ts";
import { svg, table, type Run } from "./lib/report.ts";
import type { ServerKind } from "./lib/servers.ts";
import { cluster } from "./scenarios/cluster.ts";
import { connections } from "./scenarios/connections.ts";
import { direct } from "./scenarios/direct.ts";
import { durable } from "./scenarios/durable.ts";
import { fanout } from "./scenarios/fanout.ts";
import { heartbeat } from "./scenarios/heartbeat.ts";
import { longpoll } from "./scenarios/longpoll.ts";
import { offlinePull } from "./scenarios/offline-pull.ts";
import { socialHttp } from "./scenarios/social-http.ts";
import { moderation } from "./scenarios/moderation.ts";
import { partitionedPull } from "./scenarios/partitioned-pull.ts";

const SCENARIOS: Record<string, (ctx: Ctx) => Promise<Result>> = {
  heartbeat,
  fanout,
  "offline-pull": offlinePull,
  connections,
  cluster,
  durable,
  direct,
  "social-http": socialHttp,
  longpoll,
  moderation,
  "partitioned-pull": partitionedPull,
};

const HELP = `usage: bun run bench [scenario...] [options]
scenarios: ${Object.keys(SCENARIOS).join(", ")} (default: all)
options:
  --smoke           tiny N and a second per window: checks that each scenario completes and reports
  --n N             connections (heartbeat, connections) or room members (fan-out, cluster) or senders (durable, direct, social-http) or polling users (longpoll)
  --seconds S       length of each measured window (default 10; smoke 1)
  --warmup S        warm-up before each window (default 2; smoke 0.5)
  --rate R          open-loop rate (heartbeat: pings/s; fan-out: messages/s; offline-pull: pulls/s)
  --window W        closed-loop messages in flight per sender (durable, direct; fan-out: a fixed window instead of
                    raising it until the server or the generator saturates)
  --store M         offline-pull: messages in the store (default 1,000,000); partitioned-pull: in each of its two stores (default 10,000,000)
  --peers a,b       peers to run beside ours: bun-raw,node-ws,socketio,bun-coalesce (default all; "none" for none;
                    bun-coalesce, the raw Bun.serve coalescing per tick as ours does, only takes part in fan-out)
  --out DIR         where results go (default bench/results)
  --repeat N        runs of each scenario, printed with min / median / max of each ratio (default 1)
  --full            every scenario 3 times (--repeat 3)`;

function parse(argv: string[]): { scenarios: string[]; opts: Options; out: string } {
  const scenarios: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "-h" || a === "--help") {
      console.log(HELP);
      process.exit(0);
    }
    if (a === "--smoke") flags.smoke = "1";
    else if (a === "--full") flags.full = "1";
    else if (a.startsWith("--")) {
      const [k, v] = a.includes("=") ? a.slice(2).split("=", 2) : [a.slice(2), argv[++i]];
      if (v === undefined) throw new Error(`${a} needs a value`);
      flags[k!] = v;
    } else if (a in SCENARIOS) scenarios.push(a);
    else throw new Error(`unknown scenario ${a}\n${HELP}`);
  }
  const smoke = flags.smoke === "1";
  const num = (k: string) => (flags[k] !== undefined ? Number(flags[k]!.replace(/_/g, "")) : undefined);
  const peers = (flags.peers ?? "bun-raw,node-ws,socketio,bun-coalesce").split(",").filter((p) => p && p !== "none") as ServerKind[];
  for (const p of peers) if (!["bun-raw", "node-ws", "socketio", "bun-coalesce"].includes(p)) throw new Error(`unknown peer ${p}`);
  return {
    scenarios: scenarios.length ? scenarios : Object.keys(SCENARIOS),
    opts: {
      smoke,
      n: num("n"),
      seconds: num("seconds") ?? (smoke ? 1 : 10),
      warmup: num("warmup") ?? (smoke ? 0.5 : 2),
      peers,
      store: num("store"),
      rate: num("rate"),
      window: num("window"),
      repeat: num("repeat") ?? (flags.full === "1" ? 3 : 1),
    },
    out: flags.out ?? join(import.meta.dir, "results"),
  };
}

const { scenarios, opts, out } = parse(process.argv.slice(2));
const run: Run = {
  startedAt: new Date().toISOString(),
  command: `bun run bench ${process.argv.slice(2).join(" ")}`.trim(),
  machine: machine(),
  machineAfter: { load: [0, 0, 0] },
  options: { ...opts },
  results: [],
  failures: [],
};
const ctx = new Ctx(opts);
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    ctx.say(`${sig}: stopping`);
    await ctx.close();
    process.exit(130);
  });
}
ctx.say(`bench: ${scenarios.join(", ")} on ${run.machine.nproc} × ${run.machine.cpu}, load ${run.machine.load.join(" ")}, syscall ${run.machine.syscallUs} µs${run.machine.pti ? ` (page-table isolation ${run.machine.pti})` : ""}`);
try {
  for (const s of scenarios) {
    try {
      const runs = [];
      for (let k = 0; k < opts.repeat; k++) runs.push(ctx.collect(await SCENARIOS[s]!(ctx), k));
      run.results.push(merge(runs));
    } catch (e) {
      ctx.say(`${s} failed: ${(e as Error).stack ?? e}`);
      run.failures.push({ scenario: s, error: (e as Error).message ?? String(e) });
    }
  }
} finally {
  await ctx.close();
}
run.machineAfter.load = load();
mkdirSync(out, { recursive: true });
const stamp = run.startedAt.replace(/[:.]/g, "-");
const json = join(out, `${stamp}.json`);
const chart = join(out, `${stamp}.svg`);
writeFileSync(json, JSON.stringify(run, null, 2));
writeFileSync(chart, svg(run));
copyFileSync(json, join(out, "latest.json"));
copyFileSync(chart, join(out, "latest.svg"));
console.log(table(run));
console.log(`\nresults: ${json}\nchart:   ${chart}`);
process.exit(run.failures.length ? 1 : 0);
