// Presence for a cluster, in Redis (key layout in bus/keys.ts). Each node writes only its own entries:
//  - a lease in the `nodes` ZSET (expiry on Redis's clock), renewed every PRESENCE_TTL_SEC / 3 seconds;
//  - per user: the set of nodes it is connected to, and the node's user → role hash (what to clean);
//  - per role: one set of online users, sampled with SRANDMEMBER;
//  - per room: a hash node → that node's member count.
// Readers count only entries of nodes whose lease holds, so a node killed with `kill -9` stops counting
// PRESENCE_TTL_SEC seconds after its last renewal at the latest; the first node to notice the dead lease
// then deletes its entries (under a short lock). Redis's own clock (TIME) is used for leases, so nodes'
// clocks need not agree. After a Redis restart (presence lost) or any reconnect each node writes its state
// again. While Redis is away, reads answer from this node's own users and rooms.
import type Redis from "ioredis";
import type { Logger } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient } from "../bus/redis.ts";
import { metric } from "../core/metrics.ts";
import type { Presence } from "./presence.ts";

const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
// KEYS[1] = nodes ZSET; true when node ARGV-given is alive
const ALIVE = `local function alive(node) local e = redis.call('ZSCORE', KEYS[1], node) return e and tonumber(e) > now end`;

const scripts = {
  // KEYS: nodes, slot key | ARGV: node, ttl ms → dead nodes (first "!<holder>" when another node took our id slot)
  heartbeat: {
    numberOfKeys: 2,
    lua: `${NOW}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local holder = redis.call('GET', KEYS[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if holder == false or holder == ARGV[1] then redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]) * 4)
else table.insert(dead, 1, '!' .. holder) end
return dead`,
  },
  // KEYS: nodes, user nodes set, node users hash, role set | ARGV: node, user, role
  down: {
    numberOfKeys: 4,
    lua: `${NOW} ${ALIVE}
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[2])
for _, n in ipairs(redis.call('SMEMBERS', KEYS[2])) do if alive(n) then return 0 end end
redis.call('SREM', KEYS[4], ARGV[2])
return 1`,
  },
  // KEYS: nodes, then one user-nodes set per user → 1/0 per user
  // (no numberOfKeys: the caller passes the key count first)
  online: {
    lua: `${NOW} ${ALIVE}
local out = {}
for i = 2, #KEYS do
  out[i - 1] = 0
  for _, n in ipairs(redis.call('SMEMBERS', KEYS[i])) do if alive(n) then out[i - 1] = 1 break end end
end
return out`,
  },
  // KEYS: nodes, room hash | ARGV: this node (its count is added by the caller) → the other nodes' sum
  roomCount: {
    numberOfKeys: 2,
    lua: `${NOW} ${ALIVE}
local kv = redis.call('HGETALL', KEYS[2])
local sum = 0
for i = 1, #kv, 2 do if kv[i] ~= ARGV[1] and alive(kv[i]) then sum = sum + tonumber(kv[i + 1]) end end
return sum`,
  },
  // KEYS: nodes, node users hash, node rooms set | ARGV: dead node, and the key prefixes of user-nodes
  // sets, role sets and room hashes (keys.ts builds them)
  sweep: {
    numberOfKeys: 3,
    lua: `${NOW} ${ALIVE}
local kv = redis.call('HGETALL', KEYS[2])
for i = 1, #kv, 2 do
  local nodes = ARGV[2] .. kv[i]
  redis.call('SREM', nodes, ARGV[1])
  local left = false
  for _, n in ipairs(redis.call('SMEMBERS', nodes)) do if alive(n) then left = true break end end
  if not left then redis.call('SREM', ARGV[3] .. kv[i + 1], kv[i]) end
end
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('HDEL', ARGV[4] .. room, ARGV[1]) end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return #kv / 2`,
  },
};

