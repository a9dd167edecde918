// Presence for a single node: plain maps, answers at once.
import type { Presence } from "./presence.ts";

export class MemoryPresence implements Presence {
  private readonly online = new Map<string, string>();
  /** per role: its online users in an array (swap-removed) and each one's index, so a sample costs O(n), not O(online) */
  private readonly byRole = new Map<string, { list: string[]; at: Map<string, number> }>();
  private readonly rooms = new Map<string, number>();

  userUp(userId: string, role: string): boolean {
    const prev = this.online.get(userId);
    if (prev !== undefined && prev !== role) this.leaveRole(userId, prev);
    this.online.set(userId, role);
    let r = this.byRole.get(role);
    if (!r) this.byRole.set(role, (r = { list: [], at: new Map() }));
    if (!r.at.has(userId)) {
      r.at.set(userId, r.list.length);
      r.list.push(userId);
    }
    return prev === undefined;
  }

  userDown(userId: string, role: string): boolean {
    this.leaveRole(userId, role);
    return this.online.delete(userId);
  }

  private leaveRole(userId: string, role: string): void {
    const r = this.byRole.get(role);
    const i = r?.at.get(userId);
    if (r === undefined || i === undefined) return;
    const last = r.list.pop()!;
    r.at.delete(userId);
    if (last !== userId) {
      r.list[i] = last;
      r.at.set(last, i);
    }
  }

  async isOnline(userId: string): Promise<boolean> {
    return this.online.has(userId);
  }

  async onlineOf(userIds: string[]): Promise<Set<string>> {
    return new Set(userIds.filter((u) => this.online.has(u)));
  }

  roomDelta(room: string, delta: number): void {
    const n = (this.rooms.get(room) ?? 0) + delta;
    if (n <= 0) this.rooms.delete(room);
    else this.rooms.set(room, n);
  }

  async roomCount(room: string): Promise<number> {
    return this.rooms.get(room) ?? 0;
  }

  async sampleRole(role: string, n: number): Promise<string[]> {
    // A partial Fisher-Yates over the role's list: n distinct users, uniformly, in O(n); the swaps are undone.
    const list = this.byRole.get(role)?.list ?? [];
    const k = Math.min(n, list.length);
    const swaps: number[] = [];
    const out: string[] = [];
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(Math.random() * (list.length - i));
      [list[i], list[j]] = [list[j]!, list[i]!];
      swaps.push(j);
      out.push(list[i]!);
    }
    for (let i = k - 1; i >= 0; i--) {
      const j = swaps[i]!;
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    return out;
  }

  async close(): Promise<void> {}
}
