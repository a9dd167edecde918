// Slow consumers of room topics. A room tick reaches its local subscribers by one Bun publish per codec,
// and Bun drops a frame without a word for a socket already over its backpressure limit. So before each
// tick goes out, its subscribers are screened:
//  - a connection with more than half of BACKPRESSURE_BYTES queued is taken out of the Bun topic: it
//    misses this tick and the following ones (counted per room: roomDrops), while everyone else still gets
//    one shared publish;
//  - when its socket drains to a quarter (Bun's `drain` handler) it is put back; if it missed a must-deliver
//    message meanwhile it first gets a `resync` event naming the seq to fetch history after;
//  - a connection that missed a must-deliver message and has not drained within ROOM_RESYNC_MS, or whose
//    queue reaches BACKPRESSURE_BYTES, is closed with 4100: it reconnects and resyncs.
// The other half of BACKPRESSURE_BYTES stays for the connection's own traffic (replies, 1:1 pushes).
import { CloseCodes } from "../core/errors.ts";
import { roomDrops } from "../core/room-ticks.ts";
import { metric } from "../core/metrics.ts";
import type { CoreEvent } from "../core/types.ts";
import type { Frame, Lag, Session } from "./session.ts";

const mLagging = metric("chat_room_lagging_total", "Times a room subscriber was taken out of the topic for backpressure");
const mResync = metric("chat_room_resync_total", "Resync events sent to room subscribers that caught up");
const mKicked = metric("chat_room_kicked_total", "Room subscribers closed with 4100 for falling behind on must-deliver messages");

type RoomEvent = Extract<CoreEvent, { type: "room" }>;

export class SlowConsumers {
  private readonly lagAt: number;
  private readonly resumeAt: number;

  constructor(
    private readonly limitBytes: number,
    private readonly graceMs: number,
    private readonly send: (s: Session, frame: Frame | Frame[]) => boolean,
  ) {
    this.lagAt = Math.floor(limitBytes / 2);
    this.resumeAt = Math.floor(limitBytes / 4);
  }

  /**
   * Runs right before `ev` is published to `topic`: no subscriber left in the topic is over the lag mark,
   * nor so full that Bun would refuse one of the tick's frames (`leadBytes`: per codec, the bytes of all
   * its frames but the last; 0 for the usual one-frame tick).
   */
  screen(topic: string, ev: RoomEvent, sessions: Iterable<Session>, leadBytes: ReadonlyMap<string, number>): void {
    let droppable = 0;
    let firstMust: number | undefined;
    for (const it of ev.items) {
      // Must-deliver: stored messages and recalls (both carry a seq to resync from).
      const seq = it.type === "recall" ? it.seq : it.type === "msg" && it.msg.class === "must" ? it.msg.seq : undefined;
      if (seq === undefined) droppable++;
      else if (firstMust === undefined) firstMust = seq;
    }
    let skipped = 0;
    for (const s of sessions) {
      if (s.closed) continue;
      let lag = s.lag?.get(topic);
      if (!lag) {
        const lead = leadBytes.get(s.codec) ?? 0;
        if (s.ws.getBufferedAmount() <= (lead ? Math.max(0, Math.min(this.lagAt, this.limitBytes - lead)) : this.lagAt)) continue;
        s.ws.unsubscribe(`${topic}|${s.codec}`);
        (s.lag ??= new Map()).set(topic, (lag = { dropped: 0 }));
        mLagging.value++;
      }
      skipped++;
      lag.dropped += droppable;
      if (firstMust === undefined) continue;
      if (lag.after === undefined) {
        lag.after = firstMust - 1;
        s.lagTimer ??= setTimeout(() => this.kick(s, "did not catch up in time"), this.graceMs);
      }
      if (s.ws.getBufferedAmount() >= this.limitBytes) this.kick(s, "send queue full");
    }
    if (skipped && droppable) roomDrops(topic).value += skipped * droppable;
  }

  /** Bun's drain handler: a lagging connection that caught up goes back into its topics. */
  drained(s: Session): void {
    if (!s.lag || s.closed || s.ws.getBufferedAmount() > this.resumeAt) return;
    const lag = s.lag;
    this.clear(s);
    for (const [topic, l] of lag) {
      if (!s.topics.has(topic)) continue;
      s.ws.subscribe(`${topic}|${s.codec}`);
      if (l.after === undefined) continue;
      const frame = s.dialect.encode({ type: "resync", conv: topic, after: l.after, dropped: l.dropped }, s.codec);
      if (frame !== undefined) {
        this.send(s, frame);
        mResync.value++;
      }
    }
  }

  /** The connection left `topic` (or closed): it owes nothing there any more. */
  left(s: Session, topic: string): void {
    if (!s.lag?.delete(topic)) return;
    if (s.lag.size === 0 || s.closed) this.clear(s);
  }

  private kick(s: Session, why: string): void {
    if (s.closed || ![...(s.lag?.values() ?? [])].some((l) => l.after !== undefined)) return;
    mKicked.value++;
    this.clear(s);
    s.ws.close(CloseCodes.resync, `fell behind on room messages: ${why}`);
  }

  private clear(s: Session): void {
    if (s.lagTimer) clearTimeout(s.lagTimer);
    s.lagTimer = undefined;
    s.lag = undefined;
  }
}
