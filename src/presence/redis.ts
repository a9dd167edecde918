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
//
// These leases are the cluster's only liveness mechanism (`NodeLeases`): other state a node keeps in Redis
// (the desk's routing state, desk/redis.ts) is swept through `onNodeGone`, called by the node that claims a
// dead node's sweep before the presence entries go, and written again through `onLeaseLost`, called when a
// renewal finds this node's own lease gone (Redis restarted empty, or this node was swept after a stall).
import type { Logger } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient, type RedisTarget } from "../bus/redis.ts";
import { metric } from "../core/metrics.ts";
import type { NodeLeases, Presence } from "./presence.ts";
import { scripts, type Scripted } from "./redis-scripts.ts";

const mSwept = metric("chat_presence_nodes_swept_total", "Dead nodes whose presence entries this node removed");
const mErrors = metric("chat_presence_errors_total", "Presence writes or reads that failed");

export class RedisPresence implements Presence, NodeLeases {
  private readonly users = new Map<string, string>();
  private readonly rooms = new Map<string, number>();
  private readonly goneFns = new Set<(node: string) => Promise<void>>();
  private readonly lostFns = new Set<() => Promise<void>>();
  private readonly usersGoneFns = new Set<(users: string[]) => void>();
  /** lease-lost listeners not yet through since this node's lease was last found gone */
  private readonly lostPending = new Set<() => Promise<void>>();
  private beatTimer: ReturnType<typeof setInterval> | undefined;
  private everReady = false;
  private closed = false;
  /** a Redis Cluster node was lost: write this node's entries again at the next renewal that goes through */
  private rewriteDue = false;

  private constructor(
    private readonly r: Scripted,
    private readonly keys: Keys,
    readonly node: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
    /** this node's id slot (message id node bits) */
    readonly slot: number,
  ) {}

  /**
   * Connects, claims an id slot (the 10 node bits of this node's message ids: unique among live nodes),
   * and starts the lease. `preferredSlot` is tried first, then the following ones.
   */
  static async connect(url: RedisTarget, keys: Keys, node: string, ttlSec: number, preferredSlot: number, log: Logger): Promise<RedisPresence> {
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
    await p.sweepNode(node, true);
    await p.beat();
    p.everReady = true;
    p.beatTimer = setInterval(() => void p.beat(), Math.max(200, Math.floor(ttlMs / 3)));
    r.on("ready", () => {
      // A reconnect: Redis may have restarted empty. Write this node's whole state again.
      if (p.everReady && !p.closed) void p.rewrite();
    });
    // A Redis Cluster node dropped (a master failed over, say the one holding the state keys): its promoted replica
    // may lack the last writes (replication is asynchronous). Written again once a renewal goes through.
    r.on("-node", () => {
      if (p.everReady && !p.closed) p.rewriteDue = true;
    });
    return p;
  }

  async userUp(userId: string, role: string): Promise<boolean> {
    this.users.set(userId, role);
    const k = this.keys;
    // One script: written, and whether another live node held the user already (then no online notice).
    // Redis away: this node's own knowledge (its first connection of the user) decides.
    const first = await this.r.up(k.nodes(), k.userNodes(userId), k.nodeUsers(this.node), k.role(role), this.node, userId, role).catch(this.failed);
    return first === undefined || Number(first) === 1;
  }

