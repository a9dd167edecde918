// longpoll: the livepush protocol's long polls (docs/livepush.md) beside the native WebSocket protocol on the
// same server, in the same run. N users hold polls and N other users hold native connections; one publisher
// sends 1:1 messages through the livepush send endpoint at a fixed rate (open loop), alternating a polling and a
// WebSocket recipient, each message stamped with its send time; the clients (bench/scenarios/longpoll-client.ts,
// processes of their own) time each message from that stamp to the poll answer or the WebSocket frame that
// carried it. Then H hosts (default 10,000) arrive polling (a ramp of 2,000/s, as users arrive) and the app
// backend's VIP-purchase push (23, set to "10 random online hosts") is called one after another for a poll period
// (25 s): its cost with H hosts online, net of what the server spends over a poll period without pushes (the
// hosts' own polls and their timeouts). Memory, after a full
// garbage collection each time: the server's RSS growth per poll as the users arrive (with what their arrival
// costs: token checks, profile reads, first reads), and what a held poll itself keeps: the hosts' clients go,
// then come back to the same warmed server (RSS and JS heap growth per held poll), beside a bare Bun.serve
// holding as many requests (bench/scenarios/longpoll-floor.ts): the runtime's floor.
// LONGPOLL_HOLD=<N> adds a scale phase: N polls held against the one server process, from client processes of at
// most 9,000 polls each, each on its own loopback address (127.0.0.2, ...: one address has ~28,000 ports); RSS
// and JS heap per held poll at each quarter, and the server's open-file limit (each held poll is a socket).
import { join } from "node:path";
import { Hist } from "../lib/hist.ts";
import { fmt, fmtMs, target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { cpuSeconds, rssBytes, sleep } from "../lib/machine.ts";
import { freePort } from "../lib/services.ts";
import { readdirSync, readFileSync } from "node:fs";
import { sql, userIds } from "../lib/seed.ts";
import { API_KEY, BUN, ROOT, TOKEN_SECRET, type Server } from "../lib/servers.ts";

interface Client {
  lines: AsyncIterator<string>;
  cmd(c: string): Promise<string>;
  stop(): Promise<void>;
}

async function client(port: number, polls: [string, number], sockets: [string, number], o: { host?: string; offset?: number; ramp?: number } = {}): Promise<Client> {
  const host = o.host ?? "127.0.0.1";
  const cfg = { url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}`, tokenSecret: TOKEN_SECRET, polls, sockets, offset: o.offset, ramp: o.ramp };
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

/** Until the server holds `n` sessions (polling users and WebSocket connections); `atMost`: until it stops growing. */
async function held(port: number, n: number, ctx: Ctx, atMost = false): Promise<number> {
  const end = Date.now() + 180_000;
  let last = -1;
  let still = 0;
  for (;;) {
    const h = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { connections: number };
    ctx.status(`  ${h.connections}/${n} held`);
    if (h.connections >= n) return h.connections;
    still = h.connections === last ? still + 1 : 0;
    last = h.connections;
    if (atMost && still >= 25) return h.connections;
    if (Date.now() > end) throw new Error(`only ${h.connections} of ${n} sessions held`);
    await sleep(200);
  }
}

/** Until the process's CPU use is quiet (under 5% over half a second), at most `maxMs`. */
async function settle(pid: number, maxMs: number): Promise<void> {
  const end = Date.now() + maxMs;
  while (Date.now() < end) {
    const c = cpuSeconds(pid);
    await sleep(500);
    if (cpuSeconds(pid) - c < 0.025) return;
  }
}

/** The server's live JS heap after a full GC (bench/lib/ours.ts writes it to the server's log on SIGUSR1). */
async function heapBytes(srv: Server): Promise<number> {
  process.kill(srv.pid, "SIGUSR1");
  for (let i = 0; i < 40; i++) {
    await sleep(100);
    const lines = readFileSync(srv.log, "utf8").split("\n").filter((l) => l.includes("heap ") && l.includes(" MB"));
    const m = /heap ([\d.]+) MB/.exec(lines[lines.length - 1] ?? "");
    if (m && lines.length > (heapSeen.get(srv.log) ?? 0)) {
      heapSeen.set(srv.log, lines.length);
      return Number(m[1]) * 2 ** 20;
    }
  }
  return NaN;
}
const heapSeen = new Map<string, number>();

/**
 * The runtime's floor: a bare Bun.serve holding `n` requests; its RSS growth per held request, the first time
 * (cold) and when they come again after they ended (warm, as "a held poll keeps" is measured).
 */
async function floor(n: number, ctx: Ctx): Promise<{ cold: number; warm: number }> {
  const port = await freePort();
  const proc = Bun.spawn([BUN, join(ROOT, "bench/scenarios/longpoll-floor.ts")], { cwd: ROOT, env: { ...(process.env as Record<string, string>), PORT: String(port), HOST: "0.0.0.0" }, stdout: "ignore", stderr: "inherit" });
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) break;
      await sleep(100);
    }
    const gc = async () => (proc.kill("SIGUSR2"), sleep(1500));
    await gc();
    const base = rssBytes(proc.pid);
    let c = await client(port, ["lh", n], ["lw", 0], { ramp: 2000 });
    clients.push(c);
    const got = await held(port, n, ctx);
    await gc();
    const cold = (rssBytes(proc.pid) - base) / got;
    await c.stop();
    clients.pop();
    for (let i = 0; i < 100 && ((await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { connections: number }).connections > 0; i++) await sleep(100);
    await gc();
    const gone = rssBytes(proc.pid);
    clients.push((c = await client(port, ["lh", n], ["lw", 0], { ramp: 2000 })));
    const again = await held(port, n, ctx);
    await gc();
    return { cold, warm: (rssBytes(proc.pid) - gone) / again };
  } finally {
    for (const c of clients) await c.stop().catch(() => {});
    proc.kill();
  }
}

export async function longpoll(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const smoke = ctx.opts.smoke;
  const n = ctx.opts.n ?? (smoke ? 20 : 2000);
  const hosts = smoke ? 50 : 10_000;
  const rate = ctx.opts.rate ?? (smoke ? 50 : 1000);
  // The pushes run one after another for one poll period (LIVEPUSH_POLL_SEC, 25 s), and so does the window
  // without pushes they are compared with: each holds one round of the hosts' poll timeouts.
  const cycleMs = smoke ? 500 : 25_000;
  const hold = Number(process.env.LONGPOLL_HOLD ?? 0);
  const settleMs = smoke ? 500 : 30_000;
  const users = [...userIds("lp", n), ...userIds("lw", n), ...userIds("lh", hosts), ...userIds("ls", hold), "lpub", "lvip"];
  ctx.say(`longpoll · ${n} polling users and ${n} WebSocket users, a publisher at ${rate}/s; then ${hosts} hosts polling${hold ? `; then ${hold} polls held` : ""}`);
  const { nodes, db } = await ctx.ours({ name: "longpoll", users, env: { LIVEPUSH_VIP_BUY_HOSTS: "10", LIVEPUSH_POLL_SEC: "25" } });
  const srv = nodes[0]!;
  await sql(db, `update users set role = 'host', sex = 2 where id like 'lh%'`);
  const url = `http://127.0.0.1:${srv.port}`;
  const clients: Client[] = [];
  try {
    await srv.gc();
    const base = srv.rss();
    const polls = await client(srv.port, ["lp", n], ["lw", 0]);
    clients.push(polls);
    await held(srv.port, n, ctx);
    await settle(srv.pid, settleMs);
    await srv.gc();
    const afterPolls = srv.rss();
    const sockets = await client(srv.port, ["lp", 0], ["lw", n]);
    clients.push(sockets);
    await held(srv.port, 2 * n, ctx);
    await settle(srv.pid, settleMs);
    await srv.gc();
    const afterSockets = srv.rss();
    const perPoll = (afterPolls - base) / n;
    const perSocket = (afterSockets - afterPolls) / n;
    ctx.say(`  memory: ${fmt(perPoll)} bytes RSS per held poll (arriving), ${fmt(perSocket)} bytes per WebSocket connection`);

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
    // The sends still in flight (an open loop the server fell behind keeps up to 5,000) are done before the next
    // phase, so its figures are not the tail of this one.
    for (let i = 0; i < 1200 && inflight > 0; i++) await sleep(100);
    const hPoll = Hist.from(rp.hPoll);
    const hWs = Hist.from(rw.hWs);
    const secs = ctx.opts.seconds;
    ctx.say(`  long poll: ${fmt(rp.poll / secs)}/s p50 ${fmtMs(hPoll.pct(0.5))} p99 ${fmtMs(hPoll.pct(0.99))}; WebSocket: ${fmt(rw.ws / secs)}/s p50 ${fmtMs(hWs.pct(0.5))} p99 ${fmtMs(hWs.pct(0.99))}; server CPU ${cpu.toFixed(2)} s`);

    // H hosts arrive polling (a ramp), then the backend's "10 random online hosts" push, one after another.
    await settle(srv.pid, settleMs);
    await srv.gc();
    const beforeHosts = srv.rss();
    let hostPolls = await client(srv.port, ["lh", hosts], ["lw", 0], { ramp: 2000 });
    clients.push(hostPolls);
    await held(srv.port, 2 * n + hosts, ctx);
    await settle(srv.pid, settleMs);
    await srv.gc();
    const perHostPoll = (srv.rss() - beforeHosts) / hosts;
    // What the server spends with the hosts polling and no push, over one poll period.
    const idle0 = srv.cpu();
    const ti = performance.now();
    await sleep(cycleMs);
    const idleRate = (srv.cpu() - idle0) / ((performance.now() - ti) / 1000);
    const pushHist = new Hist();
    const cpuP0 = srv.cpu();
    const tp = performance.now();
    let pushes = 0;
    while (performance.now() - tp < cycleMs || pushes < 5) {
      const s = performance.now();
      const r = await fetch(`${url}/api/livepush/users/lvip/vip`, { method: "POST", headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" }, body: "{}" });
      const told = ((await r.json()) as { told: number }).told;
      if (told !== 10) throw new Error(`the push told ${told} hosts, not 10`);
      pushHist.add(performance.now() - s);
      pushes++;
    }
    // The hosts' answers and their next polls (part of each push's cost) are done within this.
    await sleep(smoke ? 200 : 1000);
    const pushSecs = (performance.now() - tp) / 1000;
    const pushCpu = srv.cpu() - cpuP0;
    const netCpu = Math.max(0, pushCpu - idleRate * pushSecs);
    ctx.say(
      `  ${hosts} hosts polling (${fmt(perHostPoll)} bytes RSS per held poll, arriving); "10 random online hosts" push: p50 ${fmtMs(pushHist.pct(0.5))} p99 ${fmtMs(pushHist.pct(0.99))}, ` +
        `${((netCpu / pushes) * 1000).toFixed(2)} ms server CPU each net of ${(idleRate * 1000).toFixed(0)} ms/s without pushes (${((pushCpu / pushes) * 1000).toFixed(2)} ms gross)`,
    );

    // What a held poll itself keeps: the hosts' clients go (their polls end; the users stay in their grace
    // period), then come back to the warmed server. Not in the smoke: at 50 polls the figures mean nothing, and the
    // full collections they need take seconds.
    const kept: Record<string, number | string> = {};
    if (!smoke) {
      await hostPolls.stop();
      clients.splice(clients.indexOf(hostPolls), 1);
      await held(srv.port, 2 * n + hosts, ctx); // the entries stay (grace)
      await settle(srv.pid, settleMs);
      await srv.gc();
      const rssGone = srv.rss();
      const heapGone = await heapBytes(srv);
      hostPolls = await client(srv.port, ["lh", hosts], ["lw", 0], { ramp: 2000 });
      clients.push(hostPolls);
      await sleep(3000);
      await settle(srv.pid, settleMs);
      await srv.gc();
      const heldRss = (srv.rss() - rssGone) / hosts;
      const heldHeap = ((await heapBytes(srv)) - heapGone) / hosts;
      await hostPolls.stop();
      clients.splice(clients.indexOf(hostPolls), 1);
      const floorRss = await floor(hosts, ctx);
      ctx.say(`  a held poll keeps ${fmt(heldRss)} bytes RSS (${fmt(heldHeap)} bytes of JS heap); a bare Bun.serve holding ${hosts} requests: ${fmt(floorRss.warm)} bytes RSS each (${fmt(floorRss.cold)} the first time)`);
      kept["bytes RSS a held poll keeps"] = Math.round(heldRss);
      kept["bytes JS heap a held poll keeps"] = Math.round(heldHeap);
      kept["bytes RSS per held request, bare Bun.serve (again / first time)"] = `${Math.round(floorRss.warm)} / ${Math.round(floorRss.cold)}`;
    }

    // LONGPOLL_HOLD: N polls against the one server process, from several processes and loopback addresses. Each
    // held poll is one socket of the server: held polls are counted as the server's open files over those it had
    // before (healthz counts users' entries, which outlive a poll by the grace period).
    const scale: Record<string, number | string> = {};
    if (hold) {
      // Everyone else goes, and their entries end (LIVEPUSH_GRACE_SEC, 30 s, after their last poll).
      for (const c of clients.splice(0)) await c.stop().catch(() => {});
      await sleep(33_000);
      await settle(srv.pid, settleMs);
      await srv.gc();
      const r0 = srv.rss();
      const h0 = await heapBytes(srv);
      const f0 = readdirCount(srv.pid);
      const limit = Number(readFileSync(`/proc/${srv.pid}/limits`, "utf8").match(/Max open files\s+(\d+)/)?.[1] ?? 0);
      const per = 9000;
      let got = 0;
      let sent = 0;
      for (let q = 1; q <= 4; q++) {
        const want = Math.round((hold * q) / 4);
        for (; sent < want; sent += Math.min(per, want - sent)) {
          clients.push(await client(srv.port, ["ls", Math.min(per, want - sent)], ["lw", 0], { host: `127.0.0.${1 + clients.length}`, offset: sent, ramp: 3000 }));
        }
        // Until the count stops growing (all held, or the server can open no more sockets).
        let still = 0;
        for (let last = -1; still < 20; await sleep(250)) {
          got = readdirCount(srv.pid) - f0;
          ctx.status(`  ${got}/${want} polls held`);
          still = got === last ? still + 1 : 0;
          last = got;
          if (got >= want) break;
        }
        await settle(srv.pid, settleMs);
        await srv.gc();
        got = readdirCount(srv.pid) - f0;
        const rss = (srv.rss() - r0) / got;
        const heap = ((await heapBytes(srv)) - h0) / got;
        scale[`${got} polls: bytes RSS / JS heap per poll`] = `${Math.round(rss)} / ${Math.round(heap)}`;
        ctx.say(`  ${got} polls held of ${want} (server: ${got + f0} open files, limit ${limit}): ${fmt(rss)} bytes RSS, ${fmt(heap)} bytes JS heap per poll`);
        // The server can open no more sockets (its open-file limit): the most it holds is this.
        if (got < want * 0.97) break;
      }
      scale["polls held at most"] = got;
      scale["server open-file limit"] = limit;
    }

    const rows: Row[] = [
      {
        server: "ours long poll",
        value: rp.poll / secs,
        unit: "deliveries/s",
        p50: hPoll.pct(0.5),
        p99: hPoll.pct(0.99),
        cpu: (cpu / Math.max(1, rp.poll + rw.ws)) * 1e6,
        cpuUnit: "server CPU µs per delivery (both kinds)",
        extra: {
          "bytes RSS per held poll (arriving)": Math.round(perPoll),
          [`bytes RSS per held poll (${hosts} hosts arriving)`]: Math.round(perHostPoll),
          ...kept,
          "poll answers": rp.answers,
          errors: rp.errors + sendErrors,
          ...scale,
        },
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
        cpu: (netCpu / pushes) * 1000,
        cpuUnit: "server CPU ms per push (net of the hosts' polling)",
        extra: { pushes, "pushes/s (one at a time)": Math.round(pushes / pushSecs), "server CPU ms per push, gross": Math.round((pushCpu / pushes) * 10000) / 10 },
      },
    ];
    return {
      scenario: "longpoll",
      title: "Livepush long polls beside native WebSocket; a push to 10 random online hosts",
      params: { pollers: n, sockets: n, rate, hosts, seconds: ctx.opts.seconds, ...(hold ? { hold } : {}) },
      rows,
      ratios: [],
      targets: [target("long-poll p99 vs WebSocket p99 (publish → delivery)", "none (reported)", hPoll.pct(0.99) / hWs.pct(0.99), undefined, 2)],
      notes: [
        "half the messages go to polling users, half to WebSocket users: deliveries/s of each is about rate / 2",
        "a poll's latency includes reading the user's pending messages from Postgres after the wake-up; a WebSocket push carries the message",
        "RSS per held poll (arriving) includes what the arrivals cost (token checks, profile and first reads, the allocator's high-water); 'a held poll keeps' is the growth when the same users poll again on the warmed server",
        "a push's CPU includes its 10 notices' commits and the 10 hosts' answers and next polls; the server's CPU without pushes over as long is subtracted",
      ],
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of clients) await c.stop().catch(() => {});
    await srv.stop();
  }
}

function readdirCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}
