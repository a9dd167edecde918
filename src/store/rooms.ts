// Live rooms in the store: the room's conversation row (kind `room`, no member rows) and its timed mutes.
import { and, eq, gt, lte, sql } from "drizzle-orm";
import { roomIdOf } from "../core/conv-ids.ts";
import type { Db } from "./db.ts";
import type { RoomRecords } from "../core/ports.ts";
import type { RoomRow } from "../core/records.ts";
import { conversations, roomMutes } from "./schema.ts";

const cols = {
  conv: conversations.id,
  name: conversations.name,
  ownerId: conversations.ownerId,
  slowModeSec: conversations.slowModeSec,
  lastSeq: conversations.lastSeq,
  closed: conversations.closed,
  createdAt: conversations.createdAt,
};

/** Live rooms' settings and mutes. */
export class RoomStore implements RoomRecords {
  constructor(private readonly db: Db) {}

  async getRoom(conv: string): Promise<RoomRow | undefined> {
    const [r] = await this.db
      .select(cols)
      .from(conversations)
      .where(and(eq(conversations.id, conv), eq(conversations.kind, "room")));
    return r;
  }

  /** Creates the room if it does not exist (a first join or publish creates it), then reads it. */
  async ensureRoom(conv: string, name: string): Promise<RoomRow> {
    await this.db.insert(conversations).values({ id: conv, kind: "room", name }).onConflictDoNothing();
    return (await this.getRoom(conv))!;
  }

  /** Creates or updates a room's settings. */
  async upsertRoom(
    conv: string,
    set: { name?: string; ownerId?: string | null; slowModeSec?: number },
  ): Promise<RoomRow> {
    const values = { id: conv, kind: "room", name: set.name ?? roomIdOf(conv) ?? conv, ownerId: set.ownerId ?? null, slowModeSec: set.slowModeSec ?? 0 };
    const update = Object.fromEntries(Object.entries(set).filter(([, v]) => v !== undefined));
    const q = this.db.insert(conversations).values(values);
    await (Object.keys(update).length ? q.onConflictDoUpdate({ target: conversations.id, set: update }) : q.onConflictDoNothing());
    return (await this.getRoom(conv))!;
  }

  /** Mutes in force: user → until (ms). */
  async activeMutes(conv: string): Promise<Map<string, number>> {
    const rows = await this.db
      .select({ user: roomMutes.userId, until: roomMutes.until })
      .from(roomMutes)
      .where(and(eq(roomMutes.convId, conv), gt(roomMutes.until, sql`now()`)));
    return new Map(rows.map((r) => [r.user, r.until.getTime()]));
  }

  /** Sets (until) or lifts (null) a user's mute in a room; expired mutes of the room are cleared on the way. */
  async setRoomMute(conv: string, userId: string, until: Date | null): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.delete(roomMutes).where(and(eq(roomMutes.convId, conv), lte(roomMutes.until, sql`now()`)));
      if (until === null) await tx.delete(roomMutes).where(and(eq(roomMutes.convId, conv), eq(roomMutes.userId, userId)));
      else
        await tx
          .insert(roomMutes)
          .values({ convId: conv, userId, until })
          .onConflictDoUpdate({ target: [roomMutes.convId, roomMutes.userId], set: { until, createdAt: new Date() } });
    });
  }
}
