// Presence for a single node: plain maps, answers at once.
import type { Presence } from "./presence.ts";

export class MemoryPresence implements Presence {
  private readonly online = new Map<string, string>();
  private readonly byRole = new Map<string, Set<string>>();
  private readonly rooms = new Map<string, number>();

  userUp(userId: string, role: string): boolean {
    const first = !this.online.has(userId);
    this.online.set(userId, role);
    let set = this.byRole.get(role);
    if (!set) this.byRole.set(role, (set = new Set()));
    set.add(userId);
    return first;
  }

  userDown(userId: string, role: string): boolean {
    this.byRole.get(role)?.delete(userId);
    return this.online.delete(userId);
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
    const all = [...(this.byRole.get(role) ?? [])];
    for (let i = all.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    return all.slice(0, n);
  }

  async close(): Promise<void> {}
}
