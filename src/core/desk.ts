// The customer-service desk: agents of agent groups serve guests. A guest's conversation is the container
// `c:desk:<guest>` (store/desk.ts) whose owner is the serving agent; messages go through Chat.commit, so
// cursors, unread counts and history are the core's, and any protocol's agent could serve it.
//
// Routing (this node's view): a guest who comes online is given to its last agent when that agent is
// available (sticky), else to the least busy available agent of its group; an agent is available when
// online, not suspended and serving fewer online guests than its capacity. With none available the guest
// waits in the group's FIFO queue and is assigned, in order, when an agent comes online, resumes or frees a
// place. Routing decisions of a group run one at a time.
import { deskConvId, guestOf, type DeskAgentRow, type DeskStore } from "../store/desk.ts";
import type { Store } from "../store/store.ts";
import type { Chat } from "./chat.ts";
import { fail } from "./errors.ts";
import type { Ack, CoreEvent, Message } from "./types.ts";

/** Seed file types, in their numeric order (0 text … 6 file); stored as the message kind. */
export const FILE_TYPES = ["text", "image", "voice", "product", "order", "video", "file"] as const;
/** How many recent messages travel with an assignment or a transfer. */
export const RECENT = 10;

interface OnlineAgent {
  id: string;
  group: string;
  capacity: number;
  suspended: boolean;
  sessions: number;
  /** online guests this agent serves now */
  guests: Set<string>;
}

