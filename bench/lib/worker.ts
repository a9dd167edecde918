// One load-generator process (bench/lib/loadgen.ts starts several: each holds fewer than 19,000
// sockets under the 20,000 open-file limit). Bun's built-in WebSocket client, text frames only. It is
// driven over IPC by the orchestrator, one command at a time, and keeps its connections between them.
//
// Timestamps are `performance.timeOrigin + performance.now()`: the machine's wall clock read with
// microsecond resolution, the same clock in every process, so a message stamped by a sender in one
// worker can be timed at a receiver in another.
//
// Deliveries are counted by the marker `"bt":` (the send time every published body carries) in each
// frame received, without parsing: the same cheap work for every server, whether it sends one frame per
// message (the peers) or coalesces many messages into one frame (our room ticks). Sampled connections
// also read the number after each marker to time it. Every frame a member receives is counted with its
// payload's length (frames/s and bytes/s: what each server puts on the wire for the same deliveries), and
// every message a sender publishes (an open loop's offered load, to tell a server that keeps up from one
// whose backlog grows).
import { TokenService } from "../../src/core/tokens.ts";
import { Hist } from "./hist.ts";
import type { Cmd, Counters, Proto } from "./loadgen.ts";

const now = () => performance.timeOrigin + performance.now();
const send = (m: unknown) => process.send!(m);

interface Conn {
  ws: WebSocket;
  i: number;
  /** the connection's number over all the generator's processes (its server: ports[g % ports.length]) */
  g: number;
  ready: boolean;
  sampled: boolean;
  /** send times of requests awaiting their replies, oldest first */
  fifo: number[];
  /** sender state (fan-out) */
  tag?: string;
  tagRe?: string;
  inflight: number;
  /** messages sent, and the highest of their numbers seen back */
  sent: number;
  seen: number;
  got: number;
  progressAt: number;
  /** gaps already reported */
  gapsAt?: number;
  /** durable sends: id → send time */
  pending?: Map<number, number>;
  nextId: number;
  /** the user this connection signed in as (native protocol) */
  user?: string;
  peer?: string;
}

let proto: Proto = "native";
let conns: Conn[] = [];
let mode: "idle" | "hb-closed" | "hb-open" | "fan" | "durable" = "idle";
let c = fresh();
let hist = new Hist();
let timers: ReturnType<typeof setInterval>[] = [];
let fan: Extract<Cmd, { op: "fan" }> | undefined;
let durableBody = "";
let durableClosed = true;
/** closed-loop durable sends: requests in flight per connection */
let durableWindow = 1;

function fresh(): Counters {
  return { count: 0, lost: 0, errors: 0, resyncs: 0, closed: 0, msgs: 0, frames: 0, bytes: 0, sent: 0, startedAt: now() };
}

const hbFrame = () => (proto === "sio" ? '42["hb",1]' : '{"t":"ping","id":1}');

function countMarks(s: string, mark: string): number {
  let n = 0;
  let i = s.indexOf(mark);
  while (i !== -1) {
    n++;
    i = s.indexOf(mark, i + mark.length);
  }
  return n;
}

