// Who is online, and how many are in each room, across the cluster. The hub reports this node's changes;
// readers get cluster-wide answers. memory.ts serves one node; a Redis implementation serves a cluster.
import type { PresenceView } from "../core/ports.ts";

export interface Presence extends PresenceView {
  /**
   * A user got its first connection on this node; resolves once other nodes can see it, with true when the
   * user was online nowhere in the cluster before (its online notice is due: core/presence-notices.ts).
   */
  userUp(userId: string, role: string): boolean | Promise<boolean>;
  /**
   * A user's last connection on this node closed; resolves once other nodes can see it, with true when the
   * user is now online nowhere in the cluster (its offline notice is due).
   */
  userDown(userId: string, role: string): boolean | Promise<boolean>;
  /** Online anywhere in the cluster. */
  isOnline(userId: string): Promise<boolean>;
  /** The subset of `userIds` online anywhere. */
  onlineOf(userIds: string[]): Promise<Set<string>>;
  /** This node's member count of a room changed by `delta`; resolves once other nodes can see it. */
  roomDelta(room: string, delta: number): void | Promise<void>;
  /** The room's member count over the whole cluster. */
  roomCount(room: string): Promise<number>;
  /** Up to `n` distinct online users of a role, picked at random across the cluster. */
  sampleRole(role: string, n: number): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * The node leases of a cluster (presence/redis.ts): the one place that decides a node is gone. Other state a
 * node keeps in Redis (the desk's routing state) hangs off these leases instead of running a timer of its own.
 */
export interface NodeLeases {
  /** This node's id. */
  readonly node: string;
  /**
   * Calls `fn` when another node's lease has run out (killed, or stalled past PRESENCE_TTL_SEC), on the one
   * node that claims its sweep, before that node's presence entries are removed. When `fn` throws the dead
   * node is left for a later renewal (on any node) to sweep again, so `fn` must be idempotent, and should
   * leave alone a node whose lease holds again by then. Returns a function that stops the calls.
   */
  onNodeGone(fn: (node: string) => Promise<void>): () => void;
  /**
   * Calls `fn` when a renewal found this node's own lease gone (Redis restarted empty, or this node was swept
   * after a stall): what this node keeps in Redis may be gone and must be written again. A listener that
   * throws is called again at the next renewal. Returns a function that stops the calls.
   */
  onLeaseLost(fn: () => Promise<void>): () => void;
}
