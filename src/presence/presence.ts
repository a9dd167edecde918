// Who is online, and how many are in each room, across the cluster. The hub reports this node's changes;
// readers get cluster-wide answers. memory.ts serves one node; a Redis implementation serves a cluster.
import type { PresenceView } from "../core/ports.ts";

export interface Presence extends PresenceView {
  /** A user got its first connection on this node; resolves once other nodes can see it. */
  userUp(userId: string, role: string): void | Promise<void>;
  /** A user's last connection on this node closed; resolves once other nodes can see it. */
  userDown(userId: string, role: string): void | Promise<void>;
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
