// The per-room tick queue of live rooms (core/live.ts): what is posted to a room on this node is gathered for
// ROOM_TICK_MS and goes out as one `room` event (one frame per codec per node). In/out notices are given the
// users' names and the tick is stamped with the room's online count once. A room's droppable items are capped
// per tick (MAX_TICK_ITEMS: a flood, not a slow consumer); must-deliver items are never dropped here.
import { forgetMetric, metric } from "./metrics.ts";
import type { Users } from "./ports.ts";
import type { CoreEvent, RoomItem } from "./types.ts";

/** Droppable items one room may queue on one node per tick; more are dropped (a flood, not a slow consumer). */
export const MAX_TICK_ITEMS = 500;

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
  /** Fans a room event out to the room's subscribers on every node (the hub's topic publish). */
  publish(conv: string, ev: CoreEvent): void;
  /** Connections in the room across the cluster (presence). */
  count(conv: string): Promise<number>;
  log(msg: string): void;
}

interface Queue {
  items: RoomItem[];
  droppable: number;
  timer?: ReturnType<typeof setTimeout>;
  busy: boolean;
}

export class RoomTicks {
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly d: RoomTicksDeps) {}

  /** Queues an item for the room's next tick (starting the tick's timer unless one is running). */
  post(conv: string, item: RoomItem): void {
    let q = this.queues.get(conv);
    if (!q) this.queues.set(conv, (q = { items: [], droppable: 0, busy: false }));
    if (item.type === "in" || item.type === "out" || (item.type === "msg" && item.msg.class === "droppable")) {
      if (q.droppable >= MAX_TICK_ITEMS) return void mOverflow.value++;
      q.droppable++;
    }
    q.items.push(item);
    if (!q.timer && !q.busy) q.timer = setTimeout(() => this.flush(conv, q!), this.d.tickMs);
  }

  /** Drops what is queued (shutdown). Must-deliver items are committed already: clients resync. */
  stop(): void {
    for (const q of this.queues.values()) if (q.timer) clearTimeout(q.timer);
    this.queues.clear();
  }

  /** One tick: everything queued for the room goes out as one event, in/out notices with names and the count. */
  private async flush(conv: string, q: Queue): Promise<void> {
    q.timer = undefined;
    q.busy = true;
    const items = q.items;
    q.items = [];
    q.droppable = 0;
    let online: number | undefined;
    try {
      const people = items.filter((i): i is Extract<RoomItem, { type: "in" | "out" }> => i.type === "in" || i.type === "out");
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
      this.d.publish(conv, online === undefined ? { type: "room", conv, items } : { type: "room", conv, items, online });
      mTicks.value++;
    } catch (e) {
      this.d.log(`room ${conv} publish: ${(e as Error).stack ?? e}`);
    } finally {
      q.busy = false;
      if (q.items.length) q.timer = setTimeout(() => this.flush(conv, q), this.d.tickMs);
      else if (this.queues.get(conv) === q) this.queues.delete(conv);
    }
  }
}
