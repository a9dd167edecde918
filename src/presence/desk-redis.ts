// Desk routing state for a cluster, in Redis (key layout in bus/keys.ts, `d:` keys). Every call is one Lua
// script, so a decision — pick the agent and count the guest on it, or queue the guest — is atomic
// across nodes: two guests routed at the same moment on two nodes are serialised by Redis, and a place is
// never given twice.
//
// Liveness follows the presence leases (presence/redis.ts: the `nodes` ZSET, expiry on Redis's clock).
// Each node writes per agent and per guest its own session count (`d:an:<agent>`, `d:gn:<guest>`: node →
// count) and the sets of agents and guests it holds (`d:na:<node>`, `d:ng:<node>`). An agent counts as
// online only while one of its nodes' leases holds, checked inside every script, so a killed node's agents
// stop being picked or listed the moment its lease runs out. Every PRESENCE_TTL_SEC / 3 each node looks
// for nodes in `d:nodes` whose lease is gone; the first to run the sweep script removes their sessions (one
// atomic script, so a second sweeper finds nothing left): their guests leave the queues and free their agents' places (those groups are then drained, so waiting guests
// are assigned), their agents go offline. A node that finds its own entries gone (Redis restarted empty, or
// it was swept after a stall) writes its sessions again and queues its guests again.
//
// The scripts build keys from prefixes (like the presence sweep), so they need one Redis, not a Redis Cluster.
import type Redis from "ioredis";
import type { Logger } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient } from "../bus/redis.ts";
import type { AgentLive, Assignment, DeskState, GuestLive, Routed } from "../core/desk-state.ts";
import { metric } from "../core/metrics.ts";

/** ARGV[1..14] of every script (key prefixes and this node); a script's own arguments follow, as args[]. */
const HEAD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local NODES, KA, KAN, KL, KG, KGN, KON, KF, KQ, KNA, KNG, KDN, KVER, ME =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local args = {}
for i = 15, #ARGV do args[i - 14] = ARGV[i] end
local function alive(n) local e = redis.call('ZSCORE', NODES, n) return e and tonumber(e) > now end
local function anyAlive(h)
  for _, n in ipairs(redis.call('HKEYS', h)) do if alive(n) then return true end end
  return false
end
local function version()
  local v = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', KVER) or '0')
  if v <= last then v = last + 1 end
  local s = string.format('%.0f', v)
  redis.call('SET', KVER, s)
  return s
end
-- the load of agent a when it can take one more guest of grp, else nil
local function available(a, grp)
  local s = redis.call('HMGET', KA .. a, 'group', 'cap', 'susp')
  if s[1] ~= grp or s[3] == '1' or not anyAlive(KAN .. a) then return nil end
  local load = redis.call('SCARD', KL .. a)
  if load >= tonumber(s[2]) then return nil end
  return load
end
-- keeps agent a in its group's free ZSET (score = load) exactly while it is not suspended and below capacity
local function refresh(a)
  local s = redis.call('HMGET', KA .. a, 'group', 'cap', 'susp')
  if not s[1] then return end
  local load = redis.call('SCARD', KL .. a)
  if s[3] ~= '1' and load < tonumber(s[2]) then redis.call('ZADD', KF .. s[1], load, a)
  else redis.call('ZREM', KF .. s[1], a) end
end
-- the sticky agent when available, else the first live agent of the free ZSET: least load, then least id
-- (members of one score are in byte order); agents of a dead node not yet swept are skipped
local function pick(grp, sticky)
  if sticky and sticky ~= '' and available(sticky, grp) then return sticky end
  local from = 0
  while true do
    local page = redis.call('ZRANGE', KF .. grp, from, from + 15)
    if #page == 0 then return nil end
    for _, a in ipairs(page) do if anyAlive(KAN .. a) then return a end end
    from = from + 16
  end
end
local function assign(g, a)
  redis.call('HSET', KG .. g, 'agent', a, 'last', a)
  redis.call('SADD', KL .. a, g)
  refresh(a)
  return version()
end
local function unassign(g, a)
  redis.call('HDEL', KG .. g, 'agent')
  redis.call('SREM', KL .. a, g)
  refresh(a)
