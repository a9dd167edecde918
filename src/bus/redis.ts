// Redis pub/sub bus (ioredis): one connection publishes, one subscribes. Channels are subscribed only
// while a local member needs them (the hub says when: one SUBSCRIBE for a user's or topic's first local
// session, one UNSUBSCRIBE after its last; a failed SUBSCRIBE leaves the channel unsubscribed), never
// with PSUBSCRIBE, so Redis traffic grows with active topics rather than nodes x topics.
// ioredis reconnects by itself and re-subscribes every channel after a reconnect (autoResubscribe);
// publishes made while Redis is away are queued by ioredis and sent on reconnect (offline queue), up to
// BUS_QUEUE_MAX of them; past that they are dropped and counted (the messages themselves are committed:
// clients get them by sync). Once the subscriber is back, `onRecover` handlers run: pushes from other
// nodes during the outage were missed, so the hub tells its clients to sync.
import Redis from "ioredis";
import type { Logger } from "../app.ts";
import { metric, onCollect } from "../core/metrics.ts";
import type { Bus, BusState } from "./bus.ts";

const mDropped = metric("chat_bus_dropped_total", "Envelopes dropped while Redis was unreachable (queue full)");
const mQueued = metric("chat_bus_queued", "Envelopes waiting for Redis to come back", "gauge");
const mUp = metric("chat_bus_up", "1 while both Redis connections are ready", "gauge");

/**
 * An ioredis connection as every Redis user of a node opens it (bus, presence, desk state): connected by
 * the caller (lazyConnect), reconnecting with a short backoff, commands waiting through an outage unless
 * `offlineQueue` is false, auto-pipelined, named `chat-<name>` in CLIENT LIST.
 */
export function redisClient(url: string, name: string, log: Logger, offlineQueue = true): Redis {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: null,
    retryStrategy: (n: number) => Math.min(50 * n, 1000),
    enableAutoPipelining: true,
    enableOfflineQueue: offlineQueue,
    connectionName: `chat-${name}`,
  });
  r.on("error", (e) => log.debug(`redis ${name}: ${e.message}`));
  return r;
}

export class RedisBus implements Bus {
  readonly kind = "redis" as const;
  readonly hasPeers = true;
  /** subscribed channels → their SUBSCRIBE (settled once Redis answered) */
  private readonly channels = new Map<string, Promise<void>>();
  private readonly handlers: ((channel: string, payload: Uint8Array) => void)[] = [];
  private readonly recovered: (() => void)[] = [];
  private queued = 0;

  private constructor(
    readonly pub: Redis,
    private readonly sub: Redis,
    private readonly queueMax: number,
  ) {
    sub.on("messageBuffer", (ch: Buffer, payload: Buffer) => {
      const channel = ch.toString();
      for (const h of this.handlers) h(channel, payload);
    });
    onCollect(() => void this.state());
    let lost = false;
    sub.on("close", () => (lost = true));
    sub.on("ready", () => {
      if (!lost) return;
      lost = false;
      for (const fn of this.recovered) fn();
    });
  }

  static async connect(url: string, log: Logger, queueMax = 100_000): Promise<RedisBus> {
    const pub = redisClient(url, "pub", log);
    // ARGV: payload, then the channels
    pub.defineCommand("publishAll", { lua: "for i = 2, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[1]) end return #ARGV - 1" });
    const sub = redisClient(url, "sub", log);
    for (const [name, c] of [["pub", pub], ["sub", sub]] as const) {
      c.on("reconnecting", () => log.warn(`redis ${name}: reconnecting`));
      c.on("ready", () => log.info(`redis ${name}: ready`));
    }
    await Promise.all([pub.connect(), sub.connect()]);
    return new RedisBus(pub, sub, queueMax);
  }

  state(): BusState {
    const p = this.pub.status === "ready";
    const s = this.sub.status === "ready";
    mUp.value = p && s ? 1 : 0;
    return p && s ? "ok" : "degraded";
  }

  publish(channel: string, payload: Uint8Array): void {
    this.send(() => this.pub.publish(channel, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)));
  }

  publishMany(channels: string[], payload: Uint8Array): void {
    if (channels.length === 1) return this.publish(channels[0]!, payload);
    // One script call instead of a PUBLISH per channel: the per-command cost on both ends is most of what
    // crossing nodes costs (bench: direct).
    const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    this.send(() => (this.pub as Redis & { publishAll(n: number, ...args: (string | Buffer)[]): Promise<unknown> }).publishAll(0, bytes, ...channels));
  }

  private send(cmd: () => Promise<unknown>): void {
    if (this.pub.status === "ready") return void cmd().catch(() => {});
    if (this.queued >= this.queueMax) return void mDropped.value++;
    mQueued.value = ++this.queued;
    cmd()
      .catch(() => {})
      .finally(() => (mQueued.value = --this.queued));
  }

  /** Runs `fn` each time the subscriber is back after losing Redis. */
  onRecover(fn: () => void): void {
    this.recovered.push(fn);
  }

  subscribe(channel: string): Promise<void> {
    const had = this.channels.get(channel);
    if (had) return had;
    const p: Promise<void> = this.sub.subscribe(channel).then(
      () => {},
      (e) => {
        // Unless unsubscribed (and maybe subscribed again) meanwhile: that later call owns the entry.
        if (this.channels.get(channel) === p) this.channels.delete(channel);
        throw e;
      },
    );
    this.channels.set(channel, p);
    return p;
  }

  unsubscribe(channel: string): void {
    if (!this.channels.delete(channel)) return;
    this.sub.unsubscribe(channel).catch(() => {});
  }

  subscriptions(): number {
    return this.channels.size;
  }

  onMessage(handler: (channel: string, payload: Uint8Array) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    this.channels.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