type Scripted = Redis & {
  heartbeat(nodes: string, slot: string, node: string, ttlMs: number): Promise<string[]>;
  down(nodes: string, userNodes: string, nodeUsers: string, role: string, node: string, user: string, roleName: string): Promise<number>;
  online(n: number, ...keys: string[]): Promise<number[]>;
  roomCount(nodes: string, room: string, node: string): Promise<number>;
  sweep(nodes: string, nodeUsers: string, nodeRooms: string, dead: string, userNodes: string, role: string, room: string): Promise<number>;
};

const mSwept = metric("chat_presence_nodes_swept_total", "Dead nodes whose presence entries this node removed");
const mErrors = metric("chat_presence_errors_total", "Presence writes or reads that failed");

export class RedisPresence implements Presence {
  private readonly users = new Map<string, string>();
  private readonly rooms = new Map<string, number>();
  private beatTimer: ReturnType<typeof setInterval> | undefined;
  private everReady = false;
  private closed = false;

  private constructor(
    private readonly r: Scripted,
    private readonly keys: Keys,
    private readonly node: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
    /** this node's id slot (message id node bits) */
    readonly slot: number,
  ) {}

  /**
   * Connects, claims an id slot (the 10 node bits of this node's message ids: unique among live nodes),
   * and starts the lease. `preferredSlot` is tried first, then the following ones.
   */
  static async connect(url: string, keys: Keys, node: string, ttlSec: number, preferredSlot: number, log: Logger): Promise<RedisPresence> {
    // While Redis is away, reads fail at once and are answered from this node's own knowledge (below)
    // instead of waiting: local traffic must not stall on presence. Writes are redone on reconnect.
    const r = redisClient(url, "presence", log, false) as Scripted;
    for (const [name, s] of Object.entries(scripts)) r.defineCommand(name, s);
    await r.connect();
    const ttlMs = ttlSec * 1000;
    let slot = -1;
    for (let i = 0; i < 1024 && slot < 0; i++) {
      const s = (preferredSlot + i) & 1023;
      if ((await r.set(keys.idSlot(s), node, "PX", ttlMs * 4, "NX")) === "OK") slot = s;
    }
    if (slot < 0) throw new Error("all 1024 id slots are held: too many live nodes on this Redis prefix");
    const p = new RedisPresence(r, keys, node, ttlMs, log, slot);
    // A previous process with this NODE_ID (restarted, or killed) left entries this one does not hold.
    await p.sweepNode(node);
    await p.beat();
    p.everReady = true;
    p.beatTimer = setInterval(() => void p.beat(), Math.max(200, Math.floor(ttlMs / 3)));
    r.on("ready", () => {
      // A reconnect: Redis may have restarted empty. Write this node's whole state again.
      if (p.everReady && !p.closed) void p.rewrite();
    });
    return p;
  }

  userUp(userId: string, role: string): Promise<void> {
    this.users.set(userId, role);
    return this.writeUser(userId, role);
  }

  async userDown(userId: string, role: string): Promise<void> {
    this.users.delete(userId);
    const k = this.keys;
    await this.r.down(k.nodes(), k.userNodes(userId), k.nodeUsers(this.node), k.role(role), this.node, userId, role).catch(this.failed);
  }

  async isOnline(userId: string): Promise<boolean> {
    if (this.users.has(userId)) return true;
    return (await this.onlineOf([userId])).has(userId);
  }

  async onlineOf(userIds: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    const remote = userIds.filter((u) => (this.users.has(u) ? (out.add(u), false) : true));
    try {
      for (let i = 0; i < remote.length; i += 500) {
        const chunk = remote.slice(i, i + 500);
        const flags = await this.r.online(chunk.length + 1, this.keys.nodes(), ...chunk.map((u) => this.keys.userNodes(u)));
        chunk.forEach((u, j) => flags[j] && out.add(u));
      }
    } catch (e) {
      this.failed(e); // Redis away: this node's users only
    }
    return out;
  }

  roomDelta(room: string, delta: number): Promise<void> {
    const n = (this.rooms.get(room) ?? 0) + delta;
    if (n <= 0) this.rooms.delete(room);
    else this.rooms.set(room, n);
    // Written at once (auto-pipelined with the rest of this tick), so a count read after a join reply
    // on any node includes that join.
    return this.writeRoom(room);
  }

