// The one place that reads the environment. Everything else receives a Config.
import { WEBHOOK_KINDS, type WebhookKind } from "./core/webhooks.ts";
import { PARTITION_INTERVALS, type PartitionInterval } from "./store/partitions.ts";

export interface Config {
  port: number;
  host: string;
  databaseUrl?: string;
  /** REDIS_URL as given: one URL, or a comma-separated list of a Redis Cluster's seed nodes. */
  redisUrl?: string;
  /** Use the Redis Cluster client (REDIS_CLUSTER=1, or several REDIS_URLs): sharded pub/sub, hash-tagged keys. */
  redisCluster: boolean;
  dataDir: string;
  tokenSecret: string;
  /** Longest lifetime of a client token (JWT `exp` - `iat`, and `exp` - now); a token without `exp` is refused. */
  tokenMaxTtlSec: number;
  /** When set, GET /metrics needs `Authorization: Bearer <key>`; absent = /metrics is open (bind it privately). */
  metricsKey?: string;
  /**
   * Password logins (J-IM `username`/`password`, rooms accounts): attempts counted before the password is checked,
   * per window, cluster-wide over Redis. A success takes its own attempt back and clears its (account, address).
   */
  loginWindowSec: number;
  /** attempts of one account from one address per window (the tight lock) */
  loginMaxPerAccountAddress: number;
  /** attempts of one account from all addresses per window */
  loginMaxPerAccount: number;
  /** attempts from one address on all accounts per window */
  loginMaxPerAddress: number;
  /** Server API key for app backends (`Authorization: apikey <key>`); absent = the server API is closed. */
  apiKey?: string;
  /** Largest accepted WebSocket frame in bytes; a bigger one closes the connection with 1009. */
  maxFrameBytes: number;
  /** Seconds without any frame before a WebSocket is closed (Bun also pings at this interval). */
  idleTimeoutSec: number;
  /** Bytes queued for one socket before it counts as a slow consumer. */
  backpressureBytes: number;
  /** Sends per second a connection may make (token bucket), and its burst. */
  sendRate: number;
  sendBurst: number;
  /** How long after sending a message its sender may still recall it. */
  recallWindowSec: number;
  /** How long group receipts are gathered before the senders get counts. */
  receiptDebounceMs: number;
  /** Tick of the room traffic coalescer (danmaku, typing, gifts, in/out). */
  roomTickMs: number;
  /** How long a room subscriber that missed must-deliver messages may take to catch up before a 4100 close. */
  roomResyncMs: number;
  /** Group-commit writer: flush at this many rows, or after this many milliseconds. */
  writerBatchRows: number;
  writerBatchMs: number;
  /** Sends waiting for the writer; past it a send is refused at once with `unavailable`. */
  writerQueueMax: number;
  /** Longest a send waits for its commit before it is refused with `unavailable` (it may still commit: a retry with its cmid gets the dup ack). */
  sendCommitTimeoutMs: number;
  /** postgres.js connect timeout: how long a query waits for a connection to a Postgres that does not answer. */
  dbConnectTimeoutSec: number;
  /** /healthz waits at most this long for the store's answer before it reports it down. */
  healthTimeoutMs: number;
  /** Frames of one connection being handled at once; a frame past it is answered with the protocol's busy error. */
  maxFramesInFlight: number;
  /** Tokens a read frame (sync, history, conversation list…) takes from the connection's SEND_RATE bucket (0: reads are free). */
  readCost: number;
  /** Largest HTTP request body in bytes (413 past it, before it is read). */
  maxBodyBytes: number;
  nodeId: string;
  /** Processes started by `npm start`, sharing PORT (reusePort), each a node over Redis. */
  workers: number;
  /** Prefix of every Redis key and channel (several deployments can share one Redis). */
  redisPrefix: string;
  /** A node that stops renewing its presence lease (killed) stops counting after this many seconds. */
  presenceTtlSec: number;
  /** Bus envelopes held while Redis is unreachable; past this, pushes to other nodes are dropped (clients still sync). */
  busQueueMax: number;
  /** SIGTERM: longest wait for clients to leave and writes to flush before the process exits. */
  drainTimeoutSec: number;
  logLevel: "debug" | "info" | "warn" | "error";
  /** Extra ports that speak one protocol on any path (original clients' URLs). */
  jimPort?: number;
  roomsPort?: number;
  /** Rooms protocol: a connection that receives nothing and is sent nothing this long is closed. */
  roomsIdleMs: number;
  deskPort?: number;
  /** Rooms protocol: the heartbeat texts clients send, answered by silence (ROOMS_HEARTBEATS, comma-separated). */
  roomsHeartbeats: string[];
  /** Social API (docs/social.md): the IANA time zone of `send_time` and the other times it shows. */
  socialTimeZone: string;
  /** Social API: URL templates of an image's small and big picture in pushes ({id} {hash} {host} {format} {ext} {width} {height}). */
  socialImageSmallUrl: string;
  socialImageBigUrl: string;
  /** Livepush (docs/livepush.md): a poll is held this long at most, then answered `result: 3`. */
  livepushPollSec: number;
  /** A polling user stays online (bound, in presence) this long after a poll ends without another. */
  livepushGraceSec: number;
  /** Messages in one poll answer. */
  livepushPollMax: number;
  /** The user notices and hosting copies come from (created at start). */
  livepushSystemUser: string;
  /** Rules of the server-driven pushes (core/livepush.ts). */
  livepushNewUserSec: number;
  livepushOnlineCooldownSec: number;
  livepushVipHosts: number;
  livepushNewUserHosts: number;
  livepushVipBuyHosts: number;
  livepushHostingMales: number;
  livepushFollowersMax: number;
  livepushReplyWindowSec: number;
  livepushGreetMax: number;
  livepushProfileTtlSec: number;
  /** Webhooks (docs/webhooks.md): URL per event kind (`*`: every kind without its own); none = off. */
  webhookUrls: Partial<Record<WebhookKind | "*", string>>;
  /** HMAC-SHA256 key of webhook and moderation requests; required when any of their URLs is set. */
  webhookSecret: string;
  webhookTimeoutMs: number;
  /** how long a webhook event is retried before it is given up */
  webhookRetrySec: number;
  /** webhook events held in the outbox (cluster-wide) and in memory; past it new ones are dropped and counted */
  webhookQueueMax: number;
  /** offline messages to one user are gathered this long into one `message.offline` event */
  webhookBatchMs: number;
  /** a desk guest waiting this long in its group's queue makes a `desk.guest_waiting` event */
  webhookDeskWaitMs: number;
  /** accepted webhook events are written to the outbox this often (a kill loses at most this much) */
  webhookFlushMs: number;
  /** each node looks in the outbox for due events (retries, other nodes', a dead node's) this often */
  webhookPollMs: number;
  /** Moderation hook URL per conversation kind; none = sends are not moderated. */
  moderationUrls: Partial<Record<"direct" | "group" | "room", string>>;
  moderationTimeoutMs: number;
  /** a moderation receiver down or late: true lets the message through, false refuses it (unavailable) */
  moderationFailOpen: boolean;
  /** Operator's console: live streams (GET /api/console/stream) open on this node, and of one key. */
  consoleStreamsMax: number;
  consoleStreamsPerKey: number;
  /** The messages table's partition period (docs/storage.md): month, week or day. */
  messagePartitionInterval: PartitionInterval;
  /** Partitions created ahead of the current period. */
  messagePartitionsAhead: number;
  /** Messages older than this many days are dropped, a whole partition at a time; 0 = kept forever. */
  messageRetentionDays: number;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

function optPort(env: Env, name: string): number | undefined {
  return env[name] ? int(env, name, 0, 0, 65535) : undefined;
}

function url(env: Env, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL: "${raw}"`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.join(" or ")}, got "${u.protocol}"`);
  }
  return raw;
}

