// Desk routing state for a cluster, in Redis (key layout in bus/keys.ts, `d:` keys). Every call is one Lua
// script, so a decision — pick the agent and count the guest on it, or queue the guest — is atomic
// across nodes: two guests routed at the same moment on two nodes are serialised by Redis, and a place is
// never given twice.
//
// Liveness follows the presence leases (presence/redis.ts: the `nodes` ZSET, expiry on Redis's clock).
// Each node writes per agent and per guest its own session count (`d:an:<agent>`, `d:gn:<guest>`: node →
// count) and the sets of agents and guests it holds (`d:na:<node>`, `d:ng:<node>`). An agent counts as
// online only while one of its nodes' leases holds, checked inside every script, so a killed node's agents
// stop being picked or listed the moment its lease runs out. This state runs no timer of its own: it hangs
// off the presence leases (`NodeLeases`). When a node's lease is gone, the node that claims its sweep runs
// this state's sweep script first (`onNodeGone`; one atomic script, so a second run finds nothing left):
// the dead node's guests leave the queues and free their agents' places (those groups are then drained, so
// waiting guests are assigned), its agents go offline. When this node's own lease was found gone (Redis
// restarted empty, or it was swept after a stall: `onLeaseLost`) and its entries are gone with it, it writes
// its sessions again and queues its guests again. The scripts are in redis-scripts.ts.
import type { Logger } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient, type RedisConn, type RedisTarget } from "../bus/redis.ts";
import type { AgentLive, Assignment, DeskState, GuestLive, Routed } from "../core/desk-state.ts";
import { metric } from "../core/metrics.ts";
import type { NodeLeases } from "../presence/presence.ts";
import { deskScripts } from "./redis-scripts.ts";

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
  private unhook: (() => void)[] = [];
  private restoring = false;
  private closed = false;

  private constructor(
    private readonly r: RedisConn,
    keys: Keys,
    private readonly node: string,
    private readonly log: Logger,
  ) {
    this.head = [
      keys.nodes(), // KEYS[1], the routing key (connect)
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
   * Connects, removes what a previous process with this node's id left (the lease is this node's now, so
   * nobody else would), and hooks into this node's leases: dead nodes are swept, and this node's sessions
   * written again when its lease was lost.
   */
  static async connect(url: RedisTarget, keys: Keys, leases: NodeLeases, log: Logger): Promise<RedisDeskState> {
    const r = redisClient(url, "desk", log);
    // KEYS[1] is the presence `nodes` key, which no script reads as a key: it routes the script to the shard
    // holding every state key on a Redis Cluster (they share its hash tag: bus/keys.ts). The scripts build
    // their key names from the prefixes in ARGV (HEAD), all in that same slot.
    for (const [name, lua] of Object.entries(deskScripts)) r.defineCommand(`desk_${name}`, { numberOfKeys: 1, lua });
    await r.connect();
    const s = new RedisDeskState(r, keys, leases.node, log);
    // Its guests' places are given out once the desk listens (onFreed).
    s.pendingFreed = ((await s.call("sweep", leases.node)) as string[] | null) ?? [];
    s.unhook = [leases.onNodeGone((n) => s.nodeGone(n)), leases.onLeaseLost(() => s.leaseLost())];
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
    this.stop();
    this.localAgents.clear();
    this.localGuests.clear();
    try {
      return ((await this.call("sweep", this.node)) as string[] | null) ?? [];
    } catch {
      return [];
    }
  }

  async close(): Promise<void> {
    this.stop();
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

  private stop(): void {
    this.closed = true;
    for (const f of this.unhook.splice(0)) f();
  }

  /** A dead node (its lease ran out): its sessions are removed, and the places they held given out. */
  private async nodeGone(node: string): Promise<void> {
    if (this.closed) return;
    // Atomic and done once: a second run finds nothing left (null), as does a node whose lease holds again.
    const groups = (await this.call("sweep", node)) as string[] | null;
    if (!groups) return;
    mSwept.value++;
    this.log.info(`desk: node ${node} is gone; its sessions were removed`);
    for (const g of groups) this.freed(g);
  }

  /** This node's lease was gone: when its entries went with it, they are written again. */
  private async leaseLost(): Promise<void> {
    if (this.closed || this.restoring || (!this.localAgents.size && !this.localGuests.size)) return;
    this.restoring = true;
    try {
      if (!(await this.call("listed"))) await this.rewrite();
    } finally {
      this.restoring = false;
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
