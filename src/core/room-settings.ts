// A live room's settings and mutes as this node sees them (core/live.ts): read from the room records and
// cached per node for CACHE_MS, so a change made on another node applies within it. One load per room at a
// time (concurrent readers share it); a change made here drops the entry at once.
import type { RoomRecords } from "./ports.ts";
import type { RoomRow } from "./records.ts";

/** Room settings and mutes are cached this long: a change made on another node applies within it. */
const CACHE_MS = 1000;
const MAX_CACHED_ROOMS = 10_000;

export interface RoomSettings {
  at: number;
  room: RoomRow;
  /** user → muted until (ms) */
  mutes: Map<string, number>;
}

export class RoomSettingsCache {
  private readonly cache = new Map<string, RoomSettings | Promise<RoomSettings | undefined>>();

  constructor(private readonly rooms: Pick<RoomRecords, "getRoom" | "activeMutes">) {}

  /** The room's settings and mutes, cached for CACHE_MS; undefined when the room does not exist. */
  async get(conv: string): Promise<RoomSettings | undefined> {
    const hit = this.cache.get(conv);
    if (hit && !(hit instanceof Promise) && Date.now() - hit.at < CACHE_MS) return hit;
    if (hit instanceof Promise) return hit;
    if (this.cache.size >= MAX_CACHED_ROOMS) {
      const now = Date.now();
      for (const [k, v] of this.cache) if (!(v instanceof Promise) && now - v.at >= CACHE_MS) this.cache.delete(k);
    }
    const load = (async () => {
      const room = await this.rooms.getRoom(conv);
      if (!room) return undefined;
      return { at: Date.now(), room, mutes: await this.rooms.activeMutes(conv) };
    })();
    this.cache.set(conv, load);
    try {
      const c = await load;
      if (this.cache.get(conv) === load) {
        if (c) this.cache.set(conv, c);
        else this.cache.delete(conv);
      }
      return c;
    } catch (e) {
      if (this.cache.get(conv) === load) this.cache.delete(conv);
      throw e;
    }
  }

  /** The room changed on this node: its next read loads it again. */
  drop(conv: string): void {
    this.cache.delete(conv);
  }
}
