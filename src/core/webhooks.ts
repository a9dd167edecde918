// Webhooks: the server tells the app backend what happened (docs/webhooks.md). Each event is a signed HTTP POST
// (HMAC-SHA256 over "<timestamp>.<body>"), held in a bounded outbox in the store (an event past the bound is
// dropped and counted: a send never waits for a webhook), retried with jittered exponential backoff for a bounded
// time, and delivered at least once: the receiver dedupes by the event's `id`.
//
// The outbox: an event is gathered in memory and written with the others of the last WEBHOOK_FLUSH_MS in one
// insert, off the send path ("accepted" = that insert committed; a kill before it loses the event). Every node
// claims due rows for its free request slots (on Postgres with FOR UPDATE SKIP LOCKED: nodes take different rows);
// a claim moves the row's next_attempt_at past the request's timeout (a lease: the rows of a node killed with
// requests in flight are due again once it runs out). A 2xx deletes the row, a failure moves next_attempt_at by
// the backoff; a row past its expiry is deleted and counted.
//
// Which node sends what (a cluster sends each event once):
//  - message.offline: the node that committed the message (it sees the event once), batched per recipient;
//  - user.online / user.offline: the node the cluster presence names (the user's first connection anywhere / its
//    last one; a dead node's users: the one node that swept its lease);
//  - room.first_viewer / room.last_viewer: the node whose join / leave took the cluster's count from 0 / to 0;
//  - desk.guest_waiting: the node holding the guest's connection;
//  - message.recalled: the node that handled the recall.
import { isLiveRoom } from "./conv-ids.ts";
import { metric, onCollect } from "./metrics.ts";
import type { CoreEvent, Message } from "./types.ts";
import { signedHeaders, WebhookHeaders } from "./webhook-signing.ts";

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
  /** accepted events are written to the outbox this often (what a kill can lose) */
  flushMs?: number;
  /** the outbox is looked at for due rows (other nodes', retries, a dead node's) this often */
  pollMs?: number;
}

const mQueued = metric("chat_webhooks_queued_total", "Webhook events accepted into the outbox (committed)");
const mDelivered = metric("chat_webhooks_delivered_total", "Webhook events the receiver answered with 2xx");
const mRetries = metric("chat_webhooks_retries_total", "Webhook attempts that failed and were retried later");
const mOverflow = metric("chat_webhooks_dropped_total", "Webhook events dropped", "counter", { reason: "overflow" });
const mGaveUp = metric("chat_webhooks_dropped_total", "Webhook events dropped", "counter", { reason: "expired" });
const mUnrouted = metric("chat_webhooks_dropped_total", "Webhook events dropped", "counter", { reason: "no_url" });
const mStoreErrors = metric("chat_webhooks_store_errors_total", "Webhook outbox statements that failed (retried at the next flush)");
const gHeld = metric("chat_webhooks_held", "Webhook events held (the outbox as this node last counted it, and those not yet written to it)", "gauge");

/** An event on its way into the outbox: its id, kind and the JSON body signed on every attempt. */
export interface OutboxEvent {
  id: string;
  kind: WebhookKind;
  body: string;
}

/** A claimed outbox row; `attempts` counts this one. */
export interface OutboxRow {
  id: string;
  kind: string;
  body: string;
  attempts: number;
}

/**
 * The durable queue of webhook events, shared by the nodes of a cluster (store/webhook-outbox.ts). Each call is
 * one committed statement; times are the store's clock.
 */
export interface WebhookOutbox {
  /** Inserts events due now, given up `retryForMs` from now; only as many as keep the outbox at `max` rows. Returns how many went in. */
  add(events: OutboxEvent[], retryForMs: number, max: number): Promise<number>;
  /** Claims up to `n` due rows (not claimed by another node): each is due again after `leaseMs` unless removed or rescheduled before. */
  claim(n: number, leaseMs: number): Promise<OutboxRow[]>;
  /** Deletes delivered rows; returns how many were there. */
  remove(ids: string[]): Promise<number>;
  /** Reschedules failed rows `waitMs` from now, or deletes those whose next attempt would be past their expiry. */
  retry(items: { id: string; waitMs: number }[]): Promise<{ kept: number; expired: number }>;
  /** Deletes due rows past their expiry; returns how many. */
  expire(): Promise<number>;
  count(): Promise<number>;
}

/** Longest wait between two attempts of one event. */
const MAX_BACKOFF_MS = 30_000;
const BASE_BACKOFF_MS = 100;
/** A claimed row stays this node's for its request's timeout and this margin (to record the outcome). */
const LEASE_MARGIN_MS = 2_000;
/** Events written to the outbox in one statement. */
const INSERT_MAX = 1_000;
/** Messages in one message.offline event (more make another event). */
const BATCH_MAX = 100;
/** Guests with a waiting timer at once. */
const DESK_TIMERS_MAX = 100_000;