end
local function guestGone(g)
  local s = redis.call('HMGET', KG .. g, 'group', 'agent')
  if s[1] then redis.call('LREM', KQ .. s[1], 0, g) end
  if s[2] then unassign(g, s[2]) end
  redis.call('DEL', KG .. g, KGN .. g)
  return s[1]
end
local function agentGone(a)
  local grp = redis.call('HGET', KA .. a, 'group')
  for _, g in ipairs(redis.call('SMEMBERS', KL .. a)) do
    if redis.call('HGET', KG .. g, 'agent') == a then redis.call('HDEL', KG .. g, 'agent') end
  end
  if grp then
    redis.call('SREM', KON .. grp, a)
    redis.call('ZREM', KF .. grp, a)
  end
  redis.call('DEL', KA .. a, KL .. a, KAN .. a)
end
-- {agent, version ('' when it was assigned before)} or {'', queue position}
local function route(g)
  local s = redis.call('HMGET', KG .. g, 'group', 'agent', 'last')
  if s[2] then return {s[2], ''} end
  local pos = redis.call('LPOS', KQ .. s[1], g)
  if pos then return {'', pos + 1} end
  local a = pick(s[1], s[3])
  if a then return {a, assign(g, a)} end
  return {'', redis.call('RPUSH', KQ .. s[1], g)}
end
`;

const scripts: Record<string, string> = {
  // agent, group, capacity, sessions
  agentUp: `
local a, grp = args[1], args[2]
if not anyAlive(KAN .. a) then agentGone(a) end
local old = redis.call('HGET', KA .. a, 'group')
if old and old ~= grp then
  redis.call('SREM', KON .. old, a)
  redis.call('ZREM', KF .. old, a)
end
redis.call('HSET', KA .. a, 'group', grp, 'cap', args[3])
redis.call('HSETNX', KA .. a, 'susp', '0')
redis.call('HINCRBY', KAN .. a, ME, tonumber(args[4]))
redis.call('SADD', KON .. grp, a)
refresh(a)
redis.call('SADD', KNA .. ME, a)
redis.call('SADD', KDN, ME)
return 1`,
  // agent
  agentDown: `
local a = args[1]
if redis.call('HINCRBY', KAN .. a, ME, -1) <= 0 then
  redis.call('HDEL', KAN .. a, ME)
  redis.call('SREM', KNA .. ME, a)
end
if not anyAlive(KAN .. a) then agentGone(a) end
return 1`,
  // agent, "1" | "0" → its group, or nil when it is not online
  suspend: `
local a = args[1]
local grp = redis.call('HGET', KA .. a, 'group')
if not grp or not anyAlive(KAN .. a) then return false end
redis.call('HSET', KA .. a, 'susp', args[2])
refresh(a)
return grp`,
  // guest, group, last agent ('' = none), sessions, "route" | "queue" → route() and the freed group
  guestUp: `
local g, grp = args[1], args[2]
local freed = ''
local cur = redis.call('HGET', KG .. g, 'group')
if cur and (cur ~= grp or not anyAlive(KGN .. g)) then freed = guestGone(g) or '' end
redis.call('HSET', KG .. g, 'group', grp)
if args[3] ~= '' then redis.call('HSETNX', KG .. g, 'last', args[3]) end
redis.call('HINCRBY', KGN .. g, ME, tonumber(args[4]))
redis.call('SADD', KNG .. ME, g)
redis.call('SADD', KDN, ME)
if args[5] == 'queue' then
  if not redis.call('HGET', KG .. g, 'agent') and not redis.call('LPOS', KQ .. grp, g) then redis.call('RPUSH', KQ .. grp, g) end
  return {'', 0, freed}
end
local r = route(g)
r[3] = freed
return r`,
  // guest → its group once it has no session left anywhere
  guestDown: `
local g = args[1]
if redis.call('HINCRBY', KGN .. g, ME, -1) <= 0 then
  redis.call('HDEL', KGN .. g, ME)
  redis.call('SREM', KNG .. ME, g)