  async userDown(userId: string, role: string): Promise<boolean> {
    this.users.delete(userId);
    const k = this.keys;
    const last = await this.r.down(k.nodes(), k.userNodes(userId), k.nodeUsers(this.node), k.role(role), this.node, userId, role).catch(this.failed);
    return last === undefined || Number(last) === 1;
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

  onNodeGone(fn: (node: string) => Promise<void>): () => void {
    this.goneFns.add(fn);
    return () => void this.goneFns.delete(fn);
  }

  onLeaseLost(fn: () => Promise<void>): () => void {
    this.lostFns.add(fn);
    return () => {
      this.lostFns.delete(fn);
      this.lostPending.delete(fn);
    };
  }

  /** Stops the lease and removes this node's entries at once (a clean shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.beatTimer);
    try {
      const k = this.keys;
      await this.sweepNode(this.node, true);
      await this.r.del(k.idSlot(this.slot));
    } catch (e) {
      // Left for the other nodes to sweep once this node's lease runs out.
      this.log.warn(`presence: could not remove this node's entries at shutdown: ${(e as Error).message}`);
    }
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

  /**
   * Renews the lease (and the id slot). When the lease was gone, writes this node's entries again and tells
   * the lease-lost listeners; then cleans up after nodes whose lease ran out.
   */
  private async beat(): Promise<void> {
    if (this.closed) return;
    try {
      const [fresh, holder, ...dead] = await this.r.heartbeat(this.keys.nodes(), this.keys.idSlot(this.slot), this.node, this.ttlMs);
      if (this.rewriteDue) {
        this.rewriteDue = false;
        return await this.rewrite();
      }
      if (holder) this.log.error(`presence: id slot ${this.slot} is held by ${holder}: restart this node to claim another`);
      // The first beat of connect() writes the lease anew: nothing of this node is in Redis to restore yet.
      if (fresh && this.everReady) this.leaseLost();
      if (this.lostPending.size) await this.tellLeaseLost();
      for (const d of dead) if (d !== this.node) await this.sweep(d).catch(this.failed);
    } catch (e) {
      this.failed(e);
    }
  }

  private leaseLost(): void {
    this.log.warn(`presence: the lease of this node was gone; writing its ${this.users.size} users and ${this.rooms.size} rooms again`);
    for (const [u, role] of this.users) void this.writeUser(u, role);
    for (const room of this.rooms.keys()) void this.writeRoom(room);
    for (const fn of this.lostFns) this.lostPending.add(fn);
  }

  private async tellLeaseLost(): Promise<void> {
    await Promise.all(
      [...this.lostPending].map((fn) =>
        fn().then(
          () => void this.lostPending.delete(fn),
          (e) => this.log.warn(`presence: restoring after a lost lease failed (retried at the next renewal): ${(e as Error).message}`),
        ),
      ),
    );
  }

  /**
   * Calls `fn`, on the node that swept a dead node, with the users that node held who are now online nowhere (their
   * offline notices are due: nobody closed their connections). Returns a function that stops the calls.
   */
  onUsersGone(fn: (users: string[]) => void): () => void {
    this.usersGoneFns.add(fn);
    return () => void this.usersGoneFns.delete(fn);
  }

  /** A dead node: its other state first (the node-gone listeners), then its presence entries; once, under a lock. */
  private async sweep(dead: string): Promise<void> {
    const k = this.keys;
    if ((await this.r.set(k.sweepLock(dead), this.node, "EX", 30, "NX")) !== "OK") return;
    const held = this.usersGoneFns.size ? await this.r.hkeys(k.nodeUsers(dead)).catch(() => [] as string[]) : [];
    try {
      for (const fn of this.goneFns) await fn(dead);
    } catch (e) {
      // Left for the next renewal of any node to sweep again.
      await this.r.del(k.sweepLock(dead)).catch(() => {});
      throw e;
    }
    const n = await this.sweepNode(dead, false);
    if (n < 0) return; // its lease holds again: it was stalled, not dead
    mSwept.value++;
    this.log.info(`presence: node ${dead} is gone; removed its ${n} users`);
    if (held.length) {
      const still = await this.onlineOf(held);
      const gone = held.filter((u) => !still.has(u));
      if (gone.length) for (const fn of this.usersGoneFns) fn(gone);
    }
  }

  private sweepNode(node: string, force: boolean): Promise<number> {
    const k = this.keys;
    return this.r.sweep(k.nodes(), k.nodeUsers(node), k.nodeRooms(node), node, k.userNodes(""), k.role(""), k.room(""), force ? "1" : "");
  }

  /**
   * After a reconnect: drop whatever this node wrote before (writes failed meanwhile), then renew the lease,
   * which is then new, so the beat writes it all again and tells the lease-lost listeners.
   */
  private async rewrite(): Promise<void> {
    try {
      await this.sweepNode(this.node, true);
    } catch (e) {
      return this.failed(e);
    }
    await this.beat();
  }
}
