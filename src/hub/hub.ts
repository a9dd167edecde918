// This node's sessions, by user and by topic. Routes core events to local sockets, encoding once per
// codec, and through the bus to the nodes holding the other recipients.
//  - user events (1:1, receipts): per-recipient sends, plus one envelope per recipient's user channel;
//  - topic events (rooms, groups joined as topics): one encode per codec and one Bun publish per server
//    (Bun topic `<topic>|<codec>`), plus one envelope on the topic's channel. Before a room tick goes out,
//    subscribers under backpressure are taken out of the Bun topic (slow.ts), so the publish stays one call.
//  - every frame to one socket goes through sends.ts, which writes it (or holds it for a corked turn) and reports
//    a pushed message or a pulled page to the delivered marks (core/delivery.ts) once the socket accepted it.
// Who is where: `byUser` (user → its local sessions) and the topic index (topics.ts); the bus subscribes a
// user's or topic's channel when its first local session arrives here and unsubscribes after its last.
import type { Server } from "bun";
import type { Bus } from "../bus/bus.ts";
import { Keys } from "../bus/keys.ts";
import { DeliveryMarks, type PulledMark } from "../core/delivery.ts";
import { CloseCodes } from "../core/errors.ts";
import { metric, metricBy } from "../core/metrics.ts";
import type { EventSink } from "../core/ports.ts";
import { forgetRoomDrops } from "../core/room-ticks.ts";
import type { CoreEvent } from "../core/types.ts";
import type { Presence } from "../presence/presence.ts";
import { envelope, fromSelf, opened, originHeader } from "./envelope.ts";
import { hookClose, Sends, type Carried } from "./sends.ts";
import type { Frame, Session } from "./session.ts";
import { SlowConsumers } from "./slow.ts";
import { Topics } from "./topics.ts";
import { WelcomeHold } from "./welcome.ts";

/** Longest a login waits for its user channel subscription (Redis away: serve locally meanwhile). */
const BIND_WAIT_MS = 2000;

const mBusIn = metric("chat_bus_received_total", "Envelopes received from the bus");
const mBusOut = metric("chat_bus_published_total", "Envelopes published to the bus");
/** Open connections of one protocol (of every hub of the process). */
const openOf = metricBy("chat_connections_by_dialect", "Open connections per protocol", "gauge", "dialect");

/** Told when a user's connection enters or leaves a topic. */
export interface TopicWatcher {
  joined(userId: string, topic: string): void;
  left(userId: string, topic: string): void;
}

export class Hub implements EventSink {
  private readonly byUser = new Map<string, Set<Session>>();
  private readonly topics: Topics;
  private readonly slow: SlowConsumers;
  private readonly servers: Server<Session>[] = [];
  readonly all = new Set<Session>();
  /** open sessions (those in `all`) per protocol */
  private readonly perDialect = new Map<string, number>();
  /** users whose channel subscription is on its way */
  private readonly binding = new Map<string, Promise<void>>();
  /** this node's envelope header */
  private readonly origin: Uint8Array;
  /** Delivered marks of pushes to `marksOnPush` protocols and of pulled pages (none without a store to write them to). */
  readonly marks?: DeliveryMarks<Session>;
  /** every frame this hub writes to a socket */
  private readonly sends: Sends;
  /** Connections bound to their user whose login answer is not sent yet: their pushes wait here, in order. */
  private readonly welcoming = new WelcomeHold();
  private readonly watcher?: TopicWatcher;
  private readonly topicListeners: ((topic: string, ev: CoreEvent) => void)[] = [];
  private remoteTopic?: (topic: string, ev: CoreEvent) => boolean;
  private readonly presenceChanged?: (userId: string, change: "online" | "offline") => void | Promise<void>;

