// Desk routing state of a single node: plain maps. Every call runs to its end without awaiting, so each
// one is atomic on this node's event loop.
import { nextVersion, type AgentLive, type Assignment, type DeskState, type GuestLive, type Routed } from "../core/desk-state.ts";

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
  last?: string;
}

export class MemoryDeskState implements DeskState {
  private readonly agentsById = new Map<string, OnlineAgent>();
  private readonly guests = new Map<string, OnlineGuest>();
  private readonly queues = new Map<string, string[]>();
  private lastV = 0;

  async agentUp(agent: string, group: string, capacity: number): Promise<void> {
    let o = this.agentsById.get(agent);
    if (!o) this.agentsById.set(agent, (o = { id: agent, group, capacity, suspended: false, sessions: 0, guests: new Set() }));
    o.group = group;
    o.capacity = capacity;
    o.sessions++;
  }

  async agentDown(agent: string): Promise<void> {
    const o = this.agentsById.get(agent);
    if (!o || --o.sessions > 0) return;
    this.agentsById.delete(agent);
    for (const g of o.guests) {
      const guest = this.guests.get(g);
      if (guest?.agent === agent) guest.agent = undefined;
    }
  }

  async suspend(agent: string, suspended: boolean): Promise<string | undefined> {
    const o = this.agentsById.get(agent);
    if (!o) return undefined;
    o.suspended = suspended;
    return o.group;
  }

  async guestUp(guest: string, group: string, last: string | undefined): Promise<Routed> {
    let o = this.guests.get(guest);
    let freed: string | undefined;
    if (o && o.group !== group) freed = this.gone(guest);
    o = this.guests.get(guest);
    if (!o) this.guests.set(guest, (o = { group, sessions: 0, last }));
    o.sessions++;
    return { ...this.route(guest, o), ...(freed ? { freed } : {}) };
  }

  async guestDown(guest: string): Promise<string | undefined> {
    const o = this.guests.get(guest);
    if (!o || --o.sessions > 0) return undefined;
    return this.gone(guest);
  }

  async drain(group: string, max: number): Promise<Assignment[]> {
    const out: Assignment[] = [];
    const q = this.queue_(group);
    while (q.length && out.length < max && this.pick(group)) {
      const guest = q.shift()!;
      const o = this.guests.get(guest);
      if (!o || o.agent || o.group !== group) continue;
      const a = this.pick(group, o.last)!;
      out.push({ guest, agent: a.id, v: this.assign(guest, o, a) });
    }
    return out;
  }

  async transfer(guest: string, from: string, to: string, group: string): Promise<number | "unavailable" | "conflict"> {
    const target = this.agentsById.get(to);
    if (!target || target.group !== group || to === from) return "unavailable";
    const o = this.guests.get(guest);
    if (o) {
      if (o.agent && o.agent !== from) return "conflict";
      if (o.agent) this.agentsById.get(from)?.guests.delete(guest);
      else this.dequeue(o.group, guest);
      return this.assign(guest, o, target);
    }
    return (this.lastV = nextVersion(this.lastV));
  }

  async release(guest: string, agent: string, last?: string): Promise<string | undefined> {
    const o = this.guests.get(guest);
    if (!o || o.agent !== agent) return undefined;
    o.agent = undefined;
    if (last !== undefined) o.last = last;
    this.agentsById.get(agent)?.guests.delete(guest);
    this.queue_(o.group).unshift(guest);
    return o.group;
  }

  async guest(guest: string): Promise<GuestLive> {
    const o = this.guests.get(guest);
    if (!o) return { online: false };
    const i = this.queue_(o.group).indexOf(guest);
    return { online: true, agent: o.agent, position: i >= 0 ? i + 1 : undefined };
  }

  async onlineGuests(guests: string[]): Promise<Set<string>> {
    return new Set(guests.filter((g) => this.guests.has(g)));
  }

  async agents(group: string): Promise<Map<string, AgentLive>> {
    const out = new Map<string, AgentLive>();
    for (const a of this.agentsById.values()) if (a.group === group) out.set(a.id, { suspended: a.suspended, load: a.guests.size });
    return out;
  }

  async queue(group: string): Promise<string[]> {
    return [...this.queue_(group)];
  }

  onFreed(): void {}

  async leave(): Promise<string[]> {
    return [];
  }

  async close(): Promise<void> {}

  private route(guest: string, o: OnlineGuest): Routed {
    if (o.agent) return { agent: o.agent };
    const q = this.queue_(o.group);
    const i = q.indexOf(guest);
    if (i >= 0) return { position: i + 1 };
    const a = this.pick(o.group, o.last);
    if (a) return { agent: a.id, v: this.assign(guest, o, a) };
    q.push(guest);
    return { position: q.length };
  }

  private pick(group: string, sticky?: string): OnlineAgent | undefined {
    const ok = (a: OnlineAgent | undefined): a is OnlineAgent => !!a && a.group === group && !a.suspended && a.guests.size < a.capacity;
    const last = sticky ? this.agentsById.get(sticky) : undefined;
    if (ok(last)) return last;
    let best: OnlineAgent | undefined;
    for (const a of this.agentsById.values()) {
      if (ok(a) && (!best || a.guests.size < best.guests.size || (a.guests.size === best.guests.size && a.id < best.id))) best = a;
    }
    return best;
  }

  private assign(guest: string, o: OnlineGuest, a: OnlineAgent): number {
    o.agent = a.id;
    o.last = a.id;
    a.guests.add(guest);
    return (this.lastV = nextVersion(this.lastV));
  }

  /** Removes an online guest; its group. */
  private gone(guest: string): string | undefined {
    const o = this.guests.get(guest);
    if (!o) return undefined;
    this.guests.delete(guest);
    this.dequeue(o.group, guest);
    if (o.agent) this.agentsById.get(o.agent)?.guests.delete(guest);
    return o.group;
  }

  private dequeue(group: string, guest: string): void {
    const q = this.queue_(group);
    const i = q.indexOf(guest);
    if (i >= 0) q.splice(i, 1);
  }

  private queue_(group: string): string[] {
    let q = this.queues.get(group);
    if (!q) this.queues.set(group, (q = []));
    return q;
  }
}
