// The desk's live routing state: which agents are online (with their suspended flag, capacity and the online
// guests each serves), which guests are online, and each group's queue. core/desk.ts makes every decision
// through one of these calls, and each call is atomic: two routing steps, on one node or on two, never see
// each other half done. src/desk/memory.ts serves one node; src/desk/redis.ts a cluster (Lua scripts on
// Redis, node liveness and dead-node sweeps from the presence leases).
//
// A decision that gives a guest to an agent returns a version: strictly increasing over all decisions,
// and on a clock that survives a restart of the state (microseconds of wall time, bumped past the last
// one). The conversation's owner in the store moves only to a newer version (store/desk.ts handOver), so
// when two decisions about one guest reach the store out of order, the store ends as the later one says.

export interface AgentLive {
  suspended: boolean;
  /** online guests this agent serves now */
  load: number;
}

/** An assignment to settle: hand the conversation over at version `v`, then tell both sides. */
export interface Assignment {
  guest: string;
  agent: string;
  v: number;
}

export interface Routed {
  /** the agent serving the guest (newly when `v` is set) */
  agent?: string;
  /** set when this call assigned the guest */
  v?: number;
  /** its place in the group's queue (1 = next) while it waits */
  position?: number;
  /** a group where a place may have come free (the guest came back for another group): drain it */
  freed?: string;
}

export interface GuestLive {
  online: boolean;
  agent?: string;
  position?: number;
}

export interface DeskState {
  /**
   * An agent's session opened on this node. An agent not online anywhere before starts afresh: not
   * suspended, serving nobody. Its group and capacity are refreshed.
   */
  agentUp(agent: string, group: string, capacity: number): Promise<void>;
  /** An agent's session closed on this node. Once none is left anywhere its guests are no longer served. */
  agentDown(agent: string): Promise<void>;
  /** Sets an online agent's suspended flag; resolves to its group, or undefined when it is not online. */
  suspend(agent: string, suspended: boolean): Promise<string | undefined>;
  /**
   * A guest's session opened on this node for `group`: the guest is routed — already served, already
   * waiting, given to `last` (its last agent) when that one is available, else to the least busy available
   * agent of the group (ties by id), else queued at the end.
   */
  guestUp(guest: string, group: string, last: string | undefined): Promise<Routed>;
  /** A guest's session closed on this node; resolves to its group once no session is left anywhere. */
  guestDown(guest: string): Promise<string | undefined>;
  /** Assigns up to `max` waiting guests of the group, first first, while an agent is available. */
  drain(group: string, max: number): Promise<Assignment[]>;
  /**
   * Moves a guest from `from` to `to` (online in `group`, not `from`): the version to hand the
   * conversation over at, "unavailable" when `to` cannot take it, "conflict" when the guest is online and
   * served by someone other than `from`.
   */
  transfer(guest: string, from: string, to: string, group: string): Promise<number | "unavailable" | "conflict">;
  /**
   * Undoes an assignment to `agent` whose hand-over failed: the guest waits again at the head of its
   * queue, with `last` as its last agent when given. Resolves to the group, or undefined when the
   * guest is no longer online or is served by someone else by now.
   */
  release(guest: string, agent: string, last?: string): Promise<string | undefined>;
  guest(guest: string): Promise<GuestLive>;
  /** The subset of `guests` online anywhere. */
  onlineGuests(guests: string[]): Promise<Set<string>>;
  /** The online agents of a group. */
  agents(group: string): Promise<Map<string, AgentLive>>;
  /** The group's waiting guests, first first. */
  queue(group: string): Promise<string[]>;
  /** Called when places may have come free outside a request (a dead node's guests were removed). */
  onFreed(fn: (group: string) => void): void;
  /** Removes this node's entries (a clean stop); resolves to the groups where places came free. */
  leave(): Promise<string[]>;
  close(): Promise<void>;
}

/** Strictly increasing versions on wall-clock microseconds. */
export function nextVersion(last: number): number {
  return Math.max(Date.now() * 1000, last + 1);
}