  constructor(
    private readonly bus: Bus,
    readonly presence: Presence,
    readonly nodeId: string,
    private readonly log: (msg: string) => void = console.error,
    opts: {
      backpressureBytes?: number;
      resyncMs?: number;
      /** Stores delivered marks of pushes (one user, Chat.markPushed) and of pulled pages (many users, Chat.markPulled). */
      markDelivered?: {
        pushed(userId: string, pushed: ReadonlyMap<string, readonly number[]>): Promise<void>;
        pulled(marks: PulledMark[]): Promise<void>;
      };
      /** Told of every topic subscription and unsubscription (live rooms post in/out notices). */
      watcher?: TopicWatcher;
      /**
       * Told when a user came online anywhere in the cluster, or went offline everywhere (presence notices). A
       * login waits for the online notices (within BIND_WAIT_MS): once its answer is out, they are too.
       */
      presenceChanged?: (userId: string, change: "online" | "offline") => void | Promise<void>;
    } = {},
    private readonly keys: Keys = new Keys(),
  ) {
    this.watcher = opts.watcher;
    this.presenceChanged = opts.presenceChanged;
    this.origin = originHeader(nodeId);
    bus.onMessage((ch, payload) => this.fromBus(ch, payload));
    const limitBytes = opts.backpressureBytes ?? 1 << 20;
    this.slow = new SlowConsumers(limitBytes, opts.resyncMs ?? 10_000, (s, f) => this.send(s, f));
    if (opts.markDelivered) {
      this.marks = new DeliveryMarks<Session>({
        advance: opts.markDelivered.pushed,
        advancePulled: opts.markDelivered.pulled,
        // Everything the socket accepted left the server: a frame still queued is lost if the socket closes.
        writtenOut: (s) => !s.closed && s.ws.getBufferedAmount() === 0,
        log,
      });
    }
    this.sends = new Sends(this.marks);
    this.topics = new Topics(this.servers, this.slow, limitBytes, this.marks);
  }

  addServer(server: Server<Session>): void {
    this.servers.push(server);
  }

  add(s: Session): void {
    this.all.add(s);
    this.perDialect.set(s.dialect.name, (this.perDialect.get(s.dialect.name) ?? 0) + 1);
    openOf(s.dialect.name).value++;
    hookClose(s.ws);
  }

  /**
   * Holds the frames sent until the end of this turn of the event loop, then writes each socket's in one corked
   * write (a committed batch's acks and pushes: Sends.corkTurn).
   */
  corkTurn(): void {
    this.sends.corkTurn();
  }

  /**
   * Writes a frame (or several, in order) to a session's socket, or holds it for the corked turn; false when the
   * socket dropped one (its connection is then closed with 4100). `carried`: the message or the pulled page the
   * frame carries, reported as delivered once the socket wrote it out (Sends.send).
   */
  send(s: Session, frame: Frame | Frame[], carried?: Carried): boolean {
    return this.sends.send(s, frame, carried);
  }

  /**
   * Binds a session to its user once authenticated. The user's first local session subscribes the
   * user's channel and reports the user online (with its role, for role sampling). Resolves once the
   * user can be reached from other nodes (the subscription is active), so a dialect that waits for it
   * before its welcome, and the client that syncs after the welcome, miss nothing sent in between. With
   * the bus away it resolves after BIND_WAIT_MS anyway: local traffic must not wait for Redis.
   * With `welcome` (the protocol's login answer) the connection's pushes are held until then: `welcome` runs
   * first, then what arrived meanwhile is sent, so no push comes before the login answer.
   */
  bindUser(s: Session, userId: string, role = "user", welcome?: () => void): Promise<void> {
    s.userId = userId;
    s.role = role;
    if (welcome) this.welcoming.hold(s);
    let set = this.byUser.get(userId);
    if (!set) {
      this.byUser.set(userId, (set = new Set()));
      const p = Promise.all([
        this.bus.hasPeers && this.bus.subscribe(this.keys.userChannel(userId)).catch((e) => this.log(`bus subscribe ${userId}: ${e}`)),
        Promise.resolve(this.presence.userUp(userId, role)).then((first) => (first ? this.presenceChanged?.(userId, "online") : undefined)),
      ]).then(() => {});
      this.binding.set(userId, p);
      void p.then(() => this.binding.get(userId) === p && this.binding.delete(userId));
    }
    set.add(s);
    const pending = this.binding.get(userId);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = pending
      ? Promise.race([pending, new Promise<void>((r) => (timer = setTimeout(r, BIND_WAIT_MS)))]).finally(() => clearTimeout(timer))
      : Promise.resolve();
    if (!welcome) return bound;
    return bound.then(
      () => this.welcomed(s, welcome),
      (e) => {
        this.welcoming.release(s);
        throw e;
      },
    );
  }

