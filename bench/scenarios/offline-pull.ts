// offline-pull: a Postgres store of at least 1,000,000 messages over many users (seeded with COPY), each
// user with 100 unread messages in 10 one-to-one chats. A user reconnects and pulls them:
// {"t":"sync","limit":100,"mark":true} (pull and mark delivered, docs/protocol.md). Each user pulls once
// (its queue is then empty): closed loop (C pulls in flight per worker) for pulls per second, open loop
// (new users at a fixed rate) for the latency of the pull itself, request to reply.
import { target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { freshDb, seedInbox, userIds } from "../lib/seed.ts";
import { TOKEN_SECRET, type Server } from "../lib/servers.ts";

export async function offlinePull(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const store = ctx.opts.store ?? (ctx.opts.smoke ? 10_000 : 1_000_000);
  const convsPer = 5;
  const perSide = 10;
  const users = Math.ceil(store / (convsPer * 2 * perSide));
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 20 : 200);
  const concurrency = ctx.opts.n ?? (ctx.opts.smoke ? 2 : 8);
  ctx.say(`offline-pull · ours · ${users} users, ${store} messages`);
  const pg = await ctx.pg();
  const db = await freshDb(pg, "pull");
  const seeded = await seedInbox(db, { users, convsPer, perSide });
  ctx.say(`  seeded ${seeded.messages} messages with COPY in ${seeded.seconds.toFixed(1)} s`);
  const server = (await ctx.ours({ name: "pull", users: [], db })).nodes[0]!;
  try {
    const { closed, open, cpu, dbCpu, genCpu, pullsPerSec, workers } = await pullLoops(ctx, server, userIds("p", users), { concurrency, rate });
    const p99 = open.hist.pct(0.99);
    const row: Row = {
      server: "ours",
      value: pullsPerSec,
      unit: "pulls/s",
      p50: open.hist.pct(0.5),
      p99,
      cpu: (cpu / closed.counters.count) * 1e6,
      cpuUnit: "server CPU µs per pull",
      extra: {
        "msgs per pull": Number((closed.counters.msgs / Math.max(1, closed.counters.count)).toFixed(1)),
        "closed-loop p50 ms": closed.hist.pct(0.5),
        "closed-loop p99 ms": closed.hist.pct(0.99),
        "db CPU µs per pull": Math.round((dbCpu / closed.counters.count) * 1e6),
        "generator CPU µs per pull": Math.round((genCpu / closed.counters.count) * 1e6),
        "connect p50 ms": open.extra!.pct(0.5),
        errors: closed.counters.errors + open.counters.errors,
      },
    };
    return {
      scenario: "offline-pull",
      title: "Offline pull of 100 unread messages",
      params: { storedMessages: seeded.messages, users, unreadPerUser: convsPer * 2 * perSide, closedConcurrency: concurrency * workers, openLoopRate: rate, seedSeconds: Number(seeded.seconds.toFixed(1)) },
      rows: [row],
      ratios: [],
      targets: [
        target("offline pull p99 (100 msgs, open loop)", `≤ 5 ms with ≥ 1,000,000 stored`, p99, p99 <= 5 && seeded.messages >= 1_000_000, 2, seeded.messages < 1_000_000 ? "store below 1,000,000 messages" : undefined),
        target("offline pulls per second (100 msgs, closed loop)", "≥ 1,000 pulls/s", pullsPerSec, pullsPerSec >= 1000, 0),
      ],
      notes: ["no peer: the peers store nothing"],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await server.stop();
  }
}

/**
 * The pull loops on a seeded server: half the users pull in a closed loop (`concurrency` in flight per worker)
 * for pulls per second, with the server's and Postgres's CPU over it; the other half arrive at `rate` per second
 * (open loop) for the pull's latency. Each user pulls once.
 */
export async function pullLoops(ctx: Ctx, server: Server, ids: string[], o: { concurrency: number; rate: number }) {
  const half = Math.floor(ids.length / 2);
  const lg = await LoadGen.start(0, 2);
  try {
    const bound = (ctx.opts.seconds + ctx.opts.warmup) * 1000;
    const job = (list: string[], mode: "closed" | "open") => (i: number) => {
      const per = Math.ceil(list.length / lg.workers.length);
      return {
        op: "pull" as const,
        hosts: ["127.0.0.1"],
        port: server.port,
        users: list.slice(i * per, (i + 1) * per),
        mode,
        concurrency: o.concurrency,
        rate: o.rate / lg.workers.length,
        limit: 100,
        durationMs: bound,
      };
    };
    const closedJob = job(ids.slice(0, half), "closed");
    const openJob = job(ids.slice(half), "open");
    // Each worker's users get their tokens before any window: a client's credential is not part of what is measured.
    await lg.all((i) => ({ op: "tokens", users: [...closedJob(i).users, ...openJob(i).users], tokenSecret: TOKEN_SECRET }), "tokened");
    ctx.status("  closed loop", true);
    const c0 = server.cpu();
    await ctx.pgStatements("pull closed loop", "start");
    const d0 = await ctx.dbCpu();
    const g0 = lg.cpu();
    const closed = await lg.pull(closedJob);
    const cpu = server.cpu() - c0;
    const dbCpu = (await ctx.dbCpu()) - d0;
    const genCpu = lg.cpu() - g0;
    await ctx.pgStatements("pull closed loop", "end");
    const pullsPerSec = closed.counters.count / closed.seconds;
    ctx.say(`  closed loop: ${closed.counters.count} pulls in ${closed.seconds.toFixed(1)} s = ${pullsPerSec.toFixed(0)}/s, p50 ${closed.hist.pct(0.5).toFixed(2)} ms p99 ${closed.hist.pct(0.99).toFixed(2)} ms, ${closed.counters.errors} errors`);
    ctx.status("  open loop", true);
    const open = await lg.pull(openJob);
    ctx.say(`  open loop at ${o.rate}/s: ${open.counters.count} pulls, p50 ${open.hist.pct(0.5).toFixed(2)} ms p99 ${open.hist.pct(0.99).toFixed(2)} ms, ${open.counters.errors} errors`);
    return { closed, open, cpu, dbCpu, genCpu, pullsPerSec, workers: lg.workers.length };
  } finally {
    await lg.close();
  }
}
