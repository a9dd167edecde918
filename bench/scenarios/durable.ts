// durable: 1:1 sends acknowledged only after their commit, through the group-commit writer (Postgres,
// fsync on). Pairs of users send to each other: closed loop (W sends in flight per connection) for
// acknowledged sends per second, open loop for the ack latency. Then the rows the run stored are loaded
// again with a raw COPY into an empty copy of the messages table (same indexes): the floor the writer
// is measured against.
import { target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { LoadGen } from "../lib/loadgen.ts";
import { sleep } from "../lib/machine.ts";
import { copyRows, sql, userIds } from "../lib/seed.ts";
import { TOKEN_SECRET, type Server } from "../lib/servers.ts";

async function writerMetrics(s: Server): Promise<{ rows: number; batches: number; seconds: number }> {
  const text = await (await fetch(`http://127.0.0.1:${s.port}/metrics`)).text();
  const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, "m").exec(text)?.[1] ?? NaN);
  return { rows: v("chat_writer_rows_total"), batches: v("chat_writer_batches_total"), seconds: v("chat_writer_batch_seconds_total") };
}

export async function durable(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const n = ctx.opts.n ?? (ctx.opts.smoke ? 10 : 200);
  // Requests in flight per connection: fixed with --window, else raised until something saturates (Ctx.sizeWindow).
  let window = ctx.opts.window ?? 2;
  const rate = ctx.opts.rate ?? (ctx.opts.smoke ? 200 : 2000);
  const users = userIds("d", n - (n % 2));
  const peers = Object.fromEntries(users.map((u, i) => [u, users[i ^ 1]!]));
  ctx.say(`durable · ours · ${users.length} connections sending 1:1, ${ctx.opts.window ? `${window} in flight each` : "window raised until something saturates"}`);
  const { nodes, db } = await ctx.ours({ name: "durable", users });
  const server = nodes[0]!;
  const lg = await LoadGen.start(users.length, 2);
  try {
    await lg.open({ proto: "native", ports: [server.port], path: "/ws", users, tokenSecret: TOKEN_SECRET }, (k) => ctx.status(`  opening ${k}/${users.length}`));
    await lg.all((i) => ({ op: "durable", mode: "closed", peers, window, rate: 0, bodyChars: 40 }), "started");
    let saturated = "fixed window (--window)";
    if (ctx.opts.window === undefined)
      ({ window, saturated } = await ctx.sizeWindow(lg, [server], "durable", { db: true }, { start: window, ceiling: 256, set: (w) => lg.all({ op: "durableWindow", window: w }, "started").then(() => {}) }));
    const m0 = await writerMetrics(server);
    const closed = await ctx.window(lg, [server], "closed loop", { db: true });
    const m1 = await writerMetrics(server);
    await lg.all({ op: "stop" }, "stopped");
    await sleep(1000);
    await lg.all((i) => ({ op: "durable", mode: "open", peers, window, rate: rate / lg.workers.length, bodyChars: 40 }), "started");
    const open = await ctx.window(lg, [server], `open loop at ${rate}/s`, { db: true });
    await lg.all({ op: "stop" }, "stopped");
    await sleep(1000);

    // The same rows again, with COPY into an empty table of the same shape and indexes.
    ctx.status("  raw COPY of the stored rows", true);
    const cols = ["id", "conv_id", "seq", "sender_id", "kind", "body", "client_msg_id", "created_at"];
    await sql(db, "create table messages_copy (like messages including all)");
    const esc = (v: unknown) => (v === null ? "\\N" : String(v).replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n"));
    const stored = await sql<Record<string, unknown>>(db, `select id::text, conv_id, seq, sender_id, kind, body::text, client_msg_id, created_at::text from messages`);
    const lines = stored.map((r) => cols.map((c) => esc(r[c])).join("\t"));
    const tc = performance.now();
    await copyRows(db, "messages_copy", cols, lines);
    const copySec = (performance.now() - tc) / 1000;
    const copyRate = stored.length / copySec;
    ctx.say(`  raw COPY: ${stored.length} rows in ${copySec.toFixed(2)} s = ${copyRate.toFixed(0)} rows/s`);

    const batches = m1.batches - m0.batches;
    const rowsW = m1.rows - m0.rows;
    const rowsOut: Row[] = [
      {
        server: "ours group-commit writer",
        value: closed.rate,
        unit: "acked sends/s",
        p50: open.report.hist.pct(0.5),
        p99: open.report.hist.pct(0.99),
        cpu: (closed.cpu / closed.report.counters.count) * 1e6,
        cpuUnit: "server CPU µs per send",
        extra: {
          window,
          "rows per batch": Number((rowsW / Math.max(1, batches)).toFixed(1)),
          "ms per batch": Number((((m1.seconds - m0.seconds) / Math.max(1, batches)) * 1000).toFixed(1)),
          "db CPU µs per send": Math.round((closed.db / closed.report.counters.count) * 1e6),
          "closed-loop p50 ms": closed.report.hist.pct(0.5),
          "closed-loop p99 ms": closed.report.hist.pct(0.99),
          "pushes/s": Math.round(closed.report.counters.msgs / closed.report.seconds),
          "server CPU s": Number(closed.cpu.toFixed(2)),
          "db CPU s": Number(closed.db.toFixed(2)),
          "generator CPU s": Number(closed.genCpu.toFixed(2)),
          errors: closed.report.counters.errors + open.report.counters.errors,
        },
      },
      { server: "raw COPY (same rows)", value: copyRate, unit: "rows/s", extra: { rows: stored.length } },
    ];
    const ratio = closed.rate / copyRate;
    return {
      scenario: "durable",
      title: "Durable 1:1 sends through the group-commit writer",
      params: { connections: users.length, window: ctx.opts.window ?? "raised to saturation (≤ 256)", openLoopRate: rate, seconds: ctx.opts.seconds },
      rows: rowsOut,
      ratios: [{ ours: "ours group-commit writer", peer: "raw COPY (same rows)", ratio }],
      targets: [target("durable sends vs raw COPY of the same rows", "≥ 0.5×", ratio, ratio >= 0.5, 2)],
      notes: [
        "a send is acknowledged after its batch committed (fsync on); the COPY is one transaction of all rows, no acks",
        `closed loop at ${window} in flight per connection; ${ctx.opts.window === undefined ? "window not raised further: " : ""}${saturated}`,
      ],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await lg.close();
    await server.stop();
  }
}