interface OnlineGuest {
  group: string;
  sessions: number;
  agent?: string;
}

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
  private readonly agents = new Map<string, OnlineAgent>();
  private readonly guests = new Map<string, OnlineGuest>();
  private readonly queues = new Map<string, string[]>();
  private readonly lanes = new Map<string, Promise<unknown>>();

  constructor(
    private readonly store: Store,
    readonly records: DeskStore,
    private readonly chat: Chat,
    private readonly emit: (ev: CoreEvent) => void,
    private readonly log: (msg: string) => void,
  ) {}

  /** Checks that a user may work as an agent: its record, its user and its group are active. */
  async agentRecord(userId: string): Promise<DeskAgentRow | DeskRefusal> {
    const a = await this.records.agent(userId);
    if (!a) return "no_agent";
    const u = await this.store.getUser(userId);
    if (a.disabled || !u || u.disabled) return "agent_disabled";
    const g = await this.records.group(a.groupId);
    if (!g || g.disabled) return "group_disabled";
    return a;
  }

  /** An agent's connection opened: it is online and the group's queue is served. */
  agentUp(a: DeskAgentRow): Promise<void> {
    let o = this.agents.get(a.userId);
    if (!o) this.agents.set(a.userId, (o = { id: a.userId, group: a.groupId, capacity: a.capacity, suspended: false, sessions: 0, guests: new Set() }));
    o.sessions++;
    return this.drain(a.groupId);
  }

  /** An agent's connection closed. Its guests stay its own: they are served again when it is back. */
  agentDown(agentId: string): void {
    const o = this.agents.get(agentId);
    if (!o || --o.sessions > 0) return;
    this.agents.delete(agentId);
    for (const g of o.guests) {
      const guest = this.guests.get(g);
      if (guest?.agent === agentId) guest.agent = undefined;
    }
  }

  async suspend(agentId: string, suspended: boolean): Promise<void> {
    const o = this.agents.get(agentId);
    if (!o) fail("forbidden", "not logged in as an agent");
    o!.suspended = suspended;
    if (!suspended) await this.drain(o!.group);
  }

  isSuspended(agentId: string): boolean {
    return this.agents.get(agentId)?.suspended ?? false;
  }

  /**
   * A guest's connection opened for `group`: its conversation exists, and it is routed. Returns the agent
   * serving it, or its place in the queue (1 = next).
   */
  async guestUp(guest: string, group: string): Promise<{ agent?: string; position?: number }> {
    const g = await this.records.group(group);
    if (!g || g.disabled) fail("not_found", `no active agent group ${group}`);
    await this.records.guestConversation(guest, group);
    let o = this.guests.get(guest);
    if (o && o.group !== group) this.guestGone(guest);
    o = this.guests.get(guest);
    if (!o) this.guests.set(guest, (o = { group, sessions: 0 }));
    o.sessions++;
    return this.lane(group, async () => {
      if (o!.agent) return { agent: o!.agent };
      const queued = this.queue(group).indexOf(guest);
      if (queued >= 0) return { position: queued + 1 };
      const conv = await this.store.getConversation(deskConvId(guest));
      const agent = this.pick(group, conv?.ownerId ?? undefined);
      if (agent) {
        await this.assign(guest, agent, conv?.ownerId ?? null);
        return { agent: agent.id };
      }
      this.queue(group).push(guest);
      return { position: this.queue(group).length };
    });
  }

  /** A guest's connection closed; its last one frees its agent's place. */
  guestDown(guest: string): void {
    const o = this.guests.get(guest);
    if (!o || --o.sessions > 0) return;
    this.guestGone(guest);
    void this.drain(o.group);
  }

  /** The agent now serving an online guest, if any. */
  agentOf(guest: string): string | undefined {
    return this.guests.get(guest)?.agent;
  }

  /** Hands a guest from its agent to another online agent of the same group, in one transaction. */
  async transfer(from: string, guest: string, to: string): Promise<{ guest: GuestInfo; recs: Message[] }> {
    const conv = await this.store.getConversation(deskConvId(guest));
    if (!conv) fail("not_found", `no guest ${guest}`);
    if (conv!.ownerId !== from) fail("forbidden", `${guest} is not your guest`);
    const target = this.agents.get(to);
    const group = (conv!.attributes as { group?: string }).group;
    if (!target || target.group !== group || to === from) fail("unavailable", `agent ${to} is not online in this group`);
    if (!(await this.records.handOver(guest, from, to))) fail("conflict", `${guest} was just handed over by someone else`);
    const g = this.guests.get(guest);
    this.agents.get(from)?.guests.delete(guest);
    if (g) {
      g.agent = to;
      target!.guests.add(guest);
    }
    const info = await this.guestInfo(guest);
    const recs = await this.recent(guest);
    this.emit({ type: "desk", change: "assigned", guest: info, agent: to, from, recs, to: [to] });
    this.emit({ type: "desk", change: "handed_over", guest: info, agent: to, from, to: [from] });
    this.emit({ type: "desk", change: "agent", guest: info, agent: to, from, to: [guest] });
    void this.drain(group ?? "");
    return { guest: info, recs };
  }

  /** An agent writes to its guest. */
  async agentSend(agent: string, guest: string, msg: unknown, fileType: number, skip?: string): Promise<Ack> {
    const conv = await this.store.getConversation(deskConvId(guest));
    if (!conv || conv.ownerId !== agent) fail("forbidden", `${guest} is not your guest`);
    return this.chat.commit(agent, conv!.id, input(msg, fileType), await this.store.memberIds(conv!.id), skip);
  }

  /** A guest writes to whoever serves it (stored, and read later when nobody does yet). */
  async guestSend(guest: string, msg: unknown, fileType: number, skip?: string): Promise<Ack> {
    const conv = deskConvId(guest);
    if (!(await this.store.getMember(conv, guest))) fail("not_member", "connect to an agent group first");
    return this.chat.commit(guest, conv, input(msg, fileType), await this.store.memberIds(conv), skip);
  }

  /** Whether an agent may read a guest's conversation: agents of the guest's group may. */
  async mayRead(agent: DeskAgentRow, guest: string): Promise<boolean> {
    const conv = await this.store.getConversation(deskConvId(guest));
    return !!conv && (conv.attributes as { group?: string }).group === agent.groupId;
  }

  /** The group's agents with their live state. */
  async agentList(group: string, onlineOnly = false): Promise<AgentStatus[]> {
    const rows = (await this.records.agents(group)).filter((a) => !a.disabled && (!onlineOnly || this.agents.has(a.userId)));
    const users = new Map((await this.store.getUsers(rows.map((r) => r.userId))).map((u) => [u.id, u]));
    return rows.map((a) => {
      const o = this.agents.get(a.userId);
      const u = users.get(a.userId);
      return {
        id: a.userId,
        nick: u?.nick ?? "",
        avatar: u?.avatar ?? "",
        group: a.groupId,
        online: !!o,
        suspended: o?.suspended ?? false,
        load: o?.guests.size ?? 0,
        capacity: a.capacity,
      };
    });
  }

  isGuestOnline(guest: string): boolean {
    return this.guests.has(guest);
  }

  queued(group: string): string[] {
    return [...this.queue(group)];
  }

  async guestInfo(guest: string): Promise<GuestInfo> {
    const u = await this.store.getUser(guest);
    return { id: guest, nick: u?.nick ?? "", avatar: u?.avatar ?? "" };
  }

  /** The latest messages of a guest's conversation, oldest first. */
  async recent(guest: string, n = RECENT): Promise<Message[]> {
    return (await this.store.history(deskConvId(guest), { limit: n, desc: true })).reverse();
  }

  private pick(group: string, sticky?: string): OnlineAgent | undefined {
    const ok = (a: OnlineAgent | undefined): a is OnlineAgent => !!a && a.group === group && !a.suspended && a.guests.size < a.capacity;
    const last = sticky ? this.agents.get(sticky) : undefined;
    if (ok(last)) return last;
    let best: OnlineAgent | undefined;
    for (const a of this.agents.values()) {
      if (ok(a) && (!best || a.guests.size < best.guests.size || (a.guests.size === best.guests.size && a.id < best.id))) best = a;
    }
    return best;
  }

  private async assign(guest: string, agent: OnlineAgent, owner: string | null): Promise<void> {
    if (owner !== agent.id && !(await this.records.handOver(guest, owner, agent.id))) {
      const now = (await this.store.getConversation(deskConvId(guest)))?.ownerId ?? null;
      if (!(await this.records.handOver(guest, now, agent.id))) fail("conflict", `${guest} could not be assigned`);
    }
    const g = this.guests.get(guest);
    if (g) g.agent = agent.id;
    agent.guests.add(guest);
    const info = await this.guestInfo(guest);
    this.emit({ type: "desk", change: "assigned", guest: info, agent: agent.id, recs: await this.recent(guest), to: [agent.id] });
    this.emit({ type: "desk", change: "agent", guest: info, agent: agent.id, to: [guest] });
  }

  /** Assigns queued guests, in order, while an agent of the group is available. */
  private drain(group: string): Promise<void> {
    return this.lane(group, async () => {
      const q = this.queue(group);
      while (q.length) {
        const agent = this.pick(group);
        if (!agent) return;
        const guest = q.shift()!;
        if (!this.guests.has(guest)) continue;
        const conv = await this.store.getConversation(deskConvId(guest));
        try {
          await this.assign(guest, this.pick(group, conv?.ownerId ?? undefined) ?? agent, conv?.ownerId ?? null);
        } catch (e) {
          this.log(`desk assign ${guest}: ${e}`);
        }
      }
    });
  }

  private guestGone(guest: string): void {
    const o = this.guests.get(guest);
    if (!o) return;
    this.guests.delete(guest);
    const q = this.queue(o.group);
    const i = q.indexOf(guest);
    if (i >= 0) q.splice(i, 1);
    if (o.agent) this.agents.get(o.agent)?.guests.delete(guest);
  }

  private queue(group: string): string[] {
    let q = this.queues.get(group);
    if (!q) this.queues.set(group, (q = []));
    return q;
  }

  /** Runs routing steps of one group one after another. */
  private lane<T>(group: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.lanes.get(group) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.lanes.set(group, tail);
    void tail.then(() => this.lanes.get(group) === tail && this.lanes.delete(group));
    return next;
  }
}

function input(msg: unknown, fileType: number) {
  if (!Number.isInteger(fileType) || fileType < 0 || fileType >= FILE_TYPES.length) fail("bad_request", "`file_type` must be 0-6");
  return { kind: FILE_TYPES[fileType], body: { msg } };
}

export { guestOf };
