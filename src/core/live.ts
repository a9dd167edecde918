// Live rooms: conversation kind `room`, id `r:<roomId>`. A room's audience is large and ephemeral, so
// viewers are not stored members: joining is a subscription of one connection (the hub's topic), the
// online count is the cluster-wide presence count of those connections, and mutes have their own table.
//
// Room messages have a class:
//  - droppable (danmaku, typing): never stored; gathered per room for ROOM_TICK_MS and sent as one frame;
//    a consumer too slow to take them misses them (the hub skips it and counts the drop per room);
//  - must (gifts, paid messages): committed through Chat.commit first (a seq, an ack after the commit),
//    then sent in the next tick; a consumer too slow to take one is told to resync from its seq, or is
//    closed with 4100 (hub/slow.ts), and fetches what it missed from the room's history.
// In/out notices ride the same tick as droppable items; the tick stamps them with the online count once
// (the per-room tick queue: core/room-ticks.ts).
// Flood control here: timed mutes (4032) and per-room slow mode (4291) for clients; the per-connection
// token bucket (4290) is the dialects'. The server API (`trusted`) is exempt from all three.
import { KIND_RE, type Chat, type SendInput } from "./chat.ts";
import { isLiveRoom, roomConvId, roomIdOf } from "./conv-ids.ts";
import { fail } from "./errors.ts";
import { storableJson } from "./storable.ts";
import type { IdGen } from "./ids.ts";
import { metric } from "./metrics.ts";
import type { Messages, RoomRecords, Users } from "./ports.ts";
import type { RoomRow } from "./records.ts";
import { RoomSettingsCache } from "./room-settings.ts";
import { RoomTicks } from "./room-ticks.ts";
import type { CoreEvent, Message, RoomClass, RoomMessage } from "./types.ts";

export const ROOM_ID_RE = /^[\w.@-]{1,128}$/;
export const ROOM_CLASSES: readonly RoomClass[] = ["droppable", "must"];

/** Rooms one connection may be in at once (each is a subscription the node keeps). */
export const MAX_ROOMS_PER_CONNECTION = 50;
/**
 * Largest body (as JSON) of a droppable message from a client. With MAX_TICK_ITEMS (core/room-ticks.ts) it bounds one tick's
 * frame (~1 MB), so a flood of big danmaku cannot push every viewer's socket past BACKPRESSURE_BYTES.
 */
export const MAX_DROPPABLE_BODY = 2048;
const MAX_SLOW_ENTRIES = 100_000;

const mIn = metric("chat_room_messages_total", "Room messages accepted (droppable and must-deliver)");

export interface RoomSendInput extends SendInput {
  class?: RoomClass;
}

/** What a room send returns: must-deliver messages carry their seq (after the commit), droppable ones none. */
export interface RoomAck {
  id: string;
  conv: string;
  seq?: number;
  ts: number;
  dup: boolean;
}

export interface RoomInfo {
  room: string;
  conv: string;
  name: string;
  owner: string | null;
  /** connections in the room across the cluster */
  online: number;
  /** seq of the latest must-deliver message: a client resyncs from the last one it saw */
  lastSeq: number;
  slowModeSec: number;
  createdAt: number;
}

export interface LiveDeps {
  store: Pick<Users, "getUser" | "getUsers"> & Pick<Messages, "history">;
  rooms: RoomRecords;
  chat: Pick<Chat, "commit" | "userExists">;
  ids: IdGen;
  tickMs: number;
  /** Fans a room event out to the room's subscribers on every node (the hub's topic publish); see RoomTicksDeps. */
  publish(conv: string, ev: CoreEvent, toOthers?: CoreEvent | null): void;
  /** Pushes a user event (a mute notice). */
  emit(ev: CoreEvent & { to: string[] }): void;
  /** Connections in the room across the cluster (presence). */
  count(conv: string): Promise<number>;
  log(msg: string): void;
}

export class Live {
  private readonly ticks: RoomTicks;
  /** Room settings and mutes, cached per node. */
  private readonly settings: RoomSettingsCache;
  /** `conv\0user` → when the user may post again under slow mode (ms). */
  private readonly slow = new Map<string, number>();

  constructor(private readonly d: LiveDeps) {
    this.ticks = new RoomTicks(d);
    this.settings = new RoomSettingsCache(d.rooms);
  }