end
if redis.call('EXISTS', KG .. g) == 1 and not anyAlive(KGN .. g) then return guestGone(g) or false end
return false`,
  // group, max → guest, agent, version, guest, agent, version, ...
  drain: `
local grp, max = args[1], tonumber(args[2])
local out = {}
while #out < max * 3 and pick(grp) do
  local g = redis.call('LPOP', KQ .. grp)
  if not g then break end
  local s = redis.call('HMGET', KG .. g, 'group', 'agent', 'last')
  if s[1] == grp and not s[2] and anyAlive(KGN .. g) then
    local a = pick(grp, s[3])
    table.insert(out, g)
    table.insert(out, a)
    table.insert(out, assign(g, a))
  end
end
return out`,
  // guest, from, to, group → version | 'unavailable' | 'conflict'
  transfer: `
local g, from, to, grp = args[1], args[2], args[3], args[4]
if to == from or redis.call('HGET', KA .. to, 'group') ~= grp or not anyAlive(KAN .. to) then return 'unavailable' end
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if s[1] then
  if s[2] and s[2] ~= from then return 'conflict' end
  if s[2] then unassign(g, from) else redis.call('LREM', KQ .. s[1], 0, g) end
  return assign(g, to)
end
return version()`,
  // guest, agent, last ('' = keep) → its group, or nil
  release: `
local g, a = args[1], args[2]
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if not s[1] or s[2] ~= a then return false end
unassign(g, a)
if args[3] ~= '' then redis.call('HSET', KG .. g, 'last', args[3]) end
redis.call('LPUSH', KQ .. s[1], g)
return s[1]`,
  // guest → {online 0/1, agent or '', position or 0}
  guest: `
local g = args[1]
local s = redis.call('HMGET', KG .. g, 'group', 'agent')
if not s[1] or not anyAlive(KGN .. g) then return {0, '', 0} end
if s[2] then return {1, s[2], 0} end
local pos = redis.call('LPOS', KQ .. s[1], g)
return {1, '', pos and pos + 1 or 0}`,
  // guests... → 1/0 each
  online: `
local out = {}
for i, g in ipairs(args) do
  out[i] = (redis.call('EXISTS', KG .. g) == 1 and anyAlive(KGN .. g)) and 1 or 0
end
return out`,
  // group → agent, suspended, load, ... of its online agents
  agents: `
local grp = args[1]
local out = {}
for _, a in ipairs(redis.call('SMEMBERS', KON .. grp)) do
  local s = redis.call('HMGET', KA .. a, 'group', 'susp')
  if s[1] == grp and anyAlive(KAN .. a) then
    table.insert(out, a)
    table.insert(out, s[2] or '0')
    table.insert(out, redis.call('SCARD', KL .. a))
  end
end
return out`,
  // group → its waiting guests that are online, first first
  queue: `
local out = {}
for _, g in ipairs(redis.call('LRANGE', KQ .. args[1], 0, -1)) do if anyAlive(KGN .. g) then table.insert(out, g) end end
return out`,
  // → {this node listed in d:nodes 0/1, this node's lease holds 0/1, dead nodes...}
  check: `
local out = {redis.call('SISMEMBER', KDN, ME), alive(ME) and 1 or 0}
for _, n in ipairs(redis.call('SMEMBERS', KDN)) do if n ~= ME and not alive(n) then table.insert(out, n) end end
return out`,
  // node → the groups where places came free; nil when the node had no entries, or its lease holds again
  sweep: `
local dead = args[1]
if (dead ~= ME and alive(dead)) or redis.call('SREM', KDN, dead) == 0 then return false end
local freed, out = {}, {}
for _, g in ipairs(redis.call('SMEMBERS', KNG .. dead)) do
  redis.call('HDEL', KGN .. g, dead)
  if redis.call('EXISTS', KG .. g) == 1 and not anyAlive(KGN .. g) then
    local grp = guestGone(g)
    if grp then freed[grp] = true end
  end
end
for _, a in ipairs(redis.call('SMEMBERS', KNA .. dead)) do
  redis.call('HDEL', KAN .. a, dead)
  if not anyAlive(KAN .. a) then agentGone(a) end
