// This node's sessions, by user. Routes core events to local sockets (encoding once per codec) and,
// through the bus, to the nodes holding the recipients' other connections.
import { pack, unpack } from "msgpackr";
import type { Bus } from "../bus/bus.ts";
import { keys } from "../bus/keys.ts";
import { metric } from "../core/metrics.ts";
import type { CoreEvent } from "../core/types.ts";
import type { Frame, Session } from "./session.ts";

interface Envelope {
  /** origin node: a node ignores its own envelopes, it delivered locally already */
  o: string;
  e: CoreEvent;
  /** session to skip (the sender's own connection, which got an ack instead) */
  k?: string;
}

const mOut = metric("chat_frames_out_total", "Frames written to sockets");
const mBackpressure = metric("chat_send_backpressure_total", "Sends queued under backpressure");
const mDropped = metric("chat_send_dropped_total", "Sends dropped by the socket layer");
const mBusIn = metric("chat_bus_received_total", "Envelopes received from the bus");
const mBusOut = metric("chat_bus_published_total", "Envelopes published to the bus");

export class Hub {
  private readonly byUser = new Map<string, Set<Session>>();
  readonly all = new Set<Session>();

  constructor(
    private readonly bus: Bus,
    readonly nodeId: string,
    private readonly log: (msg: string) => void = console.error,
  ) {
    bus.onMessage((ch, payload) => this.fromBus(ch, payload));
  }

  add(s: Session): void {
    this.all.add(s);
  }

  /** Binds a session to its user once authenticated; the first local session subscribes the user's channel. */
  bindUser(s: Session, userId: string): void {
    s.userId = userId;
    let set = this.byUser.get(userId);
    if (!set) {
      this.byUser.set(userId, (set = new Set()));
      this.bus.subscribe(keys.userChannel(userId)).catch((e) => this.log(`bus subscribe ${userId}: ${e}`));
    }
    set.add(s);
  }

  remove(s: Session): void {
    this.all.delete(s);
    if (!s.userId) return;
    const set = this.byUser.get(s.userId);
    if (!set?.delete(s)) return;
    if (set.size === 0) {
      this.byUser.delete(s.userId);
      this.bus.unsubscribe(keys.userChannel(s.userId));
    }
  }

  sessionsOf(userId: string): ReadonlySet<Session> | undefined {
    return this.byUser.get(userId);
  }

  isLocal(userId: string): boolean {
    return this.byUser.has(userId);
  }

  localUsers(): number {
    return this.byUser.size;
  }

  /** Routes an event to its recipients, here and on other nodes. `skip` is a session id not to send to. */
  dispatch(ev: CoreEvent, skip?: string): void {
    const cache = new Map<string, Frame | undefined>();
    for (const u of ev.to) this.deliverLocal(u, ev, skip, cache);
    if (!this.bus.hasPeers) return;
    const bytes = pack({ o: this.nodeId, e: ev, k: skip } satisfies Envelope);
    for (const u of ev.to) {
      this.bus.publish(keys.userChannel(u), bytes);
      mBusOut.value++;
    }
  }

  private deliverLocal(userId: string, ev: CoreEvent, skip: string | undefined, cache: Map<string, Frame | undefined>) {
    const set = this.byUser.get(userId);
    if (!set) return;
    for (const s of set) {
      if (s.id === skip || s.closed) continue;
      const key = s.dialect.encodesPerUser ? `${s.codec}\u0000${userId}` : s.codec;
      let frame: Frame | undefined;
      if (cache.has(key)) frame = cache.get(key);
      else cache.set(key, (frame = s.dialect.encode(ev, s)));
      if (frame !== undefined) this.send(s, frame);
    }
  }

  /** Writes one frame; returns false when the socket dropped it. */
  send(s: Session, frame: Frame): boolean {
    if (s.closed) return false;
    const r = s.ws.send(frame);
    mOut.value++;
    if (r === -1) mBackpressure.value++;
    else if (r === 0) {
      mDropped.value++;
      return false;
    }
    return true;
  }

  private fromBus(channel: string, payload: Uint8Array): void {
    let env: Envelope;
    try {
      env = unpack(payload) as Envelope;
    } catch {
      return;
    }
    if (env.o === this.nodeId) return;
    mBusIn.value++;
    const prefix = keys.userChannel("");
    if (channel.startsWith(prefix)) this.deliverLocal(channel.slice(prefix.length), env.e, env.k, new Map());
  }
}
