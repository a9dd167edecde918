// The Redis key layout (bus/keys.ts) on a plain Redis and on a Redis Cluster: names unchanged on a plain Redis,
// every state key in one slot on a cluster, and channels spread evenly over the shards. The spread is measured
// here (and printed: docs/deploy.md, "Redis", quotes it) for 10,000 user channels and 1,000 room channels over
// 3 shards with the even slot split `redis-cli --cluster create` makes.
import { expect, test } from "bun:test";
import { Keys } from "../../src/bus/keys.ts";
import { redisTarget } from "../../src/bus/redis.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";

/** CRC16/XMODEM, as Redis Cluster hashes keys. */
function crc16(s: string): number {
  let crc = 0;
  for (const b of new TextEncoder().encode(s)) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The slot of a key: the CRC16 of its hash tag (the first non-empty `{…}`), else of the whole key. */
function slot(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(key) % 16384;
}

/** The shard of a slot when `shards` masters split the 16384 slots evenly (as redis-cli --cluster create does). */
function shardOf(s: number, shards: number): number {
  for (let i = 0; i < shards; i++) if (s <= Math.round(((i + 1) * 16384) / shards) - 1) return i;
  return shards - 1;
}

/** Channels per shard, and the max/min ratio. */
function spread(channels: string[], shards = 3): { counts: number[]; ratio: number } {
  const counts = new Array(shards).fill(0);
  for (const c of channels) counts[shardOf(slot(c), shards)]++;
  return { counts, ratio: Math.max(...counts) / Math.min(...counts) };
}

// Deterministic ids of two shapes real deployments use: sequential numbers and random-looking hex.
let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const hex = () => Array.from({ length: 16 }, () => Math.floor(rand() * 16).toString(16)).join("");
const users = [...Array.from({ length: 5000 }, (_, i) => `${100000 + i}`), ...Array.from({ length: 5000 }, hex)];
const rooms = [...Array.from({ length: 500 }, (_, i) => `room${i}`), ...Array.from({ length: 500 }, hex)];

test("CRC16 slots match Redis's (CLUSTER KEYSLOT)", () => {
  expect(crc16("123456789")).toBe(0x31c3);
  expect(slot("chat:{chat:}a")).toBe(5312); // redis-cli cluster keyslot 'chat:{chat:}a'
  expect(slot("foo{}{bar}")).toBe(crc16("foo{}{bar}") % 16384);
});

test("a plain Redis keeps the untagged names", () => {
  const k = new Keys("chat:");
  expect(k.userChannel("alice")).toBe("chat:u:alice");
  expect(k.topicChannel("stage")).toBe("chat:t:stage");
  expect(k.nodes()).toBe("chat:p:nodes");
  expect(k.deskQueue("g")).toBe("chat:d:q:g");
  expect(k.loginAttempts("a|1.2.3.4")).toBe("chat:l:a|1.2.3.4");
  expect(k.channelId("chat:u:alice")).toEqual({ user: "alice" });
  expect(k.channelId("chat:t:stage")).toEqual({ topic: "stage" });
  expect(k.channelId("chat:x:users")).toBeUndefined();
});

test("on a cluster every state key is in one slot, so every script touches one slot", () => {
  const k = new Keys("chat:", true);
  const state = [
    k.nodes(), k.userNodes("alice"), k.nodeUsers("n1"), k.role("host"), k.room("stage"), k.nodeRooms("n1"), k.idSlot(7), k.sweepLock("n1"),
    k.loginAttempts("x"), k.deskAgent("a"), k.deskAgentNodes("a"), k.deskLoad("a"), k.deskGuest("g"), k.deskGuestNodes("g"),
    k.deskGroupAgents("grp"), k.deskFree("grp"), k.deskQueue("grp"), k.deskNodeAgents("n1"), k.deskNodeGuests("n1"), k.deskNodes(),
    k.deskVersion(), k.consoleSnapshot("n1"), k.consoleHistory("n1"), k.consoleWants(), k.consoleUser("alice"),
    // the prefixes scripts build key names from (presence sweep, desk HEAD)
    k.userNodes(""), k.role(""), k.room(""), k.deskAgent(""), k.deskQueue(""),
  ];
  expect(new Set(state.map(slot)).size).toBe(1);
  for (const key of state) expect(key.startsWith("chat:{chat:}")).toBe(true);
  // Another prefix, another slot (deployments sharing a cluster do not share a hot slot by default).
  expect(slot(new Keys("other:", true).nodes())).not.toBe(slot(k.nodes()));
  // Channels carry their own id as the tag, and map back to it (ids with braces too).
  expect(k.userChannel("alice")).toBe("chat:u:{alice}");
  expect(slot(k.userChannel("alice"))).toBe(crc16("alice") % 16384);
  for (const id of ["alice", "a{b", "}x", "a}b{c", ""]) {
    expect(k.channelId(k.userChannel(id))).toEqual({ user: id });
    expect(k.channelId(k.topicChannel(id))).toEqual({ topic: id });
  }
  expect(k.channelId(k.usersChannel())).toBeUndefined();
});

test("10,000 user channels and 1,000 room channels spread evenly over 3 shards; plain {0}..{N} bucket tags skew", () => {
  const k = new Keys("chat:", true);
  const u = spread(users.map((id) => k.userChannel(id)));
  const r = spread(rooms.map((id) => k.topicChannel(id)));
  const both = spread([...users.map((id) => k.userChannel(id)), ...rooms.map((id) => k.topicChannel(id))]);
  // The usual alternative: N buckets tagged {0}..{N-1}, a channel in bucket hash(id) mod N.
  const bucketed = (n: number) => spread(users.map((id) => `chat:u:{${crc16(id) % n}}${id}`));
  const b16 = bucketed(16);
  const b64 = bucketed(64);
  console.log(
    [
      `user channels (10,000) per shard: ${u.counts.join(" / ")}, max/min ${u.ratio.toFixed(3)}`,
      `room channels (1,000) per shard: ${r.counts.join(" / ")}, max/min ${r.ratio.toFixed(3)}`,
      `all 11,000 channels per shard: ${both.counts.join(" / ")}, max/min ${both.ratio.toFixed(3)}`,
      `plain {0}..{15} buckets: ${b16.counts.join(" / ")}, max/min ${b16.ratio.toFixed(3)}`,
      `plain {0}..{63} buckets: ${b64.counts.join(" / ")}, max/min ${b64.ratio.toFixed(3)}`,
    ].join("\n"),
  );
  expect(u.ratio).toBeLessThan(1.1);
  expect(r.ratio).toBeLessThan(1.25);
  expect(b16.ratio).toBeGreaterThan(u.ratio);
});

test("REDIS_URL with several URLs, or REDIS_CLUSTER=1, selects the cluster client and tagged keys", () => {
  const secret = { TOKEN_SECRET: "0123456789abcdef0123456789abcdef" };
  const one = loadConfig({ ...secret, REDIS_URL: "redis://r:6379" });
  expect(one.redisCluster).toBe(false);
  expect(redisTarget(one)).toBe("redis://r:6379");
  const seeds = loadConfig({ ...secret, REDIS_URL: "redis://a:7000, redis://b:7001" });
  expect(seeds.redisCluster).toBe(true);
  expect(redisTarget(seeds)).toEqual({ cluster: ["redis://a:7000", "redis://b:7001"] });
  expect(redisTarget(loadConfig({ ...secret, REDIS_URL: "redis://a:7000", REDIS_CLUSTER: "1" }))).toEqual({ cluster: ["redis://a:7000"] });
  expect(() => loadConfig({ ...secret, REDIS_URL: "redis://a:7000,redis://b:7001", REDIS_CLUSTER: "0" })).toThrow(ConfigError);
  expect(() => loadConfig({ ...secret, REDIS_URL: "redis://a:7000,nope" })).toThrow("REDIS_URL");
  expect(() => loadConfig({ ...secret, REDIS_CLUSTER: "yes" })).toThrow("REDIS_CLUSTER");
});