function onFrame(cn: Conn, data: unknown): void {
  if (typeof data !== "string") return;
  if (proto === "sio" && data.length === 1) {
    if (data === "2") cn.ws.send("3"); // Engine.IO heartbeat
    return;
  }
  switch (mode) {
    case "hb-closed": {
      const t = cn.fifo.shift();
      if (t === undefined) return;
      const at = now();
      hist.add(at - t);
      c.count++;
      cn.fifo.push(at);
      cn.ws.send(hbFrame());
      return;
    }
    case "hb-open": {
      const t = cn.fifo.shift();
      if (t === undefined) return;
      hist.add(now() - t);
      c.count++;
      return;
    }
    case "fan": {
      c.frames++;
      c.bytes += data.length;
      if (data.charCodeAt(0) === 123 /* { */ && data.startsWith('{"t":"')) {
        if (data.startsWith('{"t":"resync"')) c.resyncs++;
        else if (data.startsWith('{"t":"error"')) {
          c.errors++;
          c.lastError ??= data.slice(0, 300);
          if (cn.tag && cn.inflight > 0) cn.inflight--;
        }
      }
      let i = data.indexOf('"bt":');
      if (i === -1) return;
      const at = cn.sampled ? now() : 0;
      while (i !== -1) {
        c.count++;
        if (cn.sampled) hist.add(at - parseFloat(data.slice(i + 5, i + 30)));
        i = data.indexOf('"bt":', i + 5);
      }
      if (cn.tag && fan?.mode === "closed") {
        // Each sender numbers its messages and they come back in order: everything up to the highest
        // number seen has landed or was dropped (a coalescer over its per-tick cap drops danmaku).
        const j = data.lastIndexOf(cn.tagRe!);
        if (j !== -1) {
          cn.got += countMarks(data, cn.tagRe!);
          const seen = parseInt(data.slice(j + cn.tagRe!.length, j + cn.tagRe!.length + 12));
          if (seen > cn.seen) {
            cn.seen = seen;
            cn.inflight = cn.sent - seen;
            cn.progressAt = now();
            topUp(cn);
          }
        }
      }
      return;
    }
    case "durable": {
      if (data.startsWith('{"t":"ack"')) {
        const at = data.indexOf('"id":') + 5;
        const id = Number(data.slice(at, data.indexOf(",", at)));
        const t = cn.pending!.get(id);
        if (t !== undefined) {
          cn.pending!.delete(id);
          hist.add(now() - t);
          c.count++;
        }
        if (durableClosed) topUpDurable(cn);
      } else if (data.startsWith('{"t":"msg"')) c.msgs++;
      else if (data.startsWith('{"t":"error"')) {
        c.errors++;
        c.lastError ??= data.slice(0, 300);
        const id = Number(/"id":(\d+)/.exec(data)?.[1]);
        cn.pending!.delete(id);
        if (durableClosed) topUpDurable(cn);
      }
      return;
    }
  }
}

function pubFrame(cn: Conn, t: number): string {
  c.sent++;
  const body = `{"bt":${t},"q":"${cn.tag}","n":${++cn.sent}}`;
  if (proto === "native") return `{"t":"room_send","room":"${fan!.room}","class":"${fan!.cls}","kind":"bench","body":${body}}`;
  if (proto === "sio") return `42["pub",${body}]`;
  return body;
}

function topUp(cn: Conn): void {
  while (cn.inflight < fan!.window) {
    cn.inflight++;
    cn.ws.send(pubFrame(cn, now()));
  }
}

/** Closed loop: sends until the connection has the window's count in flight (none while it is over it). */
function topUpDurable(cn: Conn): void {
  while (cn.pending!.size < durableWindow) sendDurable(cn);
}

function sendDurable(cn: Conn): void {
  const id = cn.nextId++;
  cn.pending!.set(id, now());
  cn.ws.send(`{"t":"send","id":${id},"to":"${cn.peer}","kind":"text","body":${durableBody},"cmid":"${process.pid}-${cn.i}-${id}"}`);
}

