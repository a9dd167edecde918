// The customer-service desk: agents of agent groups serve guests. A guest's conversation is the container
// `c:desk:<guest>` (store/desk.ts) whose owner is the serving agent; messages go through Chat.commit, so
// cursors, unread counts and history are the core's, and any protocol's agent could serve it.
//
// Routing, cluster-wide: a guest who comes online is given to its last agent when that agent is available
// (sticky), else to the least busy available agent of its group; an agent is available when online (on
// any node), not suspended and serving fewer online guests than its capacity. With none available the
// guest waits in the group's FIFO queue and is assigned, in order, when an agent comes online, resumes or
// frees a place. Each decision is one atomic call of the DeskState (desk-state.ts: in memory for one node,
// in Redis for a cluster); this class then hands the conversation over in the store (at the decision's
// version, so decisions reaching the store out of order cannot undo a later one) and sends the pushes,
// which the hub delivers on whichever node the recipients are connected to.
import { deskConvId, guestOf } from "./conv-ids.ts";
import type { Chat, SendInput } from "./chat.ts";
import type { Assignment, DeskState, GuestLive } from "./desk-state.ts";
import { fail } from "./errors.ts";
import type { Conversations, DeskRecords, Messages, Users } from "./ports.ts";
import type { DeskAgentRow } from "./records.ts";
import type { Ack, CoreEvent, Message } from "./types.ts";

/** Seed file types, in their numeric order (0 text … 6 file); stored as the message kind. */
export const FILE_TYPES = ["text", "image", "voice", "product", "order", "video", "file"] as const;
/** How many recent messages travel with an assignment or a transfer. */
export const RECENT = 10;
/** Assignments taken from a queue per state call while draining it. */
const DRAIN_BATCH = 50;

export interface GuestInfo {
  id: string;
  nick: string;
  avatar: string;
}

export interface AgentStatus {
  id: string;
  nick: string;
  avatar: string;
  group: string;
  online: boolean;
  suspended: boolean;
  load: number;
  capacity: number;
}

export type DeskRefusal = "no_agent" | "agent_disabled" | "group_disabled";

export class Desk {
  constructor(
    private readonly store: Users & Conversations & Pick<Messages, "history">,
    readonly records: DeskRecords,
    private readonly chat: Pick<Chat, "commit" | "activeUser" | "advance">,
    private readonly emit: (ev: CoreEvent) => void,
    private readonly log: (msg: string) => void,
    private readonly state: DeskState,
    /** Told when a guest came online and waits in its group's queue (webhooks: a guest waiting too long). */
    private readonly onQueued?: (guest: string, group: string) => void,
  ) {
    state.onFreed((group) => this.drainSoon(group));
  }

  /** Checks that a user may work as an agent: its record, its user and its group are active. */
  async agentRecord(userId: string): Promise<DeskAgentRow | DeskRefusal> {
    // One read: the record and its group together; the user is the core's active-user check (cached on this
    // node, dropped cluster-wide when the user changes).
    const r = await this.records.agentWithGroup(userId);
    if (!r) return "no_agent";
    if (r.agent.disabled || !(await this.chat.activeUser(userId))) return "agent_disabled";
    if (!r.group || r.group.disabled) return "group_disabled";
    return r.agent;
  }

  /**
   * An agent's connection opened: it is online and the group's queue is served. Rejects only when the
   * agent could not be counted online (then there is nothing to undo when the connection closes).
   */
  async agentUp(a: DeskAgentRow): Promise<void> {
    await this.state.agentUp(a.userId, a.groupId, a.capacity);
    await this.drainSoon(a.groupId);
  }

  /**
   * An agent's connection closed. When it was its last, its guests stay its own (it owns their
   * conversations) but count in no load until they are routed again or transferred.
   */
  agentDown(agentId: string): void {
    this.state.agentDown(agentId).catch((e) => this.log(`desk agent down ${agentId}: ${e}`));
  }

  async suspend(agentId: string, suspended: boolean): Promise<void> {
    const group = await this.state.suspend(agentId, suspended);
    if (group === undefined) fail("forbidden", "not logged in as an agent");
    if (!suspended) await this.drain(group!);
  }