const DEV_SECRET = "dev-secret-change-me-dev-secret-change-me";

/** 127.0.0.0/8, ::1 and `localhost`: addresses no other machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/**
 * The token secret. Without TOKEN_SECRET (or with the public development one) the server runs only as a
 * development server: embedded store, in-process bus, listening on loopback (HOST defaults to 127.0.0.1
 * then). Anything else (DATABASE_URL, REDIS_URL, a HOST other machines can reach) needs a real secret.
 */
function secretAndHost(env: Env): { tokenSecret: string; host: string } {
  const given = env.TOKEN_SECRET && env.TOKEN_SECRET !== DEV_SECRET ? env.TOKEN_SECRET : undefined;
  if (given) {
    if (given.length < 32) throw new ConfigError("TOKEN_SECRET must be at least 32 characters");
    return { tokenSecret: given, host: env.HOST || "0.0.0.0" };
  }
  const host = env.HOST || "127.0.0.1";
  const why = env.DATABASE_URL ? "DATABASE_URL is set" : env.REDIS_URL ? "REDIS_URL is set" : !isLoopback(host) ? `HOST=${host} is reachable from other machines` : undefined;
  if (why) {
    throw new ConfigError(
      `TOKEN_SECRET is required (${why}): set it to a random string of at least 32 characters (e.g. \`openssl rand -hex 32\`). ` +
        "Only a development server (no DATABASE_URL, no REDIS_URL, HOST on loopback) runs without one, on a public development secret.",
    );
  }
  return { tokenSecret: DEV_SECRET, host };
}

