// What the operator's console shows of each node (docs/console.md): a sample of this node's counters once a
// second, kept for 10 minutes, and the live rooms it holds members of. In a cluster each node writes its latest
// snapshot and its samples to Redis (keys under REDIS_PREFIX `console:`), and the nodes listed are those whose
// presence lease holds (presence/redis.ts), so a node that dies leaves the list with its lease.
// Counters are per process (core/metrics.ts): nodes started in one process (tests) show the same rates.
import type { App } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient, redisTarget, type RedisConn } from "../bus/redis.ts";
import { peekHistogram, peekMetric, sumMetric } from "../core/metrics.ts";
import type { CoreEvent } from "../core/types.ts";

/** Samples kept: one a second for 10 minutes. */
export const HISTORY = 600;
const SAMPLE_MS = 1000;
/** A node's snapshot outlives its last write by this much (then the node shows without numbers). */
const SNAPSHOT_TTL_MS = 5000;
/** How long a user looked up in the console stays wanted: its nodes report its connections meanwhile. */
const WANT_MS = 10_000;

/** One second of a node: rates per second and the writer's batches in that second. */
export interface Sample {
  /** ms since the epoch */
  t: number;
  /** messages accepted and committed */
  msgsIn: number;
  /** frames received from sockets */
  framesIn: number;
  /** frames written to sockets */
  framesOut: number;
  /** live room messages accepted */
  roomMsgs: number;
  /** envelopes from / to the bus */
  busIn: number;
  busOut: number;
  /** writer: mean rows per batch and mean ms per batch in this second (0 without a batch) */
  batchRows: number;
  batchMs: number;
  /** sends dropped (socket layer, bus queue full, room overflow, room items skipped for slow consumers) */
  drops: number;
}

export interface RoomStat {
  conv: string;
  /** this node's connections in the room */
  local: number;
  /** droppable (danmaku) and must-deliver messages per second seen on this node (10 s mean) */
  danmaku: number;
  must: number;
  /** droppable items skipped for this node's slow consumers, since the room's first subscriber here */
  dropped: number;
}

export interface NodeSnapshot {
  node: string;
  startedAt: number;
  uptimeSec: number;
  /** open connections per protocol */
  connections: Record<string, number>;
  bus: { kind: string; state: string };
  writerQueue: number;
  /** totals since start */
  drops: { send: number; bus: number; roomOverflow: number; roomSkipped: number };
  rooms: RoomStat[];
  history: Sample[];
}

interface Totals {
  msgsIn: number;
  framesIn: number;
  framesOut: number;
  roomMsgs: number;
  busIn: number;
  busOut: number;
  rows: number;
  batches: number;
  batchSec: number;
  drops: number;
}

const v = (name: string) => peekMetric(name) ?? 0;

function totals(): Totals {
  const rows = peekHistogram("chat_writer_batch_rows");
  const lat = peekHistogram("chat_writer_batch_latency_seconds");
  return {
    msgsIn: v("chat_messages_in_total"),
    framesIn: sumMetric("chat_frames_in_total"),
    framesOut: v("chat_frames_out_total"),
    roomMsgs: v("chat_room_messages_total"),
    busIn: v("chat_bus_received_total"),
    busOut: v("chat_bus_published_total"),
    rows: rows?.sum ?? 0,
    batches: rows?.count ?? 0,
    batchSec: lat?.sum ?? 0,
    drops: v("chat_send_dropped_total") + v("chat_bus_dropped_total") + v("chat_room_overflow_total") + sumMetric("chat_room_dropped_total"),
  };
}

/** Room messages seen on this node per room, counted per second over the last 10 seconds. */
const RATE_WINDOW = 10;

export class ConsoleStats {
  private readonly history: Sample[] = [];
  private last = totals();
  private timer: ReturnType<typeof setInterval> | undefined;
  /** room → ring of per-second counts [danmaku, must] */
  private readonly roomRates = new Map<string, { ring: [number, number][]; cur: [number, number] }>();

  private readonly redis?: RedisConn;