export interface WebhookDeps {
  sender: HttpSender;
  /** the durable queue (store/webhook-outbox.ts) */
  outbox: WebhookOutbox;
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
  /** Events accepted by emit, written to the outbox at the next flush (what a kill can lose). */
  private buffer: OutboxEvent[] = [];
  /** Rows in the outbox, as this node last counted them (recounted at every poll). */
  private stored = 0;
  private inFlight = 0;
  /** Outcomes waiting for the next flush: delivered rows to delete, failed ones to reschedule. */
  private delivered: string[] = [];
  private failed: { id: string; waitMs: number }[] = [];
  private flushTimer?: ReturnType<typeof setTimeout>;
  private readonly pollTimer: ReturnType<typeof setInterval>;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private running?: Promise<void>;
  private again = false;
  private pollWanted = true;
  private readonly batches = new Map<string, Message[]>();
  /** offline checks under way (a draining node waits for them: their messages belong in its last batches) */
  private lookups = 0;
  private batchTimer?: ReturnType<typeof setTimeout>;
  private readonly deskTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly idle: { done(): boolean; resolve(): void }[] = [];
  private stopped = false;

  constructor(
    private readonly s: WebhookSettings,
    private readonly d: WebhookDeps,
  ) {
    onCollect(() => (gHeld.value = this.held));
    // At start: what the outbox holds from before (this node's last run, or other nodes) is due now.
    this.pollTimer = setInterval(() => this.poll(), s.pollMs ?? 1000);
    this.poll();
  }

  private get held(): number {
    return this.buffer.length + this.stored;
  }

  /** Whether any URL takes this kind. */
  wants(kind: WebhookKind): boolean {
    return (this.s.urls[kind] ?? this.s.urls["*"]) !== undefined;
  }

  /**
   * Accepts an event; never waits. It is written to the outbox at the next flush (WEBHOOK_FLUSH_MS) and from then
   * on survives a kill. Returns false when it was dropped (not configured, or the queue is full).
   */
  emit(kind: WebhookKind, data: Record<string, unknown>): boolean {
    if (!this.wants(kind) || this.stopped) return false;
    if (this.held >= this.s.queueMax) {
      mOverflow.value++;
      return false;
    }
    const ev: WebhookEvent = { id: crypto.randomUUID(), kind, ts: Date.now(), node: this.d.node, data };
    this.buffer.push({ id: ev.id, kind, body: JSON.stringify(ev) });
    this.flushSoon();
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

  /** Resolves once nothing is held: nothing buffered, in flight or in the outbox (tests, a draining node with a deadline). */
  settled(): Promise<void> {
    return this.until(() => this.isIdle());
  }

  /** Resolves once this node's own work is written: nothing buffered, gathered or in flight, every outcome recorded. */
  private quiet(): Promise<void> {
    return this.until(() => this.isQuiet());
  }

  private until(done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => this.idle.push({ done, resolve }));
  }

  /**
   * A node going down: gathered offline messages are written to the outbox now (and claimed at once), the requests
   * in flight get up to `ms` to finish and their outcomes are written; what is left waits in the outbox for the
   * next node to claim.
   */
  async drain(ms: number): Promise<void> {
    let t: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((r) => (t = setTimeout(r, ms)));
    // Offline checks under way end first: their messages join the batches written now.
    await Promise.race([this.until(() => this.lookups === 0), deadline]);
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    for (const u of [...this.batches.keys()]) this.flushBatch(u);
    this.flushSoon(0);
    await Promise.race([this.quiet(), deadline]);
    clearTimeout(t);
    await this.stop();
  }