export function loadConfig(env: Env = process.env): Config {
  const { tokenSecret, host } = secretAndHost(env);
  const logLevel = (env.LOG_LEVEL || "info") as Config["logLevel"];
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be debug, info, warn or error, got "${logLevel}"`);
  }
  const nodeId = env.NODE_ID || `n${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  if (!/^[\w-]{1,32}$/.test(nodeId)) throw new ConfigError(`NODE_ID must match [A-Za-z0-9_-]{1,32}, got "${nodeId}"`);
  const cfg: Config = {
    port: int(env, "PORT", 8080, 0, 65535),
    host,
    databaseUrl: url(env, "DATABASE_URL", ["postgres:", "postgresql:"]),
    redisUrl: redisUrls(env),
    redisCluster: redisCluster(env),
    dataDir: env.DATA_DIR || "./data",
    tokenSecret,
    tokenMaxTtlSec: int(env, "TOKEN_MAX_TTL_SEC", 30 * 86400, 60, 365 * 86400),
    metricsKey: env.METRICS_KEY || undefined,
    loginWindowSec: int(env, "LOGIN_WINDOW_SEC", 900, 1, 86400),
    loginMaxPerAccountAddress: int(env, "LOGIN_MAX_PER_ACCOUNT_ADDRESS", 5, 1, 1_000_000),
    loginMaxPerAccount: int(env, "LOGIN_MAX_PER_ACCOUNT", 50, 1, 1_000_000),
    loginMaxPerAddress: int(env, "LOGIN_MAX_PER_ADDRESS", 100, 1, 1_000_000),
    apiKey: env.API_KEY || undefined,
    maxFrameBytes: int(env, "MAX_FRAME_BYTES", 64 * 1024, 256, 16 * 1024 * 1024),
    idleTimeoutSec: int(env, "IDLE_TIMEOUT_SEC", 60, 5, 960),
    backpressureBytes: int(env, "BACKPRESSURE_BYTES", 1024 * 1024, 1024, 1 << 30),
    sendRate: int(env, "SEND_RATE", 50, 1, 1_000_000),
    sendBurst: int(env, "SEND_BURST", 100, 1, 1_000_000),
    recallWindowSec: int(env, "RECALL_WINDOW_SEC", 120, 0, 86400 * 365),
    receiptDebounceMs: int(env, "RECEIPT_DEBOUNCE_MS", 500, 1, 60_000),
    roomTickMs: int(env, "ROOM_TICK_MS", 50, 5, 5000),
    roomResyncMs: int(env, "ROOM_RESYNC_MS", 10_000, 10, 600_000),
    writerBatchRows: int(env, "WRITER_BATCH_ROWS", 500, 1, 10_000),
    writerBatchMs: int(env, "WRITER_BATCH_MS", 1, 0, 1000),
    writerQueueMax: int(env, "WRITER_QUEUE_MAX", 20_000, 1, 10_000_000),
    sendCommitTimeoutMs: int(env, "SEND_COMMIT_TIMEOUT_MS", 5000, 10, 600_000),
    dbConnectTimeoutSec: int(env, "DB_CONNECT_TIMEOUT_SEC", 5, 1, 600),
    healthTimeoutMs: int(env, "HEALTH_TIMEOUT_MS", 1000, 10, 60_000),
    maxFramesInFlight: int(env, "MAX_FRAMES_IN_FLIGHT", 64, 1, 100_000),
    readCost: int(env, "READ_COST", 1, 0, 1_000_000),
    maxBodyBytes: int(env, "MAX_BODY_BYTES", 64 * 1024, 1024, 1 << 30),
    nodeId,
    workers: int(env, "WORKERS", 1, 1, 256),
    redisPrefix: prefix(env),
    presenceTtlSec: int(env, "PRESENCE_TTL_SEC", 15, 1, 3600),
    busQueueMax: int(env, "BUS_QUEUE_MAX", 100_000, 0, 100_000_000),
    drainTimeoutSec: int(env, "DRAIN_TIMEOUT_SEC", 10, 0, 3600),
    logLevel,
    jimPort: optPort(env, "JIM_PORT"),
    roomsPort: optPort(env, "ROOMS_PORT"),
    roomsIdleMs: int(env, "ROOMS_IDLE_MS", 60_000, 100, 3_600_000),
    deskPort: optPort(env, "DESK_PORT"),
    roomsHeartbeats: heartbeats(env),
    socialTimeZone: timeZone(env, "SOCIAL_TIME_ZONE", "Asia/Shanghai"),
    socialImageSmallUrl: env.SOCIAL_IMAGE_SMALL_URL || "http://pic{host}.ajkimg.com/display/{hash}/100x100c.{ext}",
    socialImageBigUrl: env.SOCIAL_IMAGE_BIG_URL || "http://pic{host}.ajkimg.com/display/{hash}/{width}x{height}.{ext}",
    livepushPollSec: int(env, "LIVEPUSH_POLL_SEC", 25, 1, 300),
    livepushGraceSec: int(env, "LIVEPUSH_GRACE_SEC", 30, 1, 3600),
    livepushPollMax: int(env, "LIVEPUSH_POLL_MAX", 100, 1, 500),
    livepushSystemUser: env.LIVEPUSH_SYSTEM_USER || "livepush",
    livepushNewUserSec: int(env, "LIVEPUSH_NEW_USER_SEC", 86400, 0, 365 * 86400),
    livepushOnlineCooldownSec: int(env, "LIVEPUSH_ONLINE_COOLDOWN_SEC", 300, 0, 86400),
    livepushVipHosts: int(env, "LIVEPUSH_VIP_HOSTS", 10, 0, 1000),
    livepushNewUserHosts: int(env, "LIVEPUSH_NEW_USER_HOSTS", 10, 0, 1000),
    livepushVipBuyHosts: int(env, "LIVEPUSH_VIP_BUY_HOSTS", 30, 0, 1000),
    livepushHostingMales: int(env, "LIVEPUSH_HOSTING_MALES", 50, 0, 1000),
    livepushFollowersMax: int(env, "LIVEPUSH_FOLLOWERS_MAX", 1000, 0, 100_000),
    livepushReplyWindowSec: int(env, "LIVEPUSH_REPLY_WINDOW_SEC", 3600, 0, 30 * 86400),
    livepushGreetMax: int(env, "LIVEPUSH_GREET_MAX", 50, 1, 1000),
    livepushProfileTtlSec: int(env, "LIVEPUSH_PROFILE_TTL_SEC", 30, 0, 3600),
    ...hooks(env),
    consoleStreamsMax: int(env, "CONSOLE_STREAMS_MAX", 64, 1, 100_000),
    consoleStreamsPerKey: int(env, "CONSOLE_STREAMS_PER_KEY", 16, 1, 100_000),
    ...partitioning(env),
  };
  if (cfg.workers > 1) {
    // Worker processes are nodes of one cluster: they need the shared bus and store, and a fixed port to share.
    if (!cfg.redisUrl) throw new ConfigError("WORKERS > 1 needs REDIS_URL (the workers talk to each other over Redis)");
    if (!cfg.databaseUrl) throw new ConfigError("WORKERS > 1 needs DATABASE_URL (the embedded store belongs to one process)");
    if (cfg.port === 0) throw new ConfigError("WORKERS > 1 needs a fixed PORT for the workers to share");
  }
  return cfg;
}

function prefix(env: Env): string {
  const p = env.REDIS_PREFIX ?? "chat:";
  if (!/^[\w:.-]{0,64}$/.test(p)) throw new ConfigError(`REDIS_PREFIX must match [A-Za-z0-9_:.-]{0,64}, got "${p}"`);
  return p;
}

export function usesDevSecret(cfg: Config): boolean {
  return cfg.tokenSecret === DEV_SECRET;
}

/** The seed's heartbeat text and the t-io showcase's. */
export const DEFAULT_ROOMS_HEARTBEATS = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97,心跳内容";

/** ROOMS_HEARTBEATS: texts separated by commas (spaces around each are dropped), each 1-256 characters. */
function heartbeats(env: Env): string[] {
  const raw = env.ROOMS_HEARTBEATS ?? DEFAULT_ROOMS_HEARTBEATS;
  const list = [...new Set(raw.split(",").map((t) => t.trim()).filter((t) => t.length > 0))];
  for (const t of list) {
    if (t.length > 256) throw new ConfigError(`ROOMS_HEARTBEATS: each text is at most 256 characters, got one of ${t.length}`);
    if (t.startsWith("{") || t.startsWith("[")) throw new ConfigError(`ROOMS_HEARTBEATS: a heartbeat text cannot look like JSON, got "${t}"`);
  }
  return list;
}

/** An IANA time zone name (`Asia/Shanghai`, `UTC`), checked against the runtime's zone database. */
function timeZone(env: Env, name: string, def: string): string {
  const v = env[name] || def;
  try {
    new Intl.DateTimeFormat("en", { timeZone: v });
  } catch {
    throw new ConfigError(`${name} must be an IANA time zone such as Asia/Shanghai or UTC, got "${v}"`);
  }
  return v;
}

/** Webhook and moderation settings: WEBHOOK_URL, WEBHOOK_URL_<KIND> (message.offline → MESSAGE_OFFLINE), MODERATION_URL[_<KIND>]. */
function hooks(env: Env) {
  const web = ["http:", "https:"];
  const webhookUrls: Config["webhookUrls"] = {};
  const all = url(env, "WEBHOOK_URL", web);
  if (all) webhookUrls["*"] = all;
  for (const k of WEBHOOK_KINDS) {
    const u = url(env, `WEBHOOK_URL_${k.replace(".", "_").toUpperCase()}`, web);
    if (u) webhookUrls[k] = u;
  }
  const moderationUrls: Config["moderationUrls"] = {};
  for (const k of ["direct", "group", "room"] as const) {
    const u = url(env, `MODERATION_URL_${k.toUpperCase()}`, web) ?? url(env, "MODERATION_URL", web);
    if (u) moderationUrls[k] = u;
  }
  const webhookSecret = env.WEBHOOK_SECRET ?? "";
  if ((Object.keys(webhookUrls).length || Object.keys(moderationUrls).length) && webhookSecret.length < 16) {
    throw new ConfigError("WEBHOOK_SECRET (at least 16 characters) is required when a WEBHOOK_URL or MODERATION_URL is set: requests are signed with it");
  }
  const failOpen = env.MODERATION_FAIL_OPEN ?? "0";
  if (!["0", "1", "true", "false"].includes(failOpen)) throw new ConfigError(`MODERATION_FAIL_OPEN must be 0 or 1, got "${failOpen}"`);
  return {
    webhookUrls,
    webhookSecret,
    webhookTimeoutMs: int(env, "WEBHOOK_TIMEOUT_MS", 5000, 10, 600_000),
    webhookRetrySec: int(env, "WEBHOOK_RETRY_SEC", 600, 0, 7 * 86400),
    webhookQueueMax: int(env, "WEBHOOK_QUEUE_MAX", 10_000, 1, 10_000_000),
    webhookBatchMs: int(env, "WEBHOOK_BATCH_MS", 1000, 0, 600_000),
    webhookDeskWaitMs: int(env, "WEBHOOK_DESK_WAIT_MS", 60_000, 10, 86_400_000),
    webhookFlushMs: int(env, "WEBHOOK_FLUSH_MS", 50, 1, 10_000),
    webhookPollMs: int(env, "WEBHOOK_POLL_MS", 1000, 10, 600_000),
    moderationUrls,
    moderationTimeoutMs: int(env, "MODERATION_TIMEOUT_MS", 500, 10, 60_000),
    moderationFailOpen: failOpen === "1" || failOpen === "true",
  };
}

/** MESSAGE_PARTITION_INTERVAL, MESSAGE_PARTITIONS_AHEAD, MESSAGE_RETENTION_DAYS (docs/storage.md). */
function partitioning(env: Env) {
  const interval = (env.MESSAGE_PARTITION_INTERVAL || "month") as PartitionInterval;
  if (!PARTITION_INTERVALS.includes(interval)) {
    throw new ConfigError(`MESSAGE_PARTITION_INTERVAL must be ${PARTITION_INTERVALS.join(", ")}, got "${interval}"`);
  }
  return {
    messagePartitionInterval: interval,
    messagePartitionsAhead: int(env, "MESSAGE_PARTITIONS_AHEAD", 2, 1, 60),
    messageRetentionDays: int(env, "MESSAGE_RETENTION_DAYS", 0, 0, 100 * 366),
  };
}

/** REDIS_URL: one URL, or several comma-separated (the seed nodes of a Redis Cluster), each checked. */
function redisUrls(env: Env): string | undefined {
  const raw = env.REDIS_URL;
  if (!raw) return undefined;
  const list = raw.split(",").map((u) => u.trim());
  for (const u of list) url({ REDIS_URL: u }, "REDIS_URL", ["redis:", "rediss:"]);
  return list.join(",");
}

/** REDIS_CLUSTER=1, or several REDIS_URLs; REDIS_CLUSTER=0 with several URLs is refused. */
function redisCluster(env: Env): boolean {
  const flag = env.REDIS_CLUSTER;
  if (flag !== undefined && flag !== "" && flag !== "0" && flag !== "1") throw new ConfigError(`REDIS_CLUSTER must be 0 or 1, got "${flag}"`);
  const several = (env.REDIS_URL ?? "").includes(",");
  if (flag === "0" && several) throw new ConfigError("REDIS_CLUSTER=0 but REDIS_URL lists several URLs (only a Redis Cluster takes several)");
  return flag === "1" || several;
}
