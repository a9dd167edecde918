// The per-room tick queue of live rooms (core/live.ts): what is posted to a room on this node goes out as one
// `room` event (one frame per codec per node) per tick. In/out notices are given the users' names and the tick
// is stamped with the room's online count once. A room's droppable items are capped per tick (MAX_TICK_ITEMS:
// a flood, not a slow consumer); must-deliver items are never dropped here.
//
// Adaptive: a room's ticks are paced by a bucket of TICK_BURST frames refilled at one per ROOM_TICK_MS. A quiet
// room has frames in its bucket, so what is posted to it goes out at once (on the next turn of the event
// loop, with whatever else was posted in the same turn); a busy room has spent them and coalesces everything
// posted within a tick into one frame when the next frame is due, exactly as a fixed tick would: under load
// the frames per second, and so the cost per delivery, stay those of ROOM_TICK_MS.
import { forgetMetric, metric } from "./metrics.ts";
import type { Users } from "./ports.ts";
import type { CoreEvent, RoomItem } from "./types.ts";

/** Droppable items one room may queue on one node per tick; more are dropped (a flood, not a slow consumer). */
export const MAX_TICK_ITEMS = 500;

/** Frames a quiet room may send at once (the bucket's size); then one per tick. */
export const TICK_BURST = 3;

const mOverflow = metric("chat_room_overflow_total", "Droppable room items dropped because a room queued too many in one tick");
const mTicks = metric("chat_room_ticks_total", "Room ticks sent (one frame per codec per node each)");

/** The per-room counter of droppable items skipped for slow consumers (item × consumer), on this node. */
const DROPS = "chat_room_dropped_total";
export const roomDrops = (conv: string) => metric(DROPS, "Room items skipped for consumers under backpressure", "counter", { room: conv });
/** A room with no subscriber left on this node loses its counter (rooms come and go; series must not pile up). */
export const forgetRoomDrops = (conv: string) => forgetMetric(DROPS, { room: conv });

export interface RoomTicksDeps {
  store: Pick<Users, "getUsers">;
  tickMs: number;
  /**
   * Fans a room event out to the room's subscribers on every node (the hub's topic publish). `toOthers`: what
   * the other nodes get instead (null: nothing), when the event holds items they sent (merged here).
   */
  publish(conv: string, ev: CoreEvent, toOthers?: CoreEvent | null): void;
  /** Connections in the room across the cluster (presence). */
  count(conv: string): Promise<number>;
  log(msg: string): void;
  /** The clock and timer (tests inject their own); default performance.now, setImmediate for 0 ms, else setTimeout. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

interface Queue {
  items: RoomItem[];
  droppable: number;
  /** the next flush, or the moment the quiet room's entry is forgotten (its bucket is full again) */
  timer?: unknown;
  /** whether `timer` is a flush (not the forgetting of a quiet room) */
  flushing: boolean;
  busy: boolean;
  /** frames the room may send now (0..TICK_BURST, fractional while refilling), as of `at` */
  frames: number;
  at: number;
  /** the online count another node's tick carried, when this one has none of its own */
  online?: number;
}

export class RoomTicks {
  private readonly queues = new Map<string, Queue>();
  /** items another node posted to a room and published in its own tick: merged into this node's next one */
  private readonly remote = new WeakSet<RoomItem>();
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;

  constructor(private readonly d: RoomTicksDeps) {
    this.now = d.now ?? (() => performance.now());
    // "At once" is the next turn of the event loop (setImmediate: after this turn's acks, with no timer's delay).
    this.setTimer = d.setTimer ?? ((fn, ms) => (ms <= 0 ? { now: setImmediate(fn) } : { later: setTimeout(fn, ms) }));
    this.clearTimer =
      d.clearTimer ??
      ((t) => {
        const h = t as { now?: ReturnType<typeof setImmediate>; later?: ReturnType<typeof setTimeout> };
        if (h.now) clearImmediate(h.now);
        else clearTimeout(h.later);
      });
  }

  /** Queues an item for the room's next frame: at once in a quiet room, at its next tick in a busy one. */
  post(conv: string, item: RoomItem): void {
    const q = this.queue(conv);
    if (item.type === "in" || item.type === "out" || (item.type === "msg" && item.msg.class === "droppable")) {
      if (q.droppable >= MAX_TICK_ITEMS) return void mOverflow.value++;
      q.droppable++;
    }
    q.items.push(item);
    if (!q.flushing && !q.busy) this.schedule(conv, q);
  }