/** Opens connections `count` at a time, each ready once the server greeted it. */
async function open(cmd: Extract<Cmd, { op: "open" }>): Promise<void> {
  proto = cmd.proto;
  const tokens = cmd.users ? new TokenService(cmd.tokenSecret!) : undefined;
  let ok = 0;
  let failed = 0;
  const errors: string[] = [];
  const progress = setInterval(() => send({ op: "progress", opened: conns.length, ok, failed }), 500);
  const openOne = async (k: number) => {
    const g = cmd.first + k;
    const host = cmd.hosts[Math.floor(g / cmd.perHost) % cmd.hosts.length];
    let url = `ws://${host}:${cmd.ports[g % cmd.ports.length]}${cmd.path}`;
    if (tokens) url += `${url.includes("?") ? "&" : "?"}token=${(await tokens.issue(cmd.users![k]!, 86400)).token}`;
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(url);
      const cn: Conn = { ws, i: conns.length, g, user: cmd.users?.[k], ready: false, sampled: false, fifo: [], inflight: 0, sent: 0, seen: 0, got: 0, progressAt: 0, nextId: 1 };
      const t = setTimeout(() => done("timeout"), 30_000);
      function done(err?: string) {
        clearTimeout(t);
        if (cn.ready) return;
        if (err) {
          failed++;
          if (errors.length < 5) errors.push(err);
          try {
            ws.close();
          } catch {}
          return resolve();
        }
        cn.ready = true;
        cn.i = conns.length;
        conns.push(cn);
        ok++;
        ws.onmessage = (e) => onFrame(cn, e.data);
        resolve();
      }
      ws.onmessage = (e) => {
        const d = String(e.data);
        if (proto === "native" && d.startsWith('{"t":"welcome"')) done();
        else if (proto === "sio" && d.startsWith("0{")) ws.send("40");
        else if (proto === "sio" && d.startsWith("40")) done();
      };
      ws.onopen = () => proto === "raw" && done();
      ws.onerror = () => done("error");
      ws.onclose = (e) => {
        if (!cn.ready) done(`closed ${e.code}`);
        else c.closed++;
      };
    });
  };
  let next = 0;
  const lanes = Array.from({ length: Math.min(cmd.concurrency, cmd.count) }, async () => {
    while (next < cmd.count) await openOne(next++);
  });
  await Promise.all(lanes);
  clearInterval(progress);
  // In the order they were asked for, not the order they got ready in: a scenario's senders are the first
  // connections, so which server each sender is on does not depend on which server greeted first (cluster:
  // connection g goes to server g % n, so a process's first connections alternate between the nodes).
  conns.sort((a, b) => a.g - b.g);
  conns.forEach((cn, i) => (cn.i = i));
  const sample = Math.min(conns.length, cmd.sample ?? 100);
  for (let i = 0; i < conns.length; i++) conns[i]!.sampled = i % Math.ceil(conns.length / Math.max(1, sample)) === 0;
  send({ op: "opened", ok, failed, errors });
}

/** Native protocol: every connection joins the room (replies awaited, `lanes` at a time). */
async function join(room: string, lanes: number): Promise<void> {
  let next = 0;
  let failed = 0;
  const one = (cn: Conn) =>
    new Promise<void>((resolve) => {
      const prev = cn.ws.onmessage;
      const t = setTimeout(() => finish(false), 30_000);
      function finish(ok: boolean) {
        clearTimeout(t);
        if (!ok) failed++;
        cn.ws.onmessage = prev;
        resolve();
      }
      cn.ws.onmessage = (e) => {
        const d = String(e.data);
        if (d.startsWith('{"t":"join_room","id":"j"')) finish(true);
        else if (d.startsWith('{"t":"error","id":"j"')) finish(false);
      };
      cn.ws.send(`{"t":"join_room","id":"j","room":"${room}"}`);
    });
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < conns.length) await one(conns[next++]!);
    }),
  );
  send({ op: "joined", failed });
}

function stopLoops(): void {
  for (const t of timers) clearInterval(t);
  timers = [];
  mode = "idle";
  fan = undefined;
  for (const cn of conns) {
    cn.fifo = [];
    cn.inflight = 0;
    cn.tag = undefined;
  }
}

/**
 * The open loops' timer, in ms: each firing sends what is due by then, so a process's senders' sends come in bursts
 * of about (rate × this) messages. BENCH_OPEN_TIMER_MS=1 halves them (a check of what bursts cost a server).
 */
const OPEN_TIMER_MS = Math.max(1, Number(process.env.BENCH_OPEN_TIMER_MS ?? 2) || 2);

