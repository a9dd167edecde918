// social-http: 1:1 sends over the social API (HTTP POST message/sendMessage, form body, Bearer token,
// keep-alive connections), acknowledged after commit like every send; beside the same load over the native
// WebSocket protocol in the same run, and a raw Bun.serve HTTP server (read the body, answer JSON) as the
// runtime's HTTP limit. Closed loop (each client one request in flight, next on its answer) for sends/s, open
// loop (a fixed rate, never held back) for p50/p99 of the acknowledged send.
import { Hist } from "../lib/hist.ts";
import { ratiosOf, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { userIds } from "../lib/seed.ts";
import { TOKEN_SECRET, type Server } from "../lib/servers.ts";
import { TokenService } from "../../src/core/tokens.ts";

const PATH = "/anlife/v1.0/chat/message/sendMessage";
const now = () => performance.timeOrigin + performance.now();

interface HttpWindow {
  rate: number;
  hist: Hist;
  errors: number;
  lastError?: string;
  cpu: number;
  gen: number;
  count: number;
}

/** The requests of `users`: each sends to its pair, with its own token. */
function requests(users: string[], tokens: Map<string, string>) {
  const message = encodeURIComponent(JSON.stringify({ msg_type: 1, body: { text: "x".repeat(40) } }));
  return users.map((u, i) => ({
    body: `uid=${u}&to_uid=${users[i ^ 1]}&message=${message}`,
    headers: { authorization: `Bearer ${tokens.get(u) ?? "x"}`, "content-type": "application/x-www-form-urlencoded" },
  }));
}

/**
 * One HTTP window against `server`: warm-up, then `seconds` measured. Closed loop: `clients` loops, each with one
 * request in flight; open loop: `rate` requests/s spread over 5 ms ticks. An answer counts when it carries `datas`.
 */
async function httpWindow(
  ctx: Ctx,
  server: Server,
  reqs: ReturnType<typeof requests>,
  o: { label: string; mode: "closed" | "open"; rate: number },
): Promise<HttpWindow> {
  const url = `http://127.0.0.1:${server.port}${PATH}`;
  let measuring = false;
  let stop = false;
  const hist = new Hist();
  let count = 0;
  let errors = 0;
  let lastError: string | undefined;
  let inflight = 0;
  const one = async (i: number, t0: number) => {
    const r = reqs[i % reqs.length]!;
    inflight++;
    try {
      const res = await fetch(url, { method: "POST", headers: r.headers, body: r.body });
      const text = await res.text();
      if (!measuring) return;
      if (text.startsWith('{"datas"')) {
        count++;
        hist.add(now() - t0);
      } else {
        errors++;
        lastError ??= `${res.status} ${text.slice(0, 200)}`;
      }
    } catch (e) {
      if (measuring) {
        errors++;
        lastError ??= String(e);
      }
    } finally {
      inflight--;
    }
  };
  const loops: Promise<void>[] = [];
  if (o.mode === "closed") {
    const client = async (i: number) => {
      while (!stop) await one(i, now());
    };
    for (let i = 0; i < reqs.length; i++) loops.push(client(i));
  } else {
    const pacer = async () => {
      let sent = 0;
      const start = now();
      while (!stop) {
        const due = Math.floor(((now() - start) / 1000) * o.rate);
        // Open loop: never held back by answers (bounded only against a server that stopped answering).
        for (; sent < due && inflight < 20_000; sent++) void one(sent, now());
        await sleep(5);
      }
    };
    loops.push(pacer());
  }
  await sleep(ctx.opts.warmup * 1000);
  const cpu0 = server.cpu();
  const g0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await sleep(ctx.opts.seconds * 1000);
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = server.cpu() - cpu0;
  const g = process.cpuUsage(g0);
  stop = true;
  await Promise.all(loops);
  const gen = (g.user + g.system) / 1e6 / seconds;
  const rate = count / seconds;
  ctx.say(
    `  ${o.label}: ${rate.toFixed(0)}/s  p50 ${hist.pct(0.5).toFixed(2)} ms  p99 ${hist.pct(0.99).toFixed(2)} ms  server CPU ${cpu.toFixed(2)} s  generator ${(gen * 100).toFixed(0)}%` +
      (errors ? `  (errors ${errors}: ${lastError})` : ""),
  );
  return { rate, hist, errors, lastError, cpu, gen, count };
}

export async function socialHttp(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 4 : 64);
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 100 : 1000);
  const httpUsers = userIds("h", n - (n % 2));
  const wsUsers = userIds("w", n - (n % 2));
  const tokens = new TokenService(TOKEN_SECRET, 30 * 86400);
  const tok = new Map<string, string>();
  for (const u of httpUsers) tok.set(u, (await tokens.issue(u, 86400)).token);
  const reqs = requests(httpUsers, tok);
  const rows: Row[] = [];

  ctx.say(`social-http · ours · ${httpUsers.length} keep-alive HTTP clients and ${wsUsers.length} native connections sending 1:1`);
  const { nodes } = await ctx.ours({ name: "socialhttp", users: [...httpUsers, ...wsUsers] });
  const server = nodes[0]!;
  try {
    const closed = await httpWindow(ctx, server, reqs, { label: "social HTTP closed loop", mode: "closed", rate });
    const open = await httpWindow(ctx, server, reqs, { label: `social HTTP open loop at ${rate}/s`, mode: "open", rate });
    rows.push({
      server: "ours social HTTP",
      group: "http",
      value: closed.rate,
      unit: "acked sends/s",
      p50: open.hist.pct(0.5),
      p99: open.hist.pct(0.99),
      cpu: (closed.cpu / Math.max(1, closed.count)) * 1e6,
      cpuUnit: "server CPU µs per send",
      extra: { clients: httpUsers.length, "open-loop achieved/s": Math.round(open.rate), "generator CPU %": Math.round(closed.gen * 100), errors: closed.errors + open.errors },
    });

    // The same 1:1 load over the native protocol, in the same run and on the same server.
    const peers = Object.fromEntries(wsUsers.map((u, i) => [u, wsUsers[i ^ 1]!]));
    const lg = await LoadGen.start(wsUsers.length, 1);
    try {
      await lg.open({ proto: "native", ports: [server.port], path: "/ws", users: wsUsers, tokenSecret: TOKEN_SECRET }, (k) => ctx.status(`  opening ${k}/${wsUsers.length}`));
      await lg.all({ op: "durable", mode: "closed", peers, window: 1, rate: 0, bodyChars: 40 }, "started");
      const wc = await ctx.window(lg, [server], "native closed loop (1 in flight per connection)", { db: true });
      await lg.all({ op: "stop" }, "stopped");
      await sleep(500);
      await lg.all({ op: "durable", mode: "open", peers, window: 1, rate: rate / lg.workers.length, bodyChars: 40 }, "started");
      const wo = await ctx.window(lg, [server], `native open loop at ${rate}/s`, { db: true });
      await lg.all({ op: "stop" }, "stopped");
      rows.push({
        server: "ours native WebSocket",
        group: "native",
        value: wc.rate,
        unit: "acked sends/s",
        p50: wo.report.hist.pct(0.5),
        p99: wo.report.hist.pct(0.99),
        cpu: (wc.cpu / Math.max(1, wc.report.counters.count)) * 1e6,
        cpuUnit: "server CPU µs per send",
        extra: { connections: wsUsers.length, "open-loop achieved/s": Math.round(wo.rate), errors: wc.report.counters.errors + wo.report.counters.errors },
      });
    } finally {
      await lg.close();
    }
  } finally {
    await server.stop();
  }

  // The runtime's HTTP limit: the same requests to a raw Bun.serve that reads the body and answers JSON
  // (skipped with `--peers none`).
  const raw = ctx.opts.peers.length ? await ctx.peer("bun-http") : undefined;
  if (raw) {
    ctx.say("social-http · Bun.serve raw HTTP");
    try {
      const closed = await httpWindow(ctx, raw, reqs, { label: "raw HTTP closed loop", mode: "closed", rate });
      const open = await httpWindow(ctx, raw, reqs, { label: `raw HTTP open loop at ${rate}/s`, mode: "open", rate });
      rows.push({
        server: "Bun.serve raw HTTP",
        group: "http",
        value: closed.rate,
        unit: "answers/s",
        p50: open.hist.pct(0.5),
        p99: open.hist.pct(0.99),
        cpu: (closed.cpu / Math.max(1, closed.count)) * 1e6,
        cpuUnit: "server CPU µs per answer",
        extra: { clients: httpUsers.length, "open-loop achieved/s": Math.round(open.rate), "generator CPU %": Math.round(closed.gen * 100) },
      });
    } finally {
      await raw.stop();
    }
  }

  const ratios = ratiosOf(rows);
  const http = rows.find((r) => r.server === "ours social HTTP")!;
  const native = rows.find((r) => r.server === "ours native WebSocket");
  const vsRaw = ratios.find((r) => r.ours === "ours social HTTP")?.ratio ?? NaN;
  return {
    scenario: "social-http",
    title: "Social API sends over HTTP beside native sends",
    params: { clients: httpUsers.length, connections: wsUsers.length, openLoopRate: rate, seconds: ctx.opts.seconds },
    rows,
    ratios,
    targets: [
      target("social HTTP sends vs raw Bun.serve HTTP answers", "none (reported)", vsRaw, undefined, 2),
      target("social HTTP sends vs native sends (1 in flight each)", "none (reported)", native ? http.value / native.value : NaN, undefined, 2),
    ],
    notes: [
      "each HTTP client keeps one request in flight on a keep-alive connection; the generator runs in the bench process",
      "an HTTP send is authenticated (JWT), rate-charged, decoded and committed (fsync on) before its answer; the raw peer only reads the body",
    ],
    seconds: (performance.now() - t0) / 1000,
  };
}
