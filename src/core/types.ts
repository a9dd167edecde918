// The messaging model every dialect maps onto.

export interface Message {
  /** Time-sortable server id, as a decimal string (63 bits do not fit a JSON number). */
  id: string;
  conv: string;
  /** Gap-free position in the conversation, from 1. */
  seq: number;
  from: string;
  kind: string;
  body: unknown;
  /** The sender's own id for this message, when it gave one. */
  cmid?: string;
  /** Commit time, ms since the epoch. */
  ts: number;
  recalled?: boolean;
}

/** What a send returns, only once the message is committed. */
export interface Ack {
  id: string;
  conv: string;
  seq: number;
  ts: number;
  /** true when this is a retry of a message stored earlier. */
  dup: boolean;
}

/** Events the core pushes outward; the hub routes them, dialects encode them. */
export type CoreEvent =
  | {
      type: "message";
      msg: Message;
      to: string[];
      /** the sender's name and avatar when it sent (for protocols that show them with each push) */
      sender?: { nick: string; avatar: string };
      /** a group message: the group's kind (user | interest | neighbourhood | service) */
      group?: string;
    }
  | { type: "cursor"; conv: string; user: string; field: "delivered" | "read"; seq: number; to: string[] }
  | {
      type: "member";
      conv: string;
      user: { id: string; nick: string };
      change: MemberChange;
      /** who made the change: the user itself, an owner/admin, or null for the server API */
      by?: string | null;
      role?: string;
      mutedUntil?: number | null;
      to: string[];
    }
  /** A friend request or its answer, or a friendship ended; `user` is who did it. */
  | { type: "friend"; change: FriendChange; user: { id: string; nick: string }; note?: string; to: string[] }
  /**
   * Customer-service desk: `assigned` to the agent that now serves `guest` (with recent messages; `from` on a
   * transfer), `handed_over` to the agent that transferred it, `agent` to the guest.
   */
  | {
      type: "desk";
      change: "assigned" | "handed_over" | "agent";
      guest: { id: string; nick: string; avatar: string };
      agent: string;
      from?: string;
      recs?: Message[];
      to: string[];
    }
  /** Read/delivered counts of a sender's messages in a group (debounced). */
  | { type: "receipts"; conv: string; counts: ReceiptCount[]; to: string[] }
  | { type: "recall"; conv: string; id: string; seq: number; from: string; cmid?: string; to: string[] }
  /** One tick of a live room (core/live.ts): fanned out to the room's topic, not to users. */
  | { type: "room"; conv: string; items: RoomItem[]; online?: number }
  /** To one connection that was too slow to take a room's must-deliver messages: fetch history after `after`. */
  | { type: "resync"; conv: string; after: number; dropped: number }
  /** To every connection of a node whose bus was away: pushes from other nodes may have been missed, sync. */
  | { type: "gap" }
  /** A protocol's own push that is not stored (livepush: group dials, poll hand-over), to the users' connections. */
  | { type: "notice"; proto: string; body: unknown; to: string[] }
  /**
   * Rooms protocol (core/containers.ts), to a room's or container's topic: a connection came in or went out
   * (`count`: connections there across the cluster), a container closed (`outAll`: everyone is out), or a
   * connection changed its name or icon (`userInfo`). `room` is the roomName the clients know it by.
   */
  | {
      type: "roomNotice";
      conv: string;
      room: string;
      action: "in" | "out" | "outAll" | "userInfo";
      user: { id: string; nick: string; icon: string };
      count: number;
      ts: number;
    }
  /**
   * A user came online (its first connection anywhere in the cluster) or went offline (its last one closed), to
   * the members of one of its groups (core/presence-notices.ts); a protocol without such a notice ignores it.
   */
  | { type: "presence"; conv: string; user: { id: string; nick: string }; change: "online" | "offline"; to: string[] };

export const ackOf = (msg: Message, dup: boolean): Ack => ({ id: msg.id, conv: msg.conv, seq: msg.seq, ts: msg.ts, dup });

/** join/leave: membership; role/mute: a member's standing; dissolve: the group is closed. */
export type MemberChange = "join" | "leave" | "role" | "mute" | "dissolve";

export interface ReceiptCount {
  seq: number;
  /** members other than the sender whose delivered / read cursor reached `seq` */
  delivered: number;
  read: number;
}

export type FriendChange = "request" | "accepted" | "refused" | "removed";

/** Room message classes: droppable ones are coalesced and skipped for slow consumers; must-deliver ones are not. */
export type RoomClass = "droppable" | "must";

/** A live-room message. Must-deliver messages are committed and carry a seq; droppable ones are never stored. */
export interface RoomMessage extends Omit<Message, "seq"> {
  seq?: number;
  class: RoomClass;
}

/** What one room tick carries, in order: messages and in/out notices. */
export type RoomItem =
  | { type: "msg"; msg: RoomMessage }
  | { type: "in" | "out"; user: { id: string; nick: string } }
  /** a stored room message was recalled: viewers hide it (delivered like a must-deliver message) */
  | { type: "recall"; id: string; seq: number; from: string };