  private welcomed(s: Session, welcome: () => void): void {
    const held = this.welcoming.release(s);
    if (s.closed) return;
    welcome();
    if (held?.overflow) return void s.ws.close(CloseCodes.resync, "too many pushes during login: reconnect and sync");
    for (const [frame, msg] of held?.frames ?? []) this.send(s, frame, msg);
  }

  remove(s: Session): void {
    if (this.all.delete(s)) {
      const n = (this.perDialect.get(s.dialect.name) ?? 1) - 1;
      if (n > 0) this.perDialect.set(s.dialect.name, n);
      else this.perDialect.delete(s.dialect.name);
      openOf(s.dialect.name).value--;
    }
    this.welcoming.release(s);
    this.marks?.closed(s);
    for (const t of [...s.topics]) this.leave(s, t);
    if (!s.userId) return;
    const set = this.byUser.get(s.userId);
    if (!set?.delete(s)) return;
    if (set.size === 0) {
      this.byUser.delete(s.userId);
      if (this.bus.hasPeers) this.bus.unsubscribe(this.keys.userChannel(s.userId));
      const userId = s.userId;
      void Promise.resolve(this.presence.userDown(userId, s.role ?? "user")).then((last) => (last ? this.presenceChanged?.(userId, "offline") : undefined));
    }
  }

  /** Open connections per protocol on this node. */
  connectionsByDialect(): ReadonlyMap<string, number> {
    return this.perDialect;
  }

  /** This node's connections per room (topics `r:…`), from the topic index. */
  roomCounts(): Map<string, number> {
    return this.topics.localCounts("r:");
  }

  sessionsOf(userId: string): ReadonlySet<Session> | undefined {
    return this.byUser.get(userId);
  }

  /** Subscribes a session to a topic; the topic's first local session subscribes the node to the topic's channel. */
  join(s: Session, topic: string): void {
    if (s.topics.has(topic) || s.closed) return;
    if (this.topics.add(s, topic) && this.bus.hasPeers) {
      this.bus.subscribe(this.keys.topicChannel(topic)).catch((e) => this.log(`bus subscribe topic ${topic}: ${e}`));
    }
    void this.presence.roomDelta(topic, 1);
    if (s.userId) this.watcher?.joined(s.userId, topic);
  }

  /** Takes a session out of a topic; after the topic's last local session the node unsubscribes its channel. */
  leave(s: Session, topic: string): void {
    if (!s.topics.has(topic)) return;
    const last = this.topics.remove(s, topic);
    void this.presence.roomDelta(topic, -1);
    if (s.userId) this.watcher?.left(s.userId, topic);
    if (!last) return;
    forgetRoomDrops(topic);
    if (this.bus.hasPeers) this.bus.unsubscribe(this.keys.topicChannel(topic));
  }

  /** Routes a user event to its recipients, here and on other nodes. `skip` is a local session not to send to (the sender's own connection, which got an ack instead; session ids are unique per node only). */
  dispatch(ev: CoreEvent, skip?: string): void {
    if (!("to" in ev) || ev.to.length === 0) return; // topic events (rooms) have no user recipients: see publish()
    const cache = new Map<string, Frame | Frame[] | undefined>();
    for (const u of ev.to) this.deliverLocal(u, ev, skip, cache);
    if (!this.bus.hasPeers) return;
    this.bus.publishMany(
      ev.to.map((u) => this.keys.userChannel(u)),
      envelope(this.origin, ev),
    );
    mBusOut.value += ev.to.length;
  }

