// Webhooks: the server tells the app backend what happened (docs/webhooks.md). Each event is a signed HTTP POST
// (HMAC-SHA256 over "<timestamp>.<body>"), held in a bounded in-memory queue (an event past it is dropped and
// counted: a send never waits for a webhook), retried with jittered exponential backoff for a bounded time, and
// delivered at least once: the receiver dedupes by the event's `id`.
//
// Which node sends what (a cluster sends each event once):
//  - message.offline: the node that committed the message (it sees the event once), batched per recipient;
//  - user.online / user.offline: the node the cluster presence names (the user's first connection anywhere / its
//    last one; a dead node's users: the one node that swept its lease);
//  - room.first_viewer / room.last_viewer: the node whose join / leave took the cluster's count from 0 / to 0;
//  - desk.guest_waiting: the node holding the guest's connection;
//  - message.recalled: the node that handled the recall.
import { createHmac, timingSafeEqual } from "node:crypto";
import { isLiveRoom } from "./conv-ids.ts";
import { metric, onCollect } from "./metrics.ts";
import type { CoreEvent, Message } from "./types.ts";

export const WEBHOOK_KINDS = [
  "message.offline",
  "user.online",
  "user.offline",
  "room.first_viewer",
  "room.last_viewer",
  "desk.guest_waiting",
  "message.recalled",
] as const;
export type WebhookKind = (typeof WEBHOOK_KINDS)[number];

/** Request headers of every webhook and moderation call. */
export const WebhookHeaders = {
  id: "x-chatd-event-id",
  kind: "x-chatd-event",
  timestamp: "x-chatd-timestamp",
  signature: "x-chatd-signature",
} as const;

export interface WebhookEvent {
  id: string;
  kind: WebhookKind;
  /** ms since the epoch, when the event happened */
  ts: number;
  node: string;
  data: Record<string, unknown>;
}

/** The HTTP client (adapters/http-sender.ts): resolves with the status, rejects on a network error or timeout. */
export interface HttpSender {
  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<{ status: number; text(): Promise<string> }>;
}

export interface WebhookSettings {
  /** URL per kind; `*` is every kind without its own */
  urls: Partial<Record<WebhookKind | "*", string>>;
  secret: string;
  timeoutMs: number;
  /** how long an event is retried after its first attempt before it is given up (counted) */
  retryForMs: number;
  /** events held (waiting, in flight or between retries); past it new events are dropped and counted */
  queueMax: number;
  /** offline messages to one user are gathered this long into one event */
  batchMs: number;
  /** a desk guest still waiting in its group's queue after this long is reported */
  deskWaitMs: number;
  /** requests in flight at once */
  concurrency?: number;
}

/** The signature header's value: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export function signature(secret: string, timestamp: string, body: string): string {
  return "v1=" + createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/**
 * For receivers: true when the request's signature matches the body and its timestamp (seconds) is within
 * `toleranceSec` of now. `headers` is a Fetch `Headers` or a plain object with lower-case names.
 */
export function verifyWebhook(secret: string, headers: Headers | Record<string, string | undefined>, body: string, toleranceSec = 300): boolean {
  const get = (n: string) => (headers instanceof Headers ? headers.get(n) : headers[n]) ?? undefined;
  const ts = get(WebhookHeaders.timestamp);
  const sig = get(WebhookHeaders.signature);
  if (!ts || !sig || !/^\d{1,12}$/.test(ts)) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSec) return false;
  const want = Buffer.from(signature(secret, ts, body));
  const got = Buffer.from(sig);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Signed headers for a body (webhooks and the moderation hook). */
export function signedHeaders(secret: string, body: string, extra: Record<string, string> = {}): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  return { "content-type": "application/json", [WebhookHeaders.timestamp]: ts, [WebhookHeaders.signature]: signature(secret, ts, body), ...extra };
}