  /**
   * A user enters a room (created by its first join). The caller subscribes the connection to the
   * returned `conv`; the hub then reports the subscription (`entered`) and the others see an "in".
   */
  async join(userId: string, roomId: string, roomsOfConnection = 0): Promise<Omit<RoomInfo, "online"> & { mutedUntil: number | null }> {
    const conv = roomConvId(checkId(roomId));
    if (roomsOfConnection >= MAX_ROOMS_PER_CONNECTION) fail("forbidden", `a connection may be in at most ${MAX_ROOMS_PER_CONNECTION} rooms`);
    let c = await this.settings.get(conv);
    if (!c) {
      await this.d.rooms.ensureRoom(conv, roomId);
      this.settings.drop(conv);
      c = (await this.settings.get(conv))!;
    }
    if (c.room.closed) fail("forbidden", `room ${roomId} is closed`);
    const until = c.mutes.get(userId);
    return { ...infoOf(c.room), mutedUntil: until && until > Date.now() ? until : null };
  }

  /** A connection of `userId` subscribed to `conv` (reported by the hub). */
  entered(userId: string, conv: string): void {
    if (isLiveRoom(conv)) this.ticks.post(conv, { type: "in", user: { id: userId, nick: "" } });
  }

  /** A connection of `userId` left `conv`, or closed while in it. */
  left(userId: string, conv: string): void {
    if (isLiveRoom(conv)) this.ticks.post(conv, { type: "out", user: { id: userId, nick: "" } });
  }

  online(conv: string): Promise<number> {
    return this.d.count(conv);
  }

  /** A client posts to a room it is in: mutes and slow mode apply (the room's owner is exempt from slow mode). */
  async send(userId: string, roomId: string, input: RoomSendInput): Promise<RoomAck> {
    const conv = roomConvId(checkId(roomId));
    const c = await this.settings.get(conv);
    if (!c) fail("not_found", `no room ${roomId}`);
    if (c!.room.closed) fail("forbidden", `room ${roomId} is closed`);
    const now = Date.now();
    const muted = (c!.mutes.get(userId) ?? 0) - now;
    if (muted > 0) fail("muted", `you are muted in this room for ${Math.ceil(muted / 1000)} s`, muted);
    checkInput(input);
    if ((input.class ?? "droppable") === "droppable" && (JSON.stringify(input.body)?.length ?? 0) > MAX_DROPPABLE_BODY) {
      fail("bad_request", `a droppable message's body is at most ${MAX_DROPPABLE_BODY} characters of JSON; send a big one as must-deliver`);
    }
    const slowMs = c!.room.slowModeSec * 1000;
    if (slowMs > 0 && c!.room.ownerId !== userId) {
      const key = `${conv}\u0000${userId}`;
      const wait = (this.slow.get(key) ?? 0) - now;
      if (wait > 0) fail("slow_mode", `slow mode: one message per ${c!.room.slowModeSec} s, retry in ${Math.ceil(wait / 1000)} s`, wait);
      if (this.slow.size >= MAX_SLOW_ENTRIES) for (const [k, t] of this.slow) if (t <= now) this.slow.delete(k);
      this.slow.set(key, now + slowMs);
    }
    return this.deliver(userId, conv, input);
  }

  /** The server API posts to a room as `from` (an existing user): no mute, slow mode or rate limit. */
  async publish(from: string, roomId: string, input: RoomSendInput): Promise<RoomAck> {
    const conv = roomConvId(checkId(roomId));
    checkInput(input);
    if (!(await this.d.chat.userExists(from))) fail("not_found", `no user ${from}`);
    if (!(await this.settings.get(conv))) {
      await this.d.rooms.ensureRoom(conv, roomId);
      this.settings.drop(conv);
    }
    return this.deliver(from, conv, input);
  }

  async info(roomId: string): Promise<RoomInfo> {
    const conv = roomConvId(checkId(roomId));
    const r = await this.d.rooms.getRoom(conv);
    if (!r) fail("not_found", `no room ${roomId}`);
    return { ...infoOf(r!), online: await this.d.count(conv) };
  }

  /** Creates a room or changes its name, owner (exempt from slow mode) or slow mode (0 turns it off). */
  async update(roomId: string, set: { name?: string; owner?: string | null; slowModeSec?: number }): Promise<RoomInfo> {
    const conv = roomConvId(checkId(roomId));
    if (set.slowModeSec !== undefined && (!Number.isInteger(set.slowModeSec) || set.slowModeSec < 0 || set.slowModeSec > 86400)) {
      fail("bad_request", "`slowModeSec` must be 0..86400");
    }
    if (set.owner && !(await this.d.chat.userExists(set.owner))) fail("not_found", `no user ${set.owner}`);
    const r = await this.d.rooms.upsertRoom(conv, { name: set.name, ownerId: set.owner, slowModeSec: set.slowModeSec });
    this.settings.drop(conv);
    return { ...infoOf(r), online: await this.d.count(conv) };
  }

