// The long-poll scenario's client process (bench/scenarios/longpoll.ts): holds a poll per user on the livepush
// protocol (`/app/im/user_conn.php`, polling again as soon as an answer comes) and, beside them, native WebSocket
// connections; counts the messages each kind receives and their latency from the publisher's stamp
// (`bt:<wall-clock ms>` in the content). Runs in its own process with Bun's limit of simultaneous HTTP requests
// raised (BUN_CONFIG_MAX_HTTP_REQUESTS), each poll one request in flight.
// stdin commands (one per line): "reset" (start counting), "report" (print the counts as one JSON line), "stop".
// stdout: "ready" once every poll was sent and every WebSocket greeted, then the reports.
import { TokenService } from "../../src/core/tokens.ts";
import { Hist } from "../lib/hist.ts";

interface Config {
  url: string;
  wsUrl: string;
  tokenSecret: string;
  /** users `<prefix><i>` for i < count (user lists of 10,000 would not fit one argument) */
  polls: [string, number];
  sockets: [string, number];
  /** the first poller's index (users `<prefix><offset>` on): several client processes share one user range */
  offset?: number;
  /** polls started per second (a ramp, as users arrive); all at once without */
  ramp?: number;
}

const cfg = JSON.parse(process.argv[2]!) as Config;
const ids = ([p, n]: [string, number], from = 0) => Array.from({ length: n }, (_, i) => `${p}${from + i}`);
const tokens = new TokenService(cfg.tokenSecret);
const now = () => performance.timeOrigin + performance.now();
const counts = { poll: 0, ws: 0, errors: 0, answers: 0 };
const hists = { poll: new Hist(), ws: new Hist() };
let stopped = false;

function took(kind: "poll" | "ws", content: string): void {
  const m = /bt:(\d+(?:\.\d+)?)/.exec(content);
  if (!m) return;
  counts[kind]++;
  hists[kind].add(now() - Number(m[1]));
}

async function poller(user: string, token: string): Promise<void> {
  const url = `${cfg.url}/app/im/user_conn.php?uid=${user}&token=${token}`;
  while (!stopped) {
    try {
      const r = (await (await fetch(url)).json()) as { data: { result: number; msgs: { content: string }[] } };
      counts.answers++;
      for (const m of r.data.msgs) took("poll", m.content);
    } catch {
      counts.errors++;
      await Bun.sleep(100);
    }
  }
}

async function socket(user: string, token: string): Promise<void> {
  const ws = new WebSocket(`${cfg.wsUrl}/ws?token=${token}`);
  await new Promise<void>((resolve, reject) => {
    ws.onmessage = (e) => {
      const s = String(e.data);
      if (s.includes('"t":"welcome"')) return resolve();
      if (s.includes('"t":"msg"')) {
        took("ws", s);
        // The native protocol acknowledges what it took.
        const m = /"conv":"([^"]+)","seq":(\d+)/.exec(s);
        if (m) ws.send(`{"t":"delivered","conv":"${m[1]}","seq":${m[2]}}`);
      }
    };
    ws.onerror = () => reject(new Error(`ws ${user}`));
  });
}

const tok = async (u: string) => (await tokens.issue(u, 3600)).token;
await Promise.all(ids(cfg.sockets).map(async (u) => socket(u, await tok(u))));
const pollers = ids(cfg.polls, cfg.offset);
if (!cfg.ramp) for (const u of pollers) void tok(u).then((t) => poller(u, t));
else {
  // One batch every 50 ms, so the arrivals' work (and their poll timeouts later) spread like real users'.
  const batch = Math.max(1, Math.round(cfg.ramp / 20));
  for (let i = 0; i < pollers.length; i += batch) {
    for (const u of pollers.slice(i, i + batch)) void tok(u).then((t) => poller(u, t));
    await Bun.sleep(50);
  }
}
console.log("ready");

for await (const line of console) {
  const cmd = line.trim();
  if (cmd === "reset") {
    counts.poll = counts.ws = counts.errors = counts.answers = 0;
    hists.poll.reset();
    hists.ws.reset();
    console.log("ok");
  } else if (cmd === "report") {
    console.log(JSON.stringify({ ...counts, poll: counts.poll, ws: counts.ws, hPoll: hists.poll.toJSON(), hWs: hists.ws.toJSON() }));
  } else if (cmd === "stop") {
    stopped = true;
    process.exit(0);
  }
}