  /**
   * A guest's connection opened for `group`: its conversation exists, and it is routed (guestLive tells
   * the outcome). Rejects only when the guest could not be counted online (then there is nothing to undo
   * when the connection closes); a failed hand-over leaves it waiting first in line.
   */
  async guestUp(guest: string, group: string): Promise<void> {
    const g = await this.records.group(group);
    if (!g || g.disabled) fail("not_found", `no active agent group ${group}`);
    const conv = await this.records.guestConversation(guest, group);
    const r = await this.state.guestUp(guest, group, conv.ownerId ?? undefined);
    if (r.freed) void this.drainSoon(r.freed);
    if (r.agent && r.v !== undefined) await this.settle({ guest, agent: r.agent, v: r.v });
    else if (!r.agent) this.onQueued?.(guest, group);
  }

  /** A guest's connection closed; its last one anywhere frees its agent's place. */
  guestDown(guest: string): void {
    this.state
      .guestDown(guest)
      .then((group) => (group !== undefined ? this.drainSoon(group) : undefined))
      .catch((e) => this.log(`desk guest down ${guest}: ${e}`));
  }

  /** An online guest's agent, or its place in the queue. */
  guestLive(guest: string): Promise<GuestLive> {
    return this.state.guest(guest);
  }

  /** Hands a guest from its agent to another online agent of the same group, in one transaction. */
  async transfer(from: string, guest: string, to: string): Promise<{ guest: GuestInfo; recs: Message[] }> {
    const conv = await this.store.getConversation(deskConvId(guest));
    if (!conv) fail("not_found", `no guest ${guest}`);
    if (conv!.ownerId !== from) fail("forbidden", `${guest} is not your guest`);
    const group = (conv!.attributes as { group?: string }).group ?? "";
    if (to === from) fail("unavailable", `agent ${to} is not online in this group`);
    const v = await this.state.transfer(guest, from, to, group);
    if (v === "unavailable") fail("unavailable", `agent ${to} is not online in this group`);
    if (v === "conflict") fail("conflict", `${guest} was just handed over by someone else`);
    let moved = false;
    try {
      moved = await this.records.handOver(guest, to, v as number, from);
    } finally {
      // The state moved the guest; the store did not (a concurrent hand-over won, or the store failed):
      // the guest waits again, first in line, and goes back to `from` when it can.
      if (!moved) void this.state.release(guest, to, from).then((g) => (g !== undefined ? this.drainSoon(g) : undefined)).catch(() => {});
    }
    if (!moved) fail("conflict", `${guest} was just handed over by someone else`);
    const info = await this.guestInfo(guest);
    const recs = await this.recent(guest);
    this.emit({ type: "desk", change: "assigned", guest: info, agent: to, from, recs, to: [to] });
    this.emit({ type: "desk", change: "handed_over", guest: info, agent: to, from, to: [from] });
    this.emit({ type: "desk", change: "agent", guest: info, agent: to, from, to: [guest] });
    void this.drainSoon(group);
    return { guest: info, recs };
  }

  /**
   * A message in a guest's conversation (Messaging.send decides it is one): from the guest, or from the agent
   * serving it, nobody else. One read: the conversation, whose owner is the serving agent; its members are
   * always the guest and that agent (store/desk.ts `handOver` swaps the agent's membership with the owner).
   */
  async send(from: string, guest: string, input: SendInput, skip?: string): Promise<Ack> {
    const conv = await this.store.getConversation(deskConvId(guest));
    if (from === guest) {
      // A guest writes to whoever serves it (stored, and read later when nobody does yet).
      if (!conv) fail("not_member", "connect to an agent group first");
    } else if (!conv || conv.ownerId !== from) fail("forbidden", `${guest} is not your guest`);
    const owner = conv!.ownerId;
    return this.chat.commit(from, conv!.id, input, owner && owner !== guest ? [guest, owner] : [guest], skip);
  }

  /** Whether an agent may read a guest's conversation: agents of the guest's group may. */
  async mayRead(agent: DeskAgentRow, guest: string): Promise<boolean> {
    const conv = await this.store.getConversation(deskConvId(guest));
    return !!conv && (conv.attributes as { group?: string }).group === agent.groupId;
  }