  /**
   * A room event from another node's tick: its items go out to this node's members with this node's next tick
   * (at once in a quiet room), so a member gets one frame per tick however many nodes have senders. They are
   * not capped here (their node did) and not sent on to other nodes.
   */
  postRemote(conv: string, items: RoomItem[], online?: number): void {
    const q = this.queue(conv);
    for (const it of items) {
      this.remote.add(it);
      q.items.push(it);
    }
    if (online !== undefined) q.online = online;
    if (!q.flushing && !q.busy) this.schedule(conv, q);
  }

  /** The room's queue, made on first use (a quiet room: its bucket full). */
  private queue(conv: string): Queue {
    let q = this.queues.get(conv);
    if (!q) this.queues.set(conv, (q = { items: [], droppable: 0, flushing: false, busy: false, frames: TICK_BURST, at: this.now() }));
    return q;
  }

  /** Drops what is queued (shutdown). Must-deliver items are committed already: clients resync. */
  stop(): void {
    for (const q of this.queues.values()) if (q.timer !== undefined) this.clearTimer(q.timer);
    this.queues.clear();
  }

  /** Refills the room's bucket up to now. */
  private refill(q: Queue): void {
    const t = this.now();
    q.frames = Math.min(TICK_BURST, q.frames + (t - q.at) / this.d.tickMs);
    q.at = t;
  }

  /** Arms the room's next flush: on the next turn when a frame is in its bucket, else when the next one is. */
  private schedule(conv: string, q: Queue): void {
    if (q.timer !== undefined) this.clearTimer(q.timer);
    this.refill(q);
    const wait = q.frames >= 1 ? 0 : (1 - q.frames) * this.d.tickMs;
    q.flushing = true;
    q.timer = this.setTimer(() => this.flush(conv, q), wait);
  }

  /** A room that sent nothing for a while is forgotten once its bucket is full again (it is quiet). */
  private idle(conv: string, q: Queue): void {
    this.refill(q);
    const full = (TICK_BURST - q.frames) * this.d.tickMs;
    q.timer = this.setTimer(() => {
      q.timer = undefined;
      if (!q.items.length && !q.busy && !q.flushing && this.queues.get(conv) === q) this.queues.delete(conv);
    }, Math.max(1, full));
  }

  /** One tick: everything queued for the room goes out as one event, in/out notices with names and the count. */
  private async flush(conv: string, q: Queue): Promise<void> {
    q.timer = undefined;
    q.flushing = false;
    q.busy = true;
    this.refill(q);
    q.frames = Math.max(0, q.frames - 1);
    const items = q.items;
    q.items = [];
    q.droppable = 0;
    let online: number | undefined = q.online;
    q.online = undefined;
    const local = items.filter((i) => !this.remote.has(i));
    try {
      const people = local.filter((i): i is Extract<RoomItem, { type: "in" | "out" }> => i.type === "in" || i.type === "out");
      if (people.length) {
        const [n, users] = await Promise.all([this.d.count(conv), this.d.store.getUsers([...new Set(people.map((p) => p.user.id))])]);
        online = n;
        const nick = new Map(users.map((u) => [u.id, u.nick]));
        for (const p of people) p.user.nick = nick.get(p.user.id) ?? "";
      }
    } catch (e) {
      // Names and the count are a nicety; the messages (must-deliver ones above all) still go out.
      this.d.log(`room ${conv} tick: ${(e as Error).message}`);
    }
    try {
      const ev = (its: RoomItem[]): CoreEvent => (online === undefined ? { type: "room", conv, items: its } : { type: "room", conv, items: its, online });
      if (local.length === items.length) this.d.publish(conv, ev(items));
      else this.d.publish(conv, ev(items), local.length ? ev(local) : null);
      mTicks.value++;
    } catch (e) {
      this.d.log(`room ${conv} publish: ${(e as Error).stack ?? e}`);
    } finally {
      q.busy = false;
      if (this.queues.get(conv) === q) {
        if (q.items.length) this.schedule(conv, q);
        else this.idle(conv, q);
      }
    }
  }
}
