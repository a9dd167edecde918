// Redis pub/sub bus (ioredis): one connection publishes, one subscribes. Channels are subscribed only
// while a local member needs them (the hub says when: one SUBSCRIBE for a user's or topic's first local
// session, one UNSUBSCRIBE after its last; a failed SUBSCRIBE leaves the channel unsubscribed), never
// with PSUBSCRIBE, so Redis traffic grows with active topics rather than nodes x topics.
// ioredis reconnects by itself and re-subscribes every channel after a reconnect (autoResubscribe);
// publishes made while Redis is away are queued by ioredis and sent on reconnect (offline queue), up to
// BUS_QUEUE_MAX of them; past that they are dropped and counted (the messages themselves are committed:
// clients get them by sync). Once the subscriber is back, `onRecover` handlers run: pushes from other
// nodes during the outage were missed, so the hub tells its clients to sync.
//
// On a Redis Cluster (several REDIS_URLs, or REDIS_CLUSTER=1) both connections are ioredis `Cluster` clients
// and pub/sub is sharded: SSUBSCRIBE / SPUBLISH, so an envelope crosses only the shard owning its channel's
// slot (channels are hash-tagged by their user or topic: bus/keys.ts). ioredis keeps one subscriber
// connection per master (`shardedSubscribers`); when a master dies, its replica is promoted and ioredis
// subscribes the channels of its slots again there by itself. The subscriber counts as lost from the moment
// one of its shard connections drops until every shard's subscriber is connected again and has re-subscribed;
// then the `onRecover` handlers run, as after a single Redis's restart.
import Redis, { Cluster } from "ioredis";
import type { Logger } from "../app.ts";
import { metric, onCollect } from "../core/metrics.ts";
import type { Bus, BusState } from "./bus.ts";

const mDropped = metric("chat_bus_dropped_total", "Envelopes dropped while Redis was unreachable (queue full)");
const mQueued = metric("chat_bus_queued", "Envelopes waiting for Redis to come back", "gauge");
const mUp = metric("chat_bus_up", "1 while both Redis connections are ready (on a Redis Cluster: and every shard's subscriber)", "gauge");
const mShardLost = metric("chat_bus_shard_lost_total", "Redis Cluster: times a shard's subscriber connection was lost (a master failed or moved)");
const mShardBack = metric("chat_bus_shard_recovered_total", "Redis Cluster: times every shard's subscriber was back and re-subscribed after a loss (clients were told to sync)");

/** A connection to one Redis or to a Redis Cluster: the commands both answer alike. */
export type RedisConn = Redis | Cluster;

/** Where Redis is: one server's URL, or the seed URLs of a Redis Cluster. */
export type RedisTarget = string | { cluster: string[] };

/** The Redis of a config: REDIS_URL (one URL, or a comma-separated list of a cluster's seeds) and REDIS_CLUSTER. */
export function redisTarget(cfg: { redisUrl?: string; redisCluster?: boolean }): RedisTarget | undefined {
  if (!cfg.redisUrl) return undefined;
  const urls = cfg.redisUrl.split(",").map((u) => u.trim()).filter(Boolean);
  return cfg.redisCluster || urls.length > 1 ? { cluster: urls } : urls[0];
}

/**
 * An ioredis connection as every Redis user of a node opens it (bus, presence, desk state): connected by
 * the caller (lazyConnect), reconnecting with a short backoff, commands waiting through an outage unless
 * `offlineQueue` is false, auto-pipelined, named `chat-<name>` in CLIENT LIST. For a cluster, a `Cluster`
 * client (with one sharded subscriber connection per master when `sharded`).
 */