  /** Mutes a user in a room for `seconds` (0 lifts it). The user's connections are told. */
  async mute(roomId: string, userId: string, seconds: number): Promise<number | null> {
    const conv = roomConvId(checkId(roomId));
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 366 * 86400) fail("bad_request", "`seconds` must be 0..31622400");
    if (!(await this.d.rooms.getRoom(conv))) fail("not_found", `no room ${roomId}`);
    if (!(await this.d.chat.userExists(userId))) fail("not_found", `no user ${userId}`);
    const until = seconds ? Date.now() + seconds * 1000 : null;
    await this.d.rooms.setRoomMute(conv, userId, until === null ? null : new Date(until));
    this.settings.drop(conv);
    const nick = (await this.d.store.getUser(userId))?.nick ?? "";
    this.d.emit({ type: "member", conv, user: { id: userId, nick }, change: "mute", by: null, mutedUntil: until, to: [userId] });
    return until;
  }

  async mutes(roomId: string): Promise<{ user: string; mutedUntil: number }[]> {
    const conv = roomConvId(checkId(roomId));
    return [...(await this.d.rooms.activeMutes(conv))].map(([user, mutedUntil]) => ({ user, mutedUntil }));
  }

  /**
   * A page of the room's stored (must-deliver) messages, open to any signed-in user: a live room is public.
   * `after` (a seq) pages forward, oldest first: how a resyncing client fetches what it missed.
   */
  async history(roomId: string, q: { after?: number; before?: number; limit?: number }): Promise<{ msgs: Message[]; more: boolean }> {
    const conv = roomConvId(checkId(roomId));
    const limit = q.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) fail("bad_request", "`limit` must be 1..500");
    const msgs = await this.d.store.history(conv, { afterSeq: q.after, beforeSeq: q.before, limit: limit + 1, desc: q.after === undefined });
    return { msgs: msgs.slice(0, limit), more: msgs.length > limit };
  }

  /** A room event from another node's tick: merged into this node's next tick of the room. */
  remote(conv: string, ev: CoreEvent): boolean {
    if (ev.type !== "room" || !isLiveRoom(conv)) return false;
    this.ticks.postRemote(conv, ev.items, ev.online);
    return true;
  }

  /** A stored room message was recalled: the room's viewers are told on the next tick. */
  recalled(conv: string, id: string, seq: number, from: string): void {
    this.ticks.post(conv, { type: "recall", id, seq, from });
  }

  /** Drops what is queued (shutdown). Must-deliver items are committed already: clients resync. */
  stop(): void {
    this.ticks.stop();
  }

  private async deliver(from: string, conv: string, input: RoomSendInput): Promise<RoomAck> {
    mIn.value++;
    const cls = input.class ?? "droppable";
    if (cls === "must") {
      // No recipients by user: room messages reach viewers through the room's tick, not user channels.
      const ack = await this.d.chat.commit(from, conv, input, []);
      if (!ack.dup) this.ticks.post(conv, { type: "msg", msg: { id: ack.id, conv, seq: ack.seq, from, kind: input.kind ?? "text", body: input.body, cmid: input.cmid, ts: ack.ts, class: "must" } });
      return ack;
    }
    const now = Date.now();
    const msg: RoomMessage = { id: this.d.ids.next(now).toString(), conv, from, kind: input.kind ?? "text", body: input.body, ts: now, class: "droppable" };
    if (input.cmid !== undefined) msg.cmid = input.cmid;
    this.ticks.post(conv, { type: "msg", msg });
    return { id: msg.id, conv, ts: now, dup: false };
  }
}

function checkId(roomId: string): string {
  if (typeof roomId !== "string" || !ROOM_ID_RE.test(roomId)) fail("bad_request", "a room id is 1-128 characters of [A-Za-z0-9_.@-]");
  return roomId;
}

function checkInput(input: RoomSendInput): void {
  if (input.class !== undefined && !ROOM_CLASSES.includes(input.class)) fail("bad_request", "`class` must be droppable or must");
  if (input.body === undefined) fail("bad_request", "`body` is required");
  // Droppable messages are not stored, but they are encoded as JSON: the same values as a stored body.
  storableJson(input.body, "`body`");
  if (input.kind !== undefined && !KIND_RE.test(input.kind)) fail("bad_request", "`kind` must be 1-32 characters of [A-Za-z0-9_.:-]");
}

function infoOf(r: RoomRow): Omit<RoomInfo, "online"> {
  return {
    room: roomIdOf(r.conv)!,
    conv: r.conv,
    name: r.name,
    owner: r.ownerId,
    lastSeq: Number(r.lastSeq),
    slowModeSec: r.slowModeSec,
    createdAt: r.createdAt.getTime(),
  };
}