  /** Starts sampling (and, with REDIS_URL, writing the samples to Redis for the other nodes' consoles). */
  constructor(
    private readonly app: Pick<App, "hub" | "bus" | "cfg" | "startedAt" | "log">,
    private readonly keys: Keys,
  ) {
    if (app.cfg.redisUrl) {
      // Commands fail at once while Redis is away (no queue): a sample is skipped, a read answers this node only.
      this.redis = redisClient(redisTarget(app.cfg)!, "console", app.log, false);
      this.redis.connect().catch((e) => app.log.warn(`console stats: redis: ${e}`));
    }
    app.hub.onTopicEvent((topic, ev) => this.counted(topic, ev));
    this.timer = setInterval(() => void this.tick(), SAMPLE_MS);
  }

  private counted(topic: string, ev: CoreEvent): void {
    if (ev.type !== "room") return;
    let r = this.roomRates.get(topic);
    if (!r) this.roomRates.set(topic, (r = { ring: [], cur: [0, 0] }));
    for (const it of ev.items) if (it.type === "msg") r.cur[it.msg.class === "must" ? 1 : 0]++;
  }

  /** This node's snapshot now (history included). */
  snapshot(): NodeSnapshot {
    // From the hub's counts and topic index: a node with many connections is not walked every second.
    const connections: Record<string, number> = Object.assign(Object.create(null), Object.fromEntries(this.app.hub.connectionsByDialect()));
    const rooms = this.app.hub.roomCounts();
    for (const t of this.roomRates.keys()) if (!rooms.has(t)) rooms.set(t, 0);
    const roomStats: RoomStat[] = [...rooms].map(([conv, local]) => {
      const r = this.roomRates.get(conv);
      const sum = r?.ring.reduce((a, [d, m]) => [a[0] + d, a[1] + m], [0, 0]) ?? [0, 0];
      const n = Math.max(1, r?.ring.length ?? 1);
      return { conv, local, danmaku: round(sum[0] / n), must: round(sum[1] / n), dropped: peekMetric("chat_room_dropped_total", { room: conv }) ?? 0 };
    });
    return {
      node: this.app.cfg.nodeId,
      startedAt: this.app.startedAt,
      uptimeSec: Math.round((Date.now() - this.app.startedAt) / 1000),
      connections,
      bus: { kind: this.app.bus.kind, state: this.app.bus.state() },
      writerQueue: v("chat_writer_queue"),
      drops: {
        send: v("chat_send_dropped_total"),
        bus: v("chat_bus_dropped_total"),
        roomOverflow: v("chat_room_overflow_total"),
        roomSkipped: sumMetric("chat_room_dropped_total"),
      },
      rooms: roomStats.sort((a, b) => b.local - a.local || b.danmaku + b.must - a.danmaku - a.must).slice(0, 200),
      history: this.history,
    };
  }

  private async tick(): Promise<void> {
    const now = totals();
    const l = this.last;
    this.last = now;
    const batches = now.batches - l.batches;
    const sample: Sample = {
      t: Date.now(),
      msgsIn: now.msgsIn - l.msgsIn,
      framesIn: now.framesIn - l.framesIn,
      framesOut: now.framesOut - l.framesOut,
      roomMsgs: now.roomMsgs - l.roomMsgs,
      busIn: now.busIn - l.busIn,
      busOut: now.busOut - l.busOut,
      batchRows: batches > 0 ? round((now.rows - l.rows) / batches) : 0,
      batchMs: batches > 0 ? round(((now.batchSec - l.batchSec) * 1000) / batches) : 0,
      drops: now.drops - l.drops,
    };
    this.history.push(sample);
    if (this.history.length > HISTORY) this.history.shift();
    for (const [room, r] of this.roomRates) {
      r.ring.push(r.cur);
      r.cur = [0, 0];
      if (r.ring.length > RATE_WINDOW) r.ring.shift();
      if (r.ring.every(([d, m]) => d === 0 && m === 0)) this.roomRates.delete(room);
    }
    if (!this.redis) return;
    const { history, ...snap } = this.snapshot();
    const k = this.keys;
    const node = this.app.cfg.nodeId;
    await this.redis
      .multi()
      .set(k.consoleSnapshot(node), JSON.stringify(snap), "PX", SNAPSHOT_TTL_MS)
      .rpush(k.consoleHistory(node), JSON.stringify(sample))
      .ltrim(k.consoleHistory(node), -HISTORY, -1)
      .pexpire(k.consoleHistory(node), HISTORY * SAMPLE_MS)
      .exec()
      .catch((e) => this.app.log.debug(`console stats: ${e}`));
    await this.reportWanted().catch((e) => this.app.log.debug(`console stats: ${e}`));
  }

