// longpoll: the livepush protocol's long polls (docs/livepush.md) beside the native WebSocket protocol on the
// same server, in the same run. N users hold polls and N other users hold native connections; one publisher
// sends 1:1 messages through the livepush send endpoint at a fixed rate (open loop), alternating a polling and a
// WebSocket recipient, each message stamped with its send time; the clients (bench/scenarios/longpoll-client.ts,
// processes of their own) time each message from that stamp to the poll answer or the WebSocket frame that
// carried it. Then H hosts (default 10,000) hold polls and the app backend's VIP-purchase push (23, set to "10
// random online hosts") is called K times: its cost with H hosts online. Memory: the server's RSS after a full
// garbage collection, before and after the polls / connections are held.
import { join } from "node:path";
import { Hist } from "../lib/hist.ts";
import { fmt, fmtMs, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { sleep } from "../lib/machine.ts";
import { sql, userIds } from "../lib/seed.ts";
import { API_KEY, BUN, ROOT, TOKEN_SECRET, type Server } from "../lib/servers.ts";

interface Client {
  lines: AsyncIterator<string>;
  cmd(c: string): Promise<string>;
  stop(): Promise<void>;
}

async function client(srv: Server, polls: [string, number], sockets: [string, number]): Promise<Client> {
  const cfg = { url: `http://127.0.0.1:${srv.port}`, wsUrl: `ws://127.0.0.1:${srv.port}`, tokenSecret: TOKEN_SECRET, polls, sockets };
  const proc = Bun.spawn([BUN, join(ROOT, "bench/scenarios/longpoll-client.ts"), JSON.stringify(cfg)], {
    cwd: ROOT,
    env: { ...(process.env as Record<string, string>), BUN_CONFIG_MAX_HTTP_REQUESTS: "65535" },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const lines = (async function* () {
    let buf = "";
    for await (const chunk of proc.stdout as unknown as AsyncIterable<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        yield buf.slice(0, i);
        buf = buf.slice(i + 1);
      }
    }
  })();
  const next = async () => {
    const r = await lines.next();
    if (r.done) throw new Error("the long-poll client ended");
    return r.value;
  };
  if ((await next()) !== "ready") throw new Error("the long-poll client did not start");
  return {
    lines,
    async cmd(c) {
      proc.stdin.write(`${c}\n`);
      proc.stdin.flush();
      return next();
    },
    async stop() {
      proc.stdin.write("stop\n");
      proc.stdin.flush();
      await Promise.race([proc.exited, sleep(3000)]);
      proc.kill();
    },
  };
}

/** Until the server holds `n` sessions (polling users and WebSocket connections). */
async function held(srv: Server, n: number, ctx: Ctx): Promise<void> {
  const end = Date.now() + 120_000;
  for (;;) {
    const h = (await (await fetch(`http://127.0.0.1:${srv.port}/healthz`)).json()) as { connections: number };
    ctx.status(`  ${h.connections}/${n} held`);
    if (h.connections >= n) return;
    if (Date.now() > end) throw new Error(`only ${h.connections} of ${n} sessions held`);
    await sleep(200);
  }
}

export async function longpoll(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const smoke = ctx.opts.smoke;
  const n = ctx.opts.n ?? (smoke ? 20 : 2000);
  const hosts = smoke ? 50 : 10_000;
  const rate = ctx.opts.rate ?? (smoke ? 50 : 1000);
  const pushes = smoke ? 5 : 50;
  const users = [...userIds("lp", n), ...userIds("lw", n), ...userIds("lh", hosts), "lpub", "lvip"];
  ctx.say(`longpoll · ${n} polling users and ${n} WebSocket users, a publisher at ${rate}/s; then ${hosts} hosts polling`);
  const { nodes, db } = await ctx.ours({ name: "longpoll", users, env: { LIVEPUSH_VIP_BUY_HOSTS: "10", LIVEPUSH_POLL_SEC: "25" } });
  const srv = nodes[0]!;
  await sql(db, `update users set role = 'host', sex = 2 where id like 'lh%'`);
  const url = `http://127.0.0.1:${srv.port}`;
  const clients: Client[] = [];
  try {
    await srv.gc();
    const base = srv.rss();
    const polls = await client(srv, ["lp", n], ["lw", 0]);
    clients.push(polls);
    await held(srv, n, ctx);
    await srv.gc();
    const afterPolls = srv.rss();
    const sockets = await client(srv, ["lp", 0], ["lw", n]);
    clients.push(sockets);
    await held(srv, 2 * n, ctx);
    await srv.gc();
    const afterSockets = srv.rss();
    const perPoll = (afterPolls - base) / n;
    const perSocket = (afterSockets - afterPolls) / n;
    ctx.say(`  memory: ${fmt(perPoll)} bytes per held poll, ${fmt(perSocket)} bytes per WebSocket connection`);

    // The publisher: open loop, alternating a polling and a WebSocket recipient.
    const pubToken = (await (await fetch(`${url}/api/users/lpub/token`, { method: "POST", headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" }, body: "{}" })).json()) as { token: string };
    let k = 0;
    let inflight = 0;
    let sendErrors = 0;
    let publishing = true;
    const publisher = (async () => {
      const tickMs = 10;
      let due = performance.now();
      let owed = 0;
      while (publishing) {
        due += tickMs;
        owed += (rate * tickMs) / 1000;
        const batch = Math.floor(owed);
        owed -= batch;
        for (let i = 0; i < batch && inflight < 5000; i++) {
          const j = k++;
          const to = j % 2 === 0 ? `lp${(j >> 1) % n}` : `lw${(j >> 1) % n}`;
          inflight++;
          const body = `uid=lpub&token=${pubToken.token}&to_uid=${to}&content=bt:${performance.timeOrigin + performance.now()}`;
          fetch(`${url}/app/mailbox/send_message.php`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body })
            .then((r) => r.json() as Promise<{ data: { result: number } }>)
            .then((r) => void (r.data.result !== 1 && sendErrors++))
            .catch(() => void sendErrors++)
            .finally(() => inflight--);
        }
        await sleep(Math.max(0, due - performance.now()));
      }
    })();
    await sleep(ctx.opts.warmup * 1000);
    await Promise.all([polls.cmd("reset"), sockets.cmd("reset")]);
    const cpu0 = srv.cpu();
    await sleep(ctx.opts.seconds * 1000);
    const [rp, rw] = (await Promise.all([polls.cmd("report"), sockets.cmd("report")])).map((l) => JSON.parse(l));
    const cpu = srv.cpu() - cpu0;
    publishing = false;
    await publisher;
    const hPoll = Hist.from(rp.hPoll);
    const hWs = Hist.from(rw.hWs);
    const secs = ctx.opts.seconds;
    ctx.say(`  long poll: ${fmt(rp.poll / secs)}/s p50 ${fmtMs(hPoll.pct(0.5))} p99 ${fmtMs(hPoll.pct(0.99))}; WebSocket: ${fmt(rw.ws / secs)}/s p50 ${fmtMs(hWs.pct(0.5))} p99 ${fmtMs(hWs.pct(0.99))}; server CPU ${cpu.toFixed(2)} s`);

    // 10,000 hosts online (polling), then the backend's "10 random online hosts" push, K times.
    await srv.gc();
    const beforeHosts = srv.rss();
    const hostPolls = await client(srv, ["lh", hosts], ["lw", 0]);
    clients.push(hostPolls);
    await held(srv, 2 * n + hosts, ctx);
    await srv.gc();
    const perHostPoll = (srv.rss() - beforeHosts) / hosts;
    const pushHist = new Hist();
    const cpuP0 = srv.cpu();
    const tp = performance.now();
    for (let i = 0; i < pushes; i++) {
      const s = performance.now();
      const r = await fetch(`${url}/api/livepush/users/lvip/vip`, { method: "POST", headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" }, body: "{}" });
      const told = ((await r.json()) as { told: number }).told;
      if (told !== 10) throw new Error(`the push told ${told} hosts, not 10`);
      pushHist.add(performance.now() - s);
    }
    const pushSecs = (performance.now() - tp) / 1000;
    const pushCpu = srv.cpu() - cpuP0;
    ctx.say(`  ${hosts} hosts polling (${fmt(perHostPoll)} bytes per held poll); "10 random online hosts" push: p50 ${fmtMs(pushHist.pct(0.5))} p99 ${fmtMs(pushHist.pct(0.99))}, ${((pushCpu / pushes) * 1000).toFixed(2)} ms server CPU each`);

    const rows: Row[] = [
      {
        server: "ours long poll",
        value: rp.poll / secs,
        unit: "deliveries/s",
        p50: hPoll.pct(0.5),
        p99: hPoll.pct(0.99),
        cpu: (cpu / Math.max(1, rp.poll + rw.ws)) * 1e6,
        cpuUnit: "server CPU µs per delivery (both kinds)",
        extra: { "bytes per held poll": Math.round(perPoll), [`bytes per held poll (${hosts} hosts)`]: Math.round(perHostPoll), "poll answers": rp.answers, errors: rp.errors + sendErrors },
      },
      {
        server: "ours native WebSocket",
        value: rw.ws / secs,
        unit: "deliveries/s",
        p50: hWs.pct(0.5),
        p99: hWs.pct(0.99),
        extra: { "bytes per connection": Math.round(perSocket), errors: rw.errors },
      },
      {
        server: `ours push to 10 of ${hosts} online hosts`,
        value: pushHist.pct(0.5),
        unit: "ms per push (p50)",
        lowerIsBetter: true,
        p50: pushHist.pct(0.5),
        p99: pushHist.pct(0.99),
        cpu: (pushCpu / pushes) * 1000,
        cpuUnit: "server CPU ms per push",
        extra: { pushes, "pushes/s (one at a time)": Math.round(pushes / pushSecs) },
      },
    ];
    return {
      scenario: "longpoll",
      title: "Livepush long polls beside native WebSocket; a push to 10 random online hosts",
      params: { pollers: n, sockets: n, rate, hosts, pushes, seconds: ctx.opts.seconds },
      rows,
      ratios: [],
      targets: [target("long-poll p99 vs WebSocket p99 (publish → delivery)", "none (reported)", hPoll.pct(0.99) / hWs.pct(0.99), undefined, 2)],
      notes: [
        "half the messages go to polling users, half to WebSocket users: deliveries/s of each is about rate / 2",
        "a poll's latency includes reading the user's pending messages from Postgres after the wake-up; a WebSocket push carries the message",
      ],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of clients) await c.stop().catch(() => {});
    await srv.stop();
  }
}