const mQueued = metric("chat_webhooks_queued_total", "Webhook events queued");
const mDelivered = metric("chat_webhooks_delivered_total", "Webhook events the receiver answered with 2xx");
const mRetries = metric("chat_webhooks_retries_total", "Webhook attempts that failed and were retried later");
const mOverflow = metric("chat_webhooks_dropped_total", "Webhook events dropped", "counter", { reason: "overflow" });
const mGaveUp = metric("chat_webhooks_dropped_total", "Webhook events dropped", "counter", { reason: "expired" });
const gHeld = metric("chat_webhooks_held", "Webhook events held (waiting, in flight or between retries)", "gauge");

interface Item {
  ev: WebhookEvent;
  url: string;
  body: string;
  first: number;
  attempt: number;
}

/** Longest wait between two attempts of one event. */
const MAX_BACKOFF_MS = 30_000;
const BASE_BACKOFF_MS = 100;
/** Messages in one message.offline event (more make another event). */
const BATCH_MAX = 100;
/** Guests with a waiting timer at once. */
const DESK_TIMERS_MAX = 100_000;

export interface WebhookDeps {
  sender: HttpSender;
  node: string;
  /** who is online anywhere in the cluster */
  onlineOf(users: string[]): Promise<Set<string>>;
  /** a room's count of connections over the cluster */
  roomCount(topic: string): Promise<number>;
  /** an online guest's place in its queue (undefined once served or gone) */
  guestPosition(guest: string): Promise<number | undefined>;
  log(msg: string): void;
}

export class Webhooks {
  private readonly ready: Item[] = [];
  private held = 0;
  private inFlight = 0;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly batches = new Map<string, Message[]>();
  private batchTimer?: ReturnType<typeof setTimeout>;
  private readonly deskTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly idle: (() => void)[] = [];
  private stopped = false;

  constructor(
    private readonly s: WebhookSettings,
    private readonly d: WebhookDeps,
  ) {
    onCollect(() => (gHeld.value = this.held));
  }

  /** Whether any URL takes this kind. */
  wants(kind: WebhookKind): boolean {
    return (this.s.urls[kind] ?? this.s.urls["*"]) !== undefined;
  }

  /** Queues an event; never waits. Returns false when it was dropped (not configured, or the queue is full). */
  emit(kind: WebhookKind, data: Record<string, unknown>): boolean {
    const url = this.s.urls[kind] ?? this.s.urls["*"];
    if (url === undefined || this.stopped) return false;
    if (this.held >= this.s.queueMax) {
      mOverflow.value++;
      return false;
    }
    const ev: WebhookEvent = { id: crypto.randomUUID(), kind, ts: Date.now(), node: this.d.node, data };
    this.held++;
    mQueued.value++;
    this.ready.push({ ev, url, body: JSON.stringify(ev), first: Date.now(), attempt: 0 });
    this.pump();
    return true;
  }

  /** A core event the node committed or handled: messages to offline users, recalls. */
  observe(ev: CoreEvent): void {
    if (ev.type === "message") {
      if (!this.wants("message.offline")) return;
      const to = ev.to.filter((u) => u !== ev.msg.from);
      if (to.length) void this.offline(to, ev.msg);
    } else if (ev.type === "recall" && "conv" in ev) {
      this.recalled(ev.conv, ev.id, ev.seq, ev.from);
    }
  }

  recalled(conv: string, id: string, seq: number | undefined, from: string): void {
    if (this.wants("message.recalled")) this.emit("message.recalled", { conv, msg: id, seq, from });
  }

  /** A user came online anywhere in the cluster, or went offline everywhere. */
  presence(user: string, change: "online" | "offline"): void {
    this.emit(change === "online" ? "user.online" : "user.offline", { user });
  }

  /** A connection entered (+1) or left (-1) a live room; this node's count is already written. */
  room(topic: string, delta: 1 | -1): void {
    if (!isLiveRoom(topic)) return;
    const kind = delta > 0 ? "room.first_viewer" : "room.last_viewer";
    if (!this.wants(kind)) return;
    void this.d.roomCount(topic).then(
      (n) => {
        if ((delta > 0 && n === 1) || (delta < 0 && n === 0)) this.emit(kind, { room: topic.slice(2), conv: topic });
      },
      (e) => this.d.log(`webhook room count ${topic}: ${e}`),
    );
  }