  /**
   * Fans an event out to a topic's subscribers on every node: one encode per codec, one Bun publish per
   * server. `except` (a local session) does not receive it. `toOthers`: what the other nodes get instead (null:
   * nothing), for an event that holds items they sent (a live room's tick merges theirs: RoomTicks.postRemote).
   */
  publish(topic: string, ev: CoreEvent, except?: Session, toOthers?: CoreEvent | null): void {
    this.publishLocal(topic, ev, except);
    if (!this.bus.hasPeers || toOthers === null) return;
    this.bus.publish(this.keys.topicChannel(topic), envelope(this.origin, toOthers ?? ev));
    mBusOut.value++;
  }

  /** A topic event from another node goes to `fn` first; when it returns true, `fn` has taken it (live rooms' ticks). */
  onRemoteTopicEvent(fn: (topic: string, ev: CoreEvent) => boolean): void {
    this.remoteTopic = fn;
  }

  /**
   * The bus is back after an outage: pushes from other nodes meanwhile were missed (the messages are
   * committed). A protocol with a way to say so gets a `gap` event (native: `{"t":"gap"}`, then sync);
   * a connection of any other protocol is closed with 4100, and its client reconnects and pulls.
   */
  busRecovered(): void {
    const ev: CoreEvent = { type: "gap" };
    const frames = new Map<string, Frame | Frame[] | undefined>();
    for (const s of this.all) {
      if (s.closed || !s.userId) continue;
      if (!frames.has(s.codec)) frames.set(s.codec, s.dialect.encode(ev, s.codec));
      const f = frames.get(s.codec);
      if (f !== undefined) this.send(s, f);
      else s.ws.close(CloseCodes.resync, "missed pushes while the cluster bus was away: reconnect and sync");
    }
  }

  /** Stores the delivered marks of the pushes the user's connections wrote out so far (before a pull). */
  flushMarks(userId: string): Promise<void> {
    return this.marks?.flush(userId) ?? Promise.resolve();
  }

  /** `fn` runs after each topic event is published to this node's subscribers (a protocol's bookkeeping). */
  onTopicEvent(fn: (topic: string, ev: CoreEvent) => void): void {
    this.topicListeners.push(fn);
  }

  /** Bun's drain handler: a socket wrote out some of its queue. */
  drained(s: Session): void {
    this.slow.drained(s);
  }

  private publishLocal(topic: string, ev: CoreEvent, except?: Session): void {
    this.sends.uncork(); // frames sent before this event go out before it
    this.topics.fanOut(topic, ev, except);
    for (const fn of this.topicListeners) fn(topic, ev);
  }

  private deliverLocal(userId: string, ev: CoreEvent, skip: string | undefined, cache: Map<string, Frame | Frame[] | undefined>) {
    const set = this.byUser.get(userId);
    if (!set) return;
    const msg = ev.type === "message" ? ev.msg : undefined;
    for (const s of set) {
      if (s.id === skip || s.closed) continue;
      let frame: Frame | Frame[] | undefined;
      if (cache.has(s.codec)) frame = cache.get(s.codec);
      else cache.set(s.codec, (frame = s.dialect.encode(ev, s.codec)));
      if (frame !== undefined && !this.welcoming.offer(s, frame, msg)) this.send(s, frame, msg);
    }
  }

  private fromBus(channel: string, payload: Uint8Array): void {
    if (fromSelf(payload, this.origin)) return;
    const ev = opened(payload);
    if (!ev) return;
    mBusIn.value++;
    const of = this.keys.channelId(channel);
    if (of && "user" in of) this.deliverLocal(of.user, ev, undefined, new Map());
    else if (of && !this.remoteTopic?.(of.topic, ev)) this.publishLocal(of.topic, ev);
  }
}