  /** Stops: claims nothing more, writes what is buffered and the outcomes known, and clears its timers. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pollTimer);
    clearTimeout(this.flushTimer);
    for (const t of this.timers) clearTimeout(t);
    for (const t of this.deskTimers.values()) clearTimeout(t);
    clearTimeout(this.batchTimer);
    this.timers.clear();
    this.deskTimers.clear();
    await this.run();
  }

  private async offline(to: string[], msg: Message): Promise<void> {
    let online: Set<string>;
    this.lookups++;
    try {
      online = await this.d.onlineOf(to);
    } catch (e) {
      return this.d.log(`webhook offline check: ${e}`);
    } finally {
      this.lookups--;
      queueMicrotask(() => this.checkIdle());
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

  /** A flush (write the buffer and the outcomes, then claim) in `ms`, unless one comes sooner. */
  private flushSoon(ms = this.s.flushMs ?? 50): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.run();
    }, ms);
  }

  private poll(): void {
    this.pollWanted = true;
    void this.run();
  }

  /** One flush at a time: a flush asked for while one runs runs once more after it. */
  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.cycle();
      } while (this.again);
      this.running = undefined;
    })();
    return this.running;
  }

  private async cycle(): Promise<void> {
    const o = this.d.outbox;
    const failed = (what: string, e: unknown) => {
      mStoreErrors.value++;
      this.d.log(`webhook outbox ${what}: ${e}`);
    };
    // 1. Accepted events into the outbox: from its commit on, an event survives a kill.
    while (this.buffer.length) {
      const batch = this.buffer.slice(0, INSERT_MAX);
      try {
        const n = await o.add(batch, this.s.retryForMs, this.s.queueMax);
        this.buffer.splice(0, batch.length);
        mQueued.value += n;
        mOverflow.value += batch.length - n;
        this.stored += n;
      } catch (e) {
        // Kept for the next flush (the buffer stays bounded: emit counts it against WEBHOOK_QUEUE_MAX).
        failed("insert", e);
        this.flushLater();
        break;
      }
    }
    // 2. Outcomes: delivered rows deleted, failed ones rescheduled (or given up past their expiry).
    if (this.delivered.length) {
      const ids = this.delivered.splice(0);
      try {
        this.stored = Math.max(0, this.stored - (await o.remove(ids)));
      } catch (e) {
        this.delivered.push(...ids);
        failed("delete", e);
        this.flushLater();
      }
    }
    if (this.failed.length) {
      const items = this.failed.splice(0);
      try {
        const r = await o.retry(items);
        mRetries.value += r.kept;
        mGaveUp.value += r.expired;
        this.stored = Math.max(0, this.stored - r.expired);
        if (r.expired) this.d.log(`webhook: ${r.expired} event(s) given up after ${this.s.retryForMs} ms of attempts`);
      } catch (e) {
        this.failed.push(...items);
        failed("reschedule", e);
        this.flushLater();
      }
    }
    // 3. Poll: rows left past their expiry (claimed by a node that died) are given up; the outbox is recounted
    // (other nodes add to it and deliver from it).
    if (this.pollWanted) {
      this.pollWanted = false;
      try {
        const gone = await o.expire();
        mGaveUp.value += gone;
        this.stored = await o.count();
      } catch (e) {
        failed("poll", e);
      }
    }
    // 4. Claim due rows for the free request slots.
    const free = (this.s.concurrency ?? 8) - this.inFlight;
    if (free > 0 && !this.stopped && this.stored > 0) {
      try {
        const rows = await o.claim(free, this.s.timeoutMs + LEASE_MARGIN_MS);
        for (const r of rows) void this.attempt(r);
      } catch (e) {
        failed("claim", e);
      }
    }
    this.checkIdle();
  }

  /** After a store error: try again after a poll interval, not in a tight loop. */
  private flushLater(): void {
    this.later(this.s.pollMs ?? 1000);
  }

  private later(ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) void this.run();
    }, ms);
    this.timers.add(t);
  }

  private async attempt(r: OutboxRow): Promise<void> {
    this.inFlight++;
    const url = this.s.urls[r.kind as WebhookKind] ?? this.s.urls["*"];
    let ok = false;
    if (url === undefined) {
      // Written while a URL took this kind, which this node's settings no longer have: dropped.
      mUnrouted.value++;
      this.delivered.push(r.id);
      this.d.log(`webhook ${r.kind} ${r.id}: no URL takes this kind; dropped`);
      this.inFlight--;
      this.flushSoon();
      return;
    }
    try {
      const res = await this.d.sender.post(url, r.body, signedHeaders(this.s.secret, r.body, { [WebhookHeaders.id]: r.id, [WebhookHeaders.kind]: r.kind }), this.s.timeoutMs);
      ok = res.status >= 200 && res.status < 300;
    } catch {
      ok = false;
    }
    this.inFlight--;
    if (ok) {
      mDelivered.value++;
      this.delivered.push(r.id);
    } else {
      // Full jitter over an exponential step: receivers coming back are not hit by every node at once.
      const step = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** (r.attempts - 1));
      const waitMs = Math.round(step / 2 + Math.random() * (step / 2));
      this.failed.push({ id: r.id, waitMs });
      // Due then: claimed at that time (its reschedule is written at the next flush, so a flush later).
      if (!this.stopped) this.later(waitMs + (this.s.flushMs ?? 50) + 10);
    }
    if (!this.stopped) this.flushSoon();
  }

  private isQuiet(): boolean {
    return this.buffer.length === 0 && this.batches.size === 0 && this.inFlight === 0 && this.delivered.length === 0 && this.failed.length === 0;
  }

  private isIdle(): boolean {
    return this.isQuiet() && this.stored === 0;
  }

  private checkIdle(): void {
    for (const w of this.idle.filter((w) => w.done())) {
      this.idle.splice(this.idle.indexOf(w), 1);
      w.resolve();
    }
  }
}