/** Open loop: `perSec` sends per second spread evenly over `who`. */
function schedule(who: Conn[], perSec: number, fire: (cn: Conn, t: number) => void, phase = 0): void {
  if (!who.length || perSec <= 0) return;
  const period = 1000 / perSec;
  // This worker's place among the others (LoadGen.all): its first send `phase` of a period after theirs.
  const t0 = now() + phase * period;
  let k = 0;
  timers.push(
    setInterval(() => {
      const t = now();
      // Far behind (a stall of this process): skip ahead rather than fire a burst, and count the skipped sends as lost.
      const due = Math.floor((t - t0) / period);
      if (due - k > perSec) {
        c.lost += due - k - 1;
        k = due - 1;
      }
      // Each send is stamped when it is made (the timer's 2 ms granularity is not charged to the
      // server); sends are never held back by replies, so a slow server cannot slow the offered load.
      while (t0 + k * period <= t) {
        fire(who[k % who.length]!, now());
        k++;
      }
    }, OPEN_TIMER_MS),
  );
}

/** Tokens issued ahead of the pulls (op "tokens", this worker's users only): a client's credential is not part of what a pull measures. */
const issued = new Map<string, string>();

async function issueTokens(cmd: Extract<Cmd, { op: "tokens" }>): Promise<void> {
  const tokens = new TokenService(cmd.tokenSecret);
  for (const u of cmd.users) issued.set(u, (await tokens.issue(u, 3600)).token);
  send({ op: "tokened" });
}

async function pull(cmd: Extract<Cmd, { op: "pull" }>): Promise<void> {
  c = fresh();
  hist = new Hist();
  const connectHist = new Hist();
  const deadline = now() + cmd.durationMs;
  let next = 0;
  const one = async (user: string, k: number) => {
    const token = issued.get(user);
    if (token === undefined) throw new Error(`no token issued for ${user} (op "tokens" comes first)`);
    const url = `ws://${cmd.hosts[k % cmd.hosts.length]}:${cmd.port}/ws?token=${token}`;
    const t0 = now();
    await new Promise<void>((resolve) => {
      const ws = new WebSocket(url);
      let sentAt = 0;
      const t = setTimeout(() => finish("timeout"), 30_000);
      function finish(err?: string) {
        clearTimeout(t);
        if (err) c.errors++;
        ws.close();
        resolve();
      }
      ws.onmessage = (e) => {
        const d = String(e.data);
        if (d.startsWith('{"t":"welcome"')) {
          connectHist.add(now() - t0);
          sentAt = now();
          ws.send(`{"t":"sync","id":1,"limit":${cmd.limit},"mark":true}`);
        } else if (d.startsWith('{"t":"sync"')) {
          hist.add(now() - sentAt);
          c.count++;
          c.msgs += (JSON.parse(d).msgs as unknown[]).length;
          finish();
        } else if (d.startsWith('{"t":"error"')) finish("error");
      };
      ws.onerror = () => finish("error");
    });
  };
  if (cmd.mode === "closed") {
    await Promise.all(
      Array.from({ length: cmd.concurrency }, async () => {
        while (next < cmd.users.length && now() < deadline) {
          const k = next++;
          await one(cmd.users[k]!, k);
        }
      }),
    );
  } else {
    const running: Promise<void>[] = [];
    const period = 1000 / cmd.rate;
    const t0 = now() + (cmd.phase ?? 0) * period;
    while (next < cmd.users.length && now() < deadline) {
      const wait = t0 + next * period - now();
      if (wait > 0) await Bun.sleep(wait);
      const k = next++;
      running.push(one(cmd.users[k]!, k));
    }
    await Promise.all(running);
  }
  send({ op: "pulled", counters: { ...c, at: now() }, hist: hist.toJSON(), connect: connectHist.toJSON() });
}