  async roomCount(room: string): Promise<number> {
    let others = 0;
    try {
      others = Number(await this.r.roomCount(this.keys.nodes(), this.keys.room(room), this.node));
    } catch (e) {
      this.failed(e); // Redis away: this node's members only
    }
    return others + (this.rooms.get(room) ?? 0);
  }

  async sampleRole(role: string, n: number): Promise<string[]> {
    if (n <= 0) return [];
    // SRANDMEMBER with a positive count returns distinct members; dead nodes' users not yet swept are
    // filtered out by the lease check.
    let picked: string[];
    try {
      picked = await this.r.srandmember(this.keys.role(role), n * 2 + 8);
    } catch (e) {
      this.failed(e); // Redis away: this node's users of the role
      picked = [...this.users].filter(([, r]) => r === role).map(([u]) => u);
      for (let i = picked.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [picked[i], picked[j]] = [picked[j]!, picked[i]!];
      }
    }
    const alive = await this.onlineOf(picked);
    return picked.filter((u) => alive.has(u)).slice(0, n);
  }

  /** Stops the lease and removes this node's entries at once (a clean shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.beatTimer);
    try {
      const k = this.keys;
      await this.sweepNode(this.node);
      await this.r.del(k.idSlot(this.slot));
    } catch {}
    await this.r.quit().catch(() => {});
  }

  private readonly failed = (e: unknown) => {
    mErrors.value++;
    this.log.debug(`presence: ${(e as Error).message}`);
  };

  private async writeUser(userId: string, role: string): Promise<void> {
    const k = this.keys;
    await Promise.all([
      this.r.sadd(k.userNodes(userId), this.node),
      this.r.hset(k.nodeUsers(this.node), userId, role),
      this.r.sadd(k.role(role), userId),
    ]).catch(this.failed);
  }

  private async writeRoom(room: string): Promise<void> {
    const k = this.keys;
    const n = this.rooms.get(room);
    await Promise.all(
      n
        ? [this.r.hset(k.room(room), this.node, n), this.r.sadd(k.nodeRooms(this.node), room)]
        : [this.r.hdel(k.room(room), this.node), this.r.srem(k.nodeRooms(this.node), room)],
    ).catch(this.failed);
  }

  /** Renews the lease (and the id slot) and cleans up after nodes whose lease ran out. */
  private async beat(): Promise<void> {
    if (this.closed) return;
    try {
      const dead = await this.r.heartbeat(this.keys.nodes(), this.keys.idSlot(this.slot), this.node, this.ttlMs);
      for (const d of dead) {
        if (d.startsWith("!")) this.log.error(`presence: id slot ${this.slot} is held by ${d.slice(1)}: restart this node to claim another`);
        else if (d !== this.node) await this.sweep(d);
      }
    } catch (e) {
      this.failed(e);
    }
  }

  private async sweep(dead: string): Promise<void> {
    const k = this.keys;
    if ((await this.r.set(k.sweepLock(dead), this.node, "EX", 30, "NX")) !== "OK") return;
    const n = await this.sweepNode(dead);
    mSwept.value++;
    this.log.info(`presence: node ${dead} is gone; removed its ${n} users`);
  }

  private sweepNode(node: string): Promise<number> {
    const k = this.keys;
    return this.r.sweep(k.nodes(), k.nodeUsers(node), k.nodeRooms(node), node, k.userNodes(""), k.role(""), k.room(""));
  }

  /** After a reconnect: drop whatever this node wrote before (writes failed meanwhile), then write it all again. */
  private async rewrite(): Promise<void> {
    try {
      await this.sweepNode(this.node);
    } catch (e) {
      return this.failed(e);
    }
    await this.beat();
    for (const [u, role] of this.users) void this.writeUser(u, role);
    for (const room of this.rooms.keys()) void this.writeRoom(room);
  }
}