  /**
   * Every live node's snapshot: this node's now, the others' latest (at most a second old). Nodes are those
   * whose presence lease holds; a node whose snapshot has expired is listed with its id only.
   */
  async cluster(): Promise<(NodeSnapshot | { node: string; stale: true })[]> {
    const self = this.snapshot();
    if (!this.redis) return [self];
    const k = this.keys;
    try {
      const nowMs = await this.redisNow();
      const ids = (await this.redis.zrangebyscore(k.nodes(), `(${nowMs}`, "+inf")).filter((n) => n !== self.node).sort();
      const out: (NodeSnapshot | { node: string; stale: true })[] = [self];
      if (ids.length === 0) return out;
      const snaps = await this.redis.mget(ids.map((n) => k.consoleSnapshot(n)));
      const hists = await Promise.all(ids.map((n) => this.redis!.lrange(k.consoleHistory(n), -HISTORY, -1)));
      ids.forEach((node, i) => {
        const s = snaps[i];
        out.push(s ? { ...(JSON.parse(s) as Omit<NodeSnapshot, "history">), history: hists[i]!.map((h) => JSON.parse(h) as Sample) } : { node, stale: true });
      });
      return out;
    } catch (e) {
      this.app.log.debug(`console cluster: ${e}`);
      return [self]; // Redis away: this node only
    }
  }

  /** This node's open connections of a user, per protocol (undefined when it has none). */
  private protocolsOf(user: string): Record<string, number> | undefined {
    let out: Record<string, number> | undefined;
    for (const s of this.app.hub.sessionsOf(user) ?? []) {
      if (s.closed) continue;
      out ??= Object.create(null) as Record<string, number>;
      out[s.dialect.name] = (out[s.dialect.name] ?? 0) + 1;
    }
    return out;
  }

  /**
   * The nodes a user is connected to (presence entries of live nodes; this node's own when alone), each with its
   * connections per protocol where known: this node's now; another node's once it has reported them. Asking
   * marks the user as wanted for WANT_MS, and every node reports its connections of wanted users at its next
   * sample (at most a second later), so a console that keeps asking sees every node's protocols.
   */
  async userNodes(user: string): Promise<{ node: string; protocols?: Record<string, number> }[]> {
    const self = this.app.cfg.nodeId;
    const mine = this.protocolsOf(user);
    const local = mine ? [{ node: self, protocols: mine }] : [];
    if (!this.redis) return local;
    const k = this.keys;
    try {
      const nowMs = await this.redisNow();
      await this.redis.multi().zremrangebyscore(k.consoleWants(), "-inf", nowMs).zadd(k.consoleWants(), nowMs + WANT_MS, user).exec();
      const [nodes, reported] = await Promise.all([this.redis.smembers(k.userNodes(user)), this.redis.hgetall(k.consoleUser(user))]);
      const out: { node: string; protocols?: Record<string, number> }[] = [...local];
      for (const n of nodes.sort()) {
        if (n === self) continue;
        const until = await this.redis.zscore(k.nodes(), n);
        if (until === null || Number(until) <= nowMs) continue;
        const p = reported[n];
        out.push(p ? { node: n, protocols: JSON.parse(p) as Record<string, number> } : { node: n });
      }
      return out.sort((a, b) => (a.node < b.node ? -1 : 1));
    } catch {
      return local;
    }
  }

  /** Writes this node's connections of the users a console asked for lately (one report a second). */
  private async reportWanted(): Promise<void> {
    const k = this.keys;
    const node = this.app.cfg.nodeId;
    const users = await this.redis!.zrangebyscore(k.consoleWants(), `(${await this.redisNow()}`, "+inf", "LIMIT", 0, 100);
    if (users.length === 0) return;
    const m = this.redis!.multi();
    for (const u of users) {
      const p = this.protocolsOf(u);
      if (p) m.hset(k.consoleUser(u), node, JSON.stringify(p)).pexpire(k.consoleUser(u), WANT_MS);
      else m.hdel(k.consoleUser(u), node);
    }
    await m.exec();
  }

  /** Redis's clock in ms (leases are on it: presence/redis.ts). */
  private async redisNow(): Promise<number> {
    const [sec, usec] = await this.redis!.time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.redis?.quit().catch(() => {});
  }
}

const round = (n: number) => Math.round(n * 100) / 100;