process.on("message", async (cmd: Cmd) => {
  switch (cmd.op) {
    case "open":
      return open(cmd);
    case "join":
      return join(cmd.room, cmd.lanes);
    case "hb": {
      stopLoops();
      if (cmd.mode === "closed") {
        mode = "hb-closed";
        for (const cn of conns) {
          cn.fifo.push(now());
          cn.ws.send(hbFrame());
        }
      } else {
        mode = "hb-open";
        const frame = hbFrame();
        schedule(
          conns,
          cmd.rate,
          (cn, t) => {
            cn.fifo.push(t);
            cn.ws.send(frame);
          },
          cmd.phase,
        );
      }
      return send({ op: "started" });
    }
    case "idle": {
      // Idle connections that heartbeat every `everyMs` (the server closes silent ones).
      stopLoops();
      const frame = hbFrame();
      if (cmd.everyMs > 0) schedule(conns, (conns.length * 1000) / cmd.everyMs, (cn) => cn.ws.send(frame));
      return send({ op: "started" });
    }
    case "fan": {
      stopLoops();
      mode = "fan";
      fan = cmd;
      const senders = cmd.senders.map((i) => conns[i]!).filter(Boolean);
      senders.forEach((cn, k) => {
        cn.tag = `w${cmd.worker}s${k}`;
        cn.tagRe = `"q":"${cn.tag}","n":`;
        cn.sent = cn.seen = cn.got = cn.gapsAt = 0;
        cn.progressAt = now();
      });
      if (cmd.mode === "closed") {
        for (const cn of senders) topUp(cn);
        // A message that never comes back (dropped under overload) would hold its slot forever.
        timers.push(
          setInterval(() => {
            const t = now();
            for (const cn of senders) {
              if (cn.inflight && t - cn.progressAt > 3000) {
                c.lost += cn.inflight;
                cn.inflight = 0;
                cn.seen = cn.got = cn.sent;
                cn.progressAt = t;
                topUp(cn);
              }
            }
          }, 500),
        );
      } else schedule(senders, cmd.rate, (cn, t) => cn.ws.send(pubFrame(cn, t)), cmd.phase);
      return send({ op: "started" });
    }
    case "fanWindow": {
      // Raised: each sender tops up at once; lowered: it sends again once fewer are in flight.
      if (mode === "fan" && fan?.mode === "closed") {
        fan.window = cmd.window;
        for (const cn of conns) if (cn.tag) topUp(cn);
      }
      return send({ op: "started" });
    }
    case "durableWindow": {
      durableWindow = cmd.window;
      if (mode === "durable" && durableClosed) for (const cn of conns) if (cn.pending) topUpDurable(cn);
      return send({ op: "started" });
    }
    case "durable": {
      stopLoops();
      mode = "durable";
      durableBody = JSON.stringify({ text: "x".repeat(cmd.bodyChars) });
      durableClosed = cmd.mode === "closed";
      durableWindow = cmd.window;
      conns.forEach((cn) => {
        cn.peer = cmd.peers[cn.user!];
        cn.pending = new Map();
        if (durableClosed) topUpDurable(cn);
      });
      if (!durableClosed) schedule(conns, cmd.rate, (cn) => sendDurable(cn), cmd.phase);
      return send({ op: "started" });
    }
    case "tokens":
      return issueTokens(cmd);
    case "pull":
      return pull(cmd);
    case "measure":
      c = fresh();
      hist = new Hist();
      return send({ op: "measuring" });
    case "report": {
      // Closed-loop fan-out: messages passed over by a later one of the same sender never arrived.
      let gaps = 0;
      for (const cn of conns) if (cn.tag) gaps += Math.max(0, cn.seen - cn.got - (cn.gapsAt ?? 0)), (cn.gapsAt = cn.seen - cn.got);
      return send({ op: "report", counters: { ...c, lost: c.lost + gaps, at: now() }, hist: hist.toJSON() });
    }
    case "stop": {
      // Durable sends: none more, and "stopped" once every send in flight is answered, so that the next window
      // does not start behind the server's backlog (its latency would be the backlog's). At most a minute.
      if (mode === "durable") {
        durableClosed = false;
        for (const t of timers) clearInterval(t);
        timers = [];
        const t0 = now();
        while (conns.some((cn) => cn.pending?.size) && now() - t0 < 60_000) await Bun.sleep(20);
      }
      // Fan-out: senders stop, receivers keep counting (the orchestrator waits for the backlog to drain).
      const counting = mode === "fan";
      stopLoops();
      if (counting) mode = "fan";
      return send({ op: "stopped" });
    }
    case "close": {
      stopLoops();
      for (const cn of conns) cn.ws.close();
      conns = [];
      send({ op: "closed" });
      setTimeout(() => process.exit(0), 200);
      return;
    }
  }
});
send({ op: "ready" });