export function redisClient(target: RedisTarget, name: string, log: Logger, offlineQueue = true, sharded = false): RedisConn {
  if (typeof target !== "string") return clusterClient(target.cluster, name, log, offlineQueue, sharded);
  const url = target;
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

function clusterClient(urls: string[], name: string, log: Logger, offlineQueue: boolean, sharded: boolean): Cluster {
  const seeds = urls.map((u) => new URL(u));
  const first = seeds[0]!;
  const c = new Cluster(
    seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    {
      lazyConnect: true,
      clusterRetryStrategy: (n: number) => Math.min(50 * n, 1000),
      enableOfflineQueue: offlineQueue,
      enableAutoPipelining: true,
      shardedSubscribers: sharded,
      // A dropped node or a MOVED reply refreshes the slot map at once; the bus's subscriber also polls it every
      // second (a replica promoted while nothing was sent to its slots), every other client every 5 s.
      slotsRefreshInterval: sharded ? 1000 : 5000,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      redisOptions: {
        maxRetriesPerRequest: null,
        connectionName: `chat-${name}`,
        username: first.username ? decodeURIComponent(first.username) : undefined,
        password: first.password ? decodeURIComponent(first.password) : undefined,
        tls: first.protocol === "rediss:" ? {} : undefined,
      },
    },
  );
  c.on("error", (e) => log.debug(`redis ${name}: ${e.message}`));
  c.on("node error", (e: Error, node: string) => log.debug(`redis ${name} ${node}: ${e.message}`));
  return c;
}

export class RedisBus implements Bus {
  readonly kind = "redis" as const;
  readonly hasPeers = true;
  /** subscribed channels → their SUBSCRIBE (settled once Redis answered) */
  private readonly channels = new Map<string, Promise<void>>();
  private readonly handlers: ((channel: string, payload: Uint8Array) => void)[] = [];
  private readonly recovered: (() => void)[] = [];
  private queued = 0;
  /** a cluster's subscriber lost one of its shard connections and has not subscribed everything again yet */
  private shardLost = false;

  private constructor(
    readonly pub: RedisConn,
    private readonly sub: RedisConn,
    private readonly queueMax: number,
    /** a Redis Cluster: sharded pub/sub */
    private readonly sharded: boolean,
  ) {
    const deliver = (ch: Buffer, payload: Buffer) => {
      const channel = ch.toString();
      for (const h of this.handlers) h(channel, payload);
    };
    sub.on(sharded ? "smessageBuffer" : "messageBuffer", deliver);
    onCollect(() => void this.state());
    let lost = false;
    const recover = () => {
      for (const fn of this.recovered) fn();
    };
    sub.on("close", () => (lost = true));
    sub.on("ready", () => {
      if (!lost) return;
      lost = false;
      recover();
    });
    if (sharded) {
      // One master's subscriber connection dropped (killed, failed over), or was replaced by one to a new master.
      let losses = 0;
      const lose = () => {
        if (!this.shardLost) mShardLost.value++;
        this.shardLost = true;
        losses++;
      };
      sub.on("-node", lose);
      sub.on("-subscriber", lose);
      // Emitted after ioredis re-subscribed the channels on the subscribers it (re)started; some may have failed to
      // start (the master is still down), then it tries again and says so again.
      sub.on("subscribersReady", () => {
        if (!this.shardLost || !shardSubscribersHealthy(sub as Cluster)) return;
        // ioredis sent the SSUBSCRIBEs without waiting for them: once a PING behind them is answered on every
        // shard's connection they are in effect, and a client told to sync now misses nothing pushed after it.
        const at = losses;
        void shardSubscribersSettled(sub as Cluster).then(() => {
          if (losses !== at || !this.shardLost) return;
          this.shardLost = false;
          mShardBack.value++;
          recover();
        });
      });
    }
  }

  static async connect(target: RedisTarget, log: Logger, queueMax = 100_000): Promise<RedisBus> {
    const sharded = typeof target !== "string";
    const pub = redisClient(target, "pub", log, true, false);
    // ARGV: payload, then the channels
    pub.defineCommand("publishAll", { lua: "for i = 2, #ARGV do redis.call('PUBLISH', ARGV[i], ARGV[1]) end return #ARGV - 1" });
    const sub = redisClient(target, "sub", log, true, sharded);
    for (const [name, c] of [["pub", pub], ["sub", sub]] as const) {
      c.on("reconnecting", () => log.warn(`redis ${name}: reconnecting`));
      c.on("ready", () => log.info(`redis ${name}: ready`));
    }
    if (sharded) {
      subscriberGroup(sub as Cluster); // this ioredis keeps its shard subscribers where the bus reads them (else: fail now)
      sub.on("-subscriber", () => log.warn("redis sub: a shard's subscriber is gone (its master failed or moved)"));
      sub.on("subscribersReady", () => log.info("redis sub: shard subscribers ready"));
    }
    await Promise.all([pub.connect(), sub.connect()]);
    return new RedisBus(pub, sub, queueMax, sharded);
  }

  state(): BusState {
    const p = this.pub.status === "ready";
    const s = this.sub.status === "ready" && !this.shardLost;
    mUp.value = p && s ? 1 : 0;
    return p && s ? "ok" : "degraded";
  }

  publish(channel: string, payload: Uint8Array): void {
    const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    this.send(() => (this.sharded ? this.pub.spublish(channel, bytes) : this.pub.publish(channel, bytes)));
  }

  publishMany(channels: string[], payload: Uint8Array): void {
    if (channels.length === 1) return this.publish(channels[0]!, payload);
    if (this.sharded) {
      // A script may publish only to channels of its own slot, and each channel has a slot of its own: one
      // SPUBLISH per channel, auto-pipelined into one write per shard.
      for (const ch of channels) this.publish(ch, payload);
      return;
    }
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
    const p: Promise<void> = (this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel)).then(
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
    (this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel)).catch(() => {});
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

/**
 * A cluster client's sharded subscribers, one per master, connected or idle (idle: none of its slots' channels is
 * subscribed). ioredis keeps them in its subscriber group and has no public accessor for their state, so this
 * reads it (test/e2e/redis-failover.test.ts fails if a new ioredis changes it).
 */
type SubscriberGroup = {
  hasUnhealthySubscribers(): boolean;
  shardedSubscribers: Map<string, { isStarted(): boolean; getInstance(): Redis | null }>;
};

function subscriberGroup(c: Cluster): SubscriberGroup {
  const group = (c as unknown as { shardedSubscribers?: SubscriberGroup }).shardedSubscribers;
  if (!group || typeof group.hasUnhealthySubscribers !== "function" || !(group.shardedSubscribers instanceof Map)) {
    throw new Error("ioredis: the cluster's sharded subscriber group is not where this version expects it");
  }
  return group;
}

function shardSubscribersHealthy(c: Cluster): boolean {
  return !subscriberGroup(c).hasUnhealthySubscribers();
}

/** Resolves once every started shard subscriber answered a PING: the commands sent before it are done. */
async function shardSubscribersSettled(c: Cluster): Promise<void> {
  const pings = [...subscriberGroup(c).shardedSubscribers.values()].map((s) => {
    const r = s.getInstance();
    return r && s.isStarted() ? r.ping().catch(() => {}) : undefined;
  });
  await Promise.all(pings);
}