  /** The group's agents with their live state (cluster-wide). */
  async agentList(group: string, onlineOnly = false): Promise<AgentStatus[]> {
    const live = await this.state.agents(group);
    const rows = (await this.records.agents(group)).filter((a) => !a.disabled && (!onlineOnly || live.has(a.userId)));
    const users = new Map((await this.store.getUsers(rows.map((r) => r.userId))).map((u) => [u.id, u]));
    return rows.map((a) => {
      const o = live.get(a.userId);
      const u = users.get(a.userId);
      return {
        id: a.userId,
        nick: u?.nick ?? "",
        avatar: u?.avatar ?? "",
        group: a.groupId,
        online: !!o,
        suspended: o?.suspended ?? false,
        load: o?.load ?? 0,
        capacity: a.capacity,
      };
    });
  }

  /** The subset of `guests` online anywhere. */
  onlineGuests(guests: string[]): Promise<Set<string>> {
    return this.state.onlineGuests(guests);
  }

  /** The group's waiting guests, first first. */
  queued(group: string): Promise<string[]> {
    return this.state.queue(group);
  }

  async guestInfo(guest: string): Promise<GuestInfo> {
    const u = await this.store.getUser(guest);
    return { id: guest, nick: u?.nick ?? "", avatar: u?.avatar ?? "" };
  }

  /** The latest messages of a guest's conversation, oldest first. */
  async recent(guest: string, n = RECENT): Promise<Message[]> {
    return (await this.store.history(deskConvId(guest), { limit: n, desc: true })).reverse();
  }

  /**
   * Page `index` (1 = the newest) of `size` messages of a guest's conversation, oldest first, with the number of
   * messages in it (`total`, its last seq). Who may read it is the caller's check (`mayRead`, or the guest itself).
   */
  async page(guest: string, index: number, size: number): Promise<{ total: number; msgs: Message[] }> {
    const conv = await this.store.getConversation(deskConvId(guest));
    const total = conv?.lastSeq ?? 0;
    const before = total - (index - 1) * size + 1;
    const msgs = before > 1 ? (await this.store.history(deskConvId(guest), { beforeSeq: before, limit: size, desc: true })).reverse() : [];
    return { total, msgs };
  }

  /**
   * `reader` has read a guest's whole conversation: the guest itself, or (`asAgent`) the agent serving it. False
   * when an agent does not serve the guest (nothing is marked); a guest without a conversation has nothing to mark.
   */
  async markRead(reader: string, guest: string, asAgent: boolean): Promise<boolean> {
    const conv = await this.store.getConversation(deskConvId(guest));
    if (asAgent && (!conv || conv.ownerId !== reader)) return false;
    if (conv) await this.chat.advance(reader, conv.id, "read", conv.lastSeq);
    return true;
  }

  /** A clean stop: this node's sessions leave the routing state, and the places they held are given out. */
  async close(): Promise<void> {
    for (const g of await this.state.leave()) await this.drainSoon(g);
    await this.state.close();
  }

  /**
   * Hands the conversation to the assigned agent and tells both sides. A later decision about the guest
   * that reached the store first wins (nothing to tell). When the store fails, the guest waits again,
   * first in line, and is assigned at the group's next drain.
   */
  private async settle(a: Assignment): Promise<void> {
    let moved: boolean;
    try {
      moved = await this.records.handOver(a.guest, a.agent, a.v);
    } catch (e) {
      this.log(`desk assign ${a.guest}: ${e}`);
      await this.state.release(a.guest, a.agent).catch(() => {});
      return;
    }
    if (!moved) return;
    const info = await this.guestInfo(a.guest);
    this.emit({ type: "desk", change: "assigned", guest: info, agent: a.agent, recs: await this.recent(a.guest), to: [a.agent] });
    this.emit({ type: "desk", change: "agent", guest: info, agent: a.agent, to: [a.guest] });
  }

  /** drain() whose failure is logged (the next event of the group drains it again). */
  private drainSoon(group: string): Promise<void> {
    return this.drain(group).catch((e) => this.log(`desk drain ${group}: ${e}`));
  }

  /** Assigns queued guests, in order, while an agent of the group is available. */
  async drain(group: string): Promise<void> {
    for (;;) {
      const batch = await this.state.drain(group, DRAIN_BATCH);
      for (const a of batch) await this.settle(a);
      if (batch.length < DRAIN_BATCH) return;
    }
  }
}

/** What a desk message of `fileType` (0 text … 6 file) is stored as. */
export function deskInput(msg: unknown, fileType: number): SendInput {
  if (!Number.isInteger(fileType) || fileType < 0 || fileType >= FILE_TYPES.length) fail("bad_request", "`file_type` must be 0-6");
  return { kind: FILE_TYPES[fileType], body: { msg } };
}