end
redis.call('DEL', KNG .. dead, KNA .. dead)
for grp in pairs(freed) do table.insert(out, grp) end
return out`,
};

type Script = (...args: (string | number)[]) => Promise<unknown>;

const mSwept = metric("chat_desk_nodes_swept_total", "Dead nodes whose desk sessions this node removed");
const mErrors = metric("chat_desk_state_errors_total", "Desk routing state calls to Redis that failed");

export class RedisDeskState implements DeskState {
  /** this node's sessions, written again when Redis lost them */
  private readonly localAgents = new Map<string, { group: string; capacity: number; sessions: number }>();
  private readonly localGuests = new Map<string, { group: string; last?: string; sessions: number }>();
  private readonly head: string[];
  private freed: (group: string) => void = () => {};
  private pendingFreed: string[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;
  private closed = false;

  private constructor(
    private readonly r: Redis,
    keys: Keys,
    private readonly node: string,
    private readonly log: Logger,
  ) {
    this.head = [
      keys.nodes(),
      keys.deskAgent(""),
      keys.deskAgentNodes(""),
      keys.deskLoad(""),
      keys.deskGuest(""),
      keys.deskGuestNodes(""),
      keys.deskGroupAgents(""),
      keys.deskFree(""),
      keys.deskQueue(""),
      keys.deskNodeAgents(""),
      keys.deskNodeGuests(""),
      keys.deskNodes(),
      keys.deskVersion(),
      node,
    ];
  }

  /**
   * Connects, removes what a previous process with this NODE_ID left (its lease is this node's now, so
   * nobody else would), and starts looking for dead nodes every `ttlSec / 3`.
   */
  static async connect(url: string, keys: Keys, node: string, ttlSec: number, log: Logger): Promise<RedisDeskState> {
    const r = redisClient(url, "desk", log);
    for (const [name, body] of Object.entries(scripts)) r.defineCommand(`desk_${name}`, { numberOfKeys: 0, lua: HEAD + body });
    await r.connect();
    const s = new RedisDeskState(r, keys, node, log);
    // Its guests' places are given out once the desk listens (onFreed).
    s.pendingFreed = ((await s.call("sweep", node)) as string[] | null) ?? [];
    s.timer = setInterval(() => void s.check(), Math.max(200, Math.floor((ttlSec * 1000) / 3)));
    return s;
  }

  // The local copy counts a session once Redis has it (so a rewrite meanwhile does not write it twice),
  // and forgets it before Redis does.
  async agentUp(agent: string, group: string, capacity: number): Promise<void> {
    await this.call("agentUp", agent, group, capacity, 1);
    const l = this.localAgents.get(agent);
    if (l) Object.assign(l, { group, capacity, sessions: l.sessions + 1 });
    else this.localAgents.set(agent, { group, capacity, sessions: 1 });
  }

  async agentDown(agent: string): Promise<void> {
    const l = this.localAgents.get(agent);
    if (l && --l.sessions <= 0) this.localAgents.delete(agent);
    await this.call("agentDown", agent);
  }

  async suspend(agent: string, suspended: boolean): Promise<string | undefined> {
    return ((await this.call("suspend", agent, suspended ? "1" : "0")) as string | null) ?? undefined;
  }

  async guestUp(guest: string, group: string, last: string | undefined): Promise<Routed> {
    const [agent, x, freed] = (await this.call("guestUp", guest, group, last ?? "", 1, "route")) as [string, string | number, string];
    const l = this.localGuests.get(guest);
    if (l && l.group === group) l.sessions++;
    else this.localGuests.set(guest, { group, last, sessions: 1 });
    if (agent) this.localGuests.get(guest)!.last = agent;
    const out: Routed = agent ? { agent, ...(x !== "" ? { v: Number(x) } : {}) } : { position: Number(x) };
    if (freed && freed !== group) out.freed = freed;
    return out;
  }

  async guestDown(guest: string): Promise<string | undefined> {
    const l = this.localGuests.get(guest);
    if (l && --l.sessions <= 0) this.localGuests.delete(guest);
    return ((await this.call("guestDown", guest)) as string | null) ?? undefined;
  }

  async drain(group: string, max: number): Promise<Assignment[]> {
    const flat = (await this.call("drain", group, max)) as string[];
    const out: Assignment[] = [];
    for (let i = 0; i < flat.length; i += 3) out.push({ guest: flat[i]!, agent: flat[i + 1]!, v: Number(flat[i + 2]) });
    return out;
  }

  async transfer(guest: string, from: string, to: string, group: string): Promise<number | "unavailable" | "conflict"> {
    const r = (await this.call("transfer", guest, from, to, group)) as string;
    return r === "unavailable" || r === "conflict" ? r : Number(r);
  }

  async release(guest: string, agent: string, last?: string): Promise<string | undefined> {
    return ((await this.call("release", guest, agent, last ?? "")) as string | null) ?? undefined;
  }

  async guest(guest: string): Promise<GuestLive> {
    const [online, agent, position] = (await this.call("guest", guest)) as [number, string, number];
    if (!online) return { online: false };
    return { online: true, agent: agent || undefined, position: position || undefined };
  }

  async onlineGuests(guests: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < guests.length; i += 500) {
      const chunk = guests.slice(i, i + 500);
      const flags = (await this.call("online", ...chunk)) as number[];
      chunk.forEach((g, j) => flags[j] && out.add(g));
    }
    return out;
  }

  async agents(group: string): Promise<Map<string, AgentLive>> {
    const flat = (await this.call("agents", group)) as (string | number)[];
    const out = new Map<string, AgentLive>();
    for (let i = 0; i < flat.length; i += 3) out.set(String(flat[i]), { suspended: flat[i + 1] === "1", load: Number(flat[i + 2]) });
    return out;
  }

  async queue(group: string): Promise<string[]> {
    return (await this.call("queue", group)) as string[];
  }

  onFreed(fn: (group: string) => void): void {
    this.freed = fn;
    for (const g of this.pendingFreed.splice(0)) queueMicrotask(() => fn(g));
  }

  async leave(): Promise<string[]> {
    this.closed = true;
    clearInterval(this.timer);
    this.localAgents.clear();
    this.localGuests.clear();
    try {
      return ((await this.call("sweep", this.node)) as string[] | null) ?? [];
    } catch {
      return [];
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.r.quit().catch(() => {});
  }

  private async call(name: string, ...args: (string | number)[]): Promise<unknown> {
    try {
      return await (this.r as unknown as Record<string, Script>)[`desk_${name}`]!(...this.head, ...args);
    } catch (e) {
      mErrors.value++;
      throw e;
    }
  }

  /** Sweeps nodes whose lease ran out, and writes this node's sessions again when Redis lost them. */
  private async check(): Promise<void> {
    if (this.checking || this.closed) return;
    this.checking = true;
    try {
      const [listed, alive, ...dead] = (await this.call("check")) as [number, number, ...string[]];
      if (!listed && alive && (this.localAgents.size || this.localGuests.size)) await this.rewrite();
      for (const d of dead) {
        // Atomic and done once: a node that sweeps it second finds nothing left.
        const groups = (await this.call("sweep", d)) as string[] | null;
        if (!groups) continue;
        mSwept.value++;
        this.log.info(`desk: node ${d} is gone; its sessions were removed`);
        for (const g of groups) this.freed(g);
      }
    } catch (e) {
      this.log.debug(`desk check: ${(e as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  /** This node's agents and guests, written again; guests wait in their queues, which are then drained. */
  private async rewrite(): Promise<void> {
    this.log.warn(`desk: routing state of this node was lost; writing ${this.localAgents.size} agents and ${this.localGuests.size} guests again`);
    const groups = new Set<string>();
    for (const [a, l] of this.localAgents) {
      await this.call("agentUp", a, l.group, l.capacity, l.sessions);
      groups.add(l.group);
    }
    for (const [g, l] of this.localGuests) {
      await this.call("guestUp", g, l.group, l.last ?? "", l.sessions, "queue");
      groups.add(l.group);
    }
    for (const g of groups) this.freed(g);
  }
}
