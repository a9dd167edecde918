// Who is in a topic on this node, and the fan-out of a topic event to them. The index is one map,
// topic → codec → the topic's local sessions of that codec: the encode-once groups, the per-codec counts and
// the member list are all read from it. A session's own `topics` set is its reverse (what to leave when it
// closes). The hub decides what a topic's first and last session mean (bus subscription, presence, notices).
import type { Server } from "bun";
import type { DeliveryMarks } from "../core/delivery.ts";
import { CloseCodes } from "../core/errors.ts";
import { metric } from "../core/metrics.ts";
import type { CoreEvent, Message } from "../core/types.ts";
import { NO_TOPICS, type Frame, type Session } from "./session.ts";
import type { SlowConsumers } from "./slow.ts";

const mFanout = metric("chat_fanout_deliveries_total", "Frames delivered to room and group subscribers through topic publishes");
const mPublish = metric("chat_topic_publish_total", "Topic publishes (one per codec per server)");
const mDropped = metric("chat_send_dropped_total", "Sends dropped by the socket layer");

type Codecs = Map<string, Set<Session>>;

export class Topics {
  /** topic → codec → its local sessions (never an empty set or map) */
  private readonly index = new Map<string, Codecs>();

  constructor(
    private readonly servers: readonly Server<Session>[],
    private readonly slow: SlowConsumers,
    private readonly limitBytes: number,
    private readonly marks?: DeliveryMarks<Session>,
  ) {}

  /** Adds a session (not in the topic yet) to the topic and its Bun topic; true when it is the topic's first here. */
  add(s: Session, topic: string): boolean {
    if (s.topics === NO_TOPICS) s.topics = new Set();
    s.topics.add(topic);
    s.ws.subscribe(`${topic}|${s.codec}`);
    let codecs = this.index.get(topic);
    const first = !codecs;
    if (!codecs) this.index.set(topic, (codecs = new Map()));
    let set = codecs.get(s.codec);
    if (!set) codecs.set(s.codec, (set = new Set()));
    set.add(s);
    return first;
  }

  /** Takes a session (in the topic) out of it; true when it was the topic's last here. */
  remove(s: Session, topic: string): boolean {
    s.topics.delete(topic);
    if (!s.closed) s.ws.unsubscribe(`${topic}|${s.codec}`);
    this.slow.left(s, topic);
    const codecs = this.index.get(topic);
    const set = codecs?.get(s.codec);
    if (!codecs || !set?.delete(s)) return false;
    if (set.size === 0) codecs.delete(s.codec);
    if (codecs.size > 0) return false;
    this.index.delete(topic);
    return true;
  }

  /** This node's sessions per topic, of the topics whose name starts with `prefix` (O(topics), not O(sessions)). */
  localCounts(prefix: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const [topic, codecs] of this.index) {
      if (!topic.startsWith(prefix)) continue;
      let n = 0;
      for (const set of codecs.values()) n += set.size;
      out.set(topic, n);
    }
    return out;
  }

  /**
   * Sends a topic event to this node's subscribers: one encode per codec, one Bun publish per server.
   * `except` (a local session) does not receive it.
   */
  fanOut(topic: string, ev: CoreEvent, except?: Session): void {
    const codecs = this.index.get(topic);
    if (!codecs) return;
    const out: [codec: string, frames: Frame[]][] = [];
    for (const [codec, set] of codecs) {
      const f = dialectOf(set)?.encode(ev, codec);
      if (f !== undefined) out.push([codec, Array.isArray(f) ? f : [f]]);
    }
    if (ev.type === "room") this.slow.screen(topic, ev, members(codecs), new Map(out.map(([codec, frames]) => [codec, leadBytes(frames)])));
    const msg = ev.type === "message" ? ev.msg : undefined;
    const takers = msg ? this.screenMessage(codecs, msg, out, except) : undefined;
    for (const [codec, frames] of out) {
      const key = `${topic}|${codec}`;
      mFanout.value += frames.length * (codecs.get(codec)?.size ?? 0);
      for (const frame of frames) {
        // ws.publish skips the publishing socket itself; server.publish reaches every subscriber.
        for (const server of this.servers) {
          if (except && !except.closed && except.codec === codec && except.ws.isSubscribed(key)) except.ws.publish(key, frame);
          else server.publish(key, frame);
          mPublish.value++;
        }
      }
    }
    for (const s of takers ?? []) this.marks?.accepted(s, s.userId!, msg!.conv, msg!.seq);
  }

  /**
   * Before a message goes out on a topic: Bun's publish skips a socket over its backpressure limit without
   * a word, so such a subscriber is closed with 4100 (it reconnects and gets what it missed) instead. Returns
   * the subscribers that take it and mark what they are pushed.
   */
  private screenMessage(codecs: Codecs, msg: Message, out: [codec: string, frames: Frame[]][], except?: Session): Session[] {
    const takers: Session[] = [];
    for (const [codec] of out) {
      for (const s of codecs.get(codec) ?? []) {
        if (s.closed || s === except) continue;
        if (s.ws.getBufferedAmount() >= this.limitBytes) {
          mDropped.value++;
          s.ws.close(CloseCodes.resync, "too far behind: reconnect to catch up");
          continue;
        }
        if (s.dialect.marksOnPush && s.userId && s.userId !== msg.from) takers.push(s);
      }
    }
    return takers;
  }
}

/** Every session of a codec group speaks the same dialect (the codec names it). */
function dialectOf(set: Set<Session>) {
  for (const s of set) return s.dialect;
  return undefined;
}

function* members(codecs: Codecs): Iterable<Session> {
  for (const set of codecs.values()) yield* set;
}

/** Bytes a socket must take before the last of a tick's frames: Bun accepts a frame while its queue is within the limit. */
function leadBytes(frames: Frame[]): number {
  let n = 0;
  for (let i = 0; i < frames.length - 1; i++) {
    const f = frames[i]!;
    n += typeof f === "string" ? Buffer.byteLength(f) : f.byteLength;
  }
  return n;
}