  /** A desk guest was queued (no agent free): reported if still waiting after deskWaitMs. */
  guestQueued(guest: string, group: string): void {
    if (!this.wants("desk.guest_waiting") || this.deskTimers.has(guest) || this.deskTimers.size >= DESK_TIMERS_MAX) return;
    const since = Date.now();
    const t = setTimeout(() => {
      this.deskTimers.delete(guest);
      void this.d.guestPosition(guest).then(
        (position) => {
          if (position !== undefined) this.emit("desk.guest_waiting", { guest, group, position, waitingMs: Date.now() - since });
        },
        (e) => this.d.log(`webhook desk guest ${guest}: ${e}`),
      );
    }, this.s.deskWaitMs);
    this.deskTimers.set(guest, t);
  }

  /** Resolves once nothing is held (tests, a draining node with a deadline). */
  settled(): Promise<void> {
    if (this.held === 0 && this.batches.size === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** A node going down: gathered offline messages go out now, and what is held gets up to `ms` to be delivered. */
  async drain(ms: number): Promise<void> {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    for (const u of [...this.batches.keys()]) this.flushBatch(u);
    this.checkIdle();
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.settled(), new Promise<void>((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
    this.stop();
  }

  /** Drops what is left (a node going down: at-least-once holds while it runs). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const t of this.deskTimers.values()) clearTimeout(t);
    clearTimeout(this.batchTimer);
    this.timers.clear();
    this.deskTimers.clear();
  }

  private async offline(to: string[], msg: Message): Promise<void> {
    let online: Set<string>;
    try {
      online = await this.d.onlineOf(to);
    } catch (e) {
      return this.d.log(`webhook offline check: ${e}`);
    }
    for (const u of to) {
      if (online.has(u)) continue;
      let b = this.batches.get(u);
      if (!b) this.batches.set(u, (b = []));
      b.push(msg);
      if (b.length >= BATCH_MAX) this.flushBatch(u);
    }
    if (this.batches.size && !this.batchTimer) {
      this.batchTimer = setTimeout(() => {
        this.batchTimer = undefined;
        for (const u of [...this.batches.keys()]) this.flushBatch(u);
        this.checkIdle();
      }, this.s.batchMs);
    }
  }

  private flushBatch(user: string): void {
    const msgs = this.batches.get(user);
    this.batches.delete(user);
    if (msgs?.length) this.emit("message.offline", { user, messages: msgs });
  }

  private pump(): void {
    const max = this.s.concurrency ?? 8;
    while (this.inFlight < max && this.ready.length) void this.attempt(this.ready.shift()!);
  }

  private async attempt(it: Item): Promise<void> {
    this.inFlight++;
    it.attempt++;
    let ok = false;
    try {
      const res = await this.d.sender.post(it.url, it.body, signedHeaders(this.s.secret, it.body, { [WebhookHeaders.id]: it.ev.id, [WebhookHeaders.kind]: it.ev.kind }), this.s.timeoutMs);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      ok = false;
    }
    this.inFlight--;
    if (ok) {
      mDelivered.value++;
      this.done();
    } else {
      // Full jitter over an exponential step: receivers coming back are not hit by every node at once.
      const step = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** (it.attempt - 1));
      const wait = step / 2 + Math.random() * (step / 2);
      if (this.stopped || Date.now() + wait - it.first > this.s.retryForMs) {
        mGaveUp.value++;
        this.d.log(`webhook ${it.ev.kind} ${it.ev.id} given up after ${it.attempt} attempts`);
        this.done();
      } else {
        mRetries.value++;
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.ready.push(it);
          this.pump();
        }, wait);
        this.timers.add(t);
      }
    }
    this.pump();
  }

  private done(): void {
    this.held--;
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.held === 0 && this.batches.size === 0) for (const r of this.idle.splice(0)) r();
  }
}
