// chatd client SDK for the native protocol (docs/protocol.md). No dependencies: msgpack is used only when the
// app hands in a codec (e.g. msgpackr's pack/unpack). Runs wherever a WHATWG WebSocket exists (browsers, Bun,
// Node 22+), or with one passed in.
//
// What it does for the app: connects with a token (or a callback that fetches one, called again before the
// token's `exp` and after a 4001 close), reconnects with jittered exponential backoff obeying close codes,
// resumes after every reconnect from the last delivered position (each message once, in seq order per
// conversation), sends with a client message id and resends unacknowledged sends after a reconnect, and keeps
// live rooms joined (danmaku, must-deliver messages, `resync`).

export interface Message {
  id: string;
  conv: string;
  seq: number;
  from: string;
  kind: string;
  body: unknown;
  cmid?: string;
  ts: number;
  recalled?: boolean;
}

export interface RoomMessage extends Omit<Message, "seq"> {
  seq?: number;
  class: "droppable" | "must";
}

export interface Ack {
  id: string;
  conv: string;
  seq?: number;
  ts: number;
  dup: boolean;
}

export interface Welcome {
  t: "welcome";
  user: string;
  node: string;
  ts: number;
}

/** A server error reply (`{"t":"error"}`), or a local failure (code 0). */
export class ChatError extends Error {
  constructor(
    readonly code: number,
    readonly error: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "ChatError";
  }
}

/** Typed events of the client. */
export interface ChatEvents {
  /** The connection is up (after every reconnect too), before the resume. */
  connected: Welcome;
  /** The resume after a (re)connect is done: everything missed was delivered. */
  resumed: { reconnect: boolean };
  /** The connection closed; `reconnectInMs` is undefined when the client stopped for good. */
  disconnected: { code: number; reason: string; reconnectInMs?: number };
  /** A message of a conversation (not a live room): once each, in seq order per conversation. */
  message: Message;
  /** A live room's droppable message (danmaku, typing): may be missed, never repeated. */
  danmaku: { room: string; msg: RoomMessage };
  /** A live room's must-deliver message (gifts): once each, in seq order. */
  roomMessage: { room: string; msg: RoomMessage };
  /** A live room's in/out notice. */
  roomPresence: { room: string; change: "in" | "out"; user: { id: string; nick: string }; online?: number };
  /** A message was recalled (conversation or live room). */
  recall: { conv: string; msg: string; seq: number; from: string };
  receipt: { conv: string; user: string; field: "delivered" | "read"; seq: number };
  receipts: { conv: string; counts: { seq: number; delivered: number; read: number }[] };
  member: Record<string, unknown> & { conv: string; change: string };
  friend: Record<string, unknown> & { change: string };
  presence: Record<string, unknown>;
  /** Any other server push, as is. */
  frame: Record<string, unknown> & { t: string };
  /** The client stopped for good (a close code that means "do not reconnect", or `close()`). */
  stopped: { code: number; reason: string };
  /** A background failure (a resume, a token refresh); the client carries on. */
  error: Error;
}

export interface Codec {
  pack(v: unknown): Uint8Array;
  unpack(b: Uint8Array): unknown;
}

export interface ChatClientOptions {
  /** The native endpoint, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /** A token, or a function returning one (called at connect, before `exp`, and after a 4001 close). */
  token: string | (() => string | Promise<string>);
  /** msgpack frames: pass msgpackr (`import { pack, unpack } from "msgpackr"`). Default: JSON. */
  msgpack?: Codec;
  /** A WebSocket constructor (default: the global one). */
  WebSocket?: typeof WebSocket;
  /** Reconnect backoff: first step and cap (ms); each wait is drawn between half and all of the step. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Refresh a token this long before its `exp` (seconds; needs a token callback). */
  refreshBeforeExpSec?: number;
  /** A request without a reply this long fails (and a send is retried). */
  requestTimeoutMs?: number;
  /** Heartbeat interval (below the server's IDLE_TIMEOUT_SEC). */
  pingMs?: number;
  /** Positions delivered before (conversation → last seq seen), e.g. saved by the app across restarts. */
  positions?: Record<string, number>;
  /** How long `delivered` confirmations are gathered before they are sent. */
  confirmMs?: number;
  /** Requests on the wire at once (below the server's MAX_FRAMES_IN_FLIGHT); the rest wait their turn. */
  maxInFlight?: number;
  /** Messages per `sync` page of a resume (1..500, the server's cap; default 200). */
  syncPageSize?: number;
}

type Listener<K extends keyof ChatEvents> = (e: ChatEvents[K]) => void;

interface Pending {
  frame: Record<string, unknown>;
  resolve(v: any): void;
  reject(e: Error): void;
  /** resent after a reconnect (a send with a cmid) instead of failing */
  resend: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

const AUTH_ID = "auth";

/** Close codes after which the client does not reconnect by itself (unless noted). */
export const STOP_CODES = new Set([1000]);

let cmidSeq = 0;
/** A client message id unique enough across devices and restarts. */
export function newCmid(): string {
  const rnd = Math.random().toString(36).slice(2, 10);
  return `${Date.now().toString(36)}-${rnd}-${(++cmidSeq).toString(36)}`;
}

/** The `exp` (seconds) of a JWT, or undefined. */
export function tokenExp(token: string): number | undefined {
  try {
    const part = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return typeof json.exp === "number" ? json.exp : undefined;
  } catch {
    return undefined;
  }
}

export class ChatClient {
  private ws?: WebSocket;
  private token?: string;
  private readonly listeners = new Map<keyof ChatEvents, Set<(e: any) => void>>();
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private attempt = 0;
  private stopped = false;
  private authFailures = 0;
  private everConnected = false;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private pingTimer?: ReturnType<typeof setInterval>;
  /** true once the welcome came and the resume is done: requests go out at once */
  private ready = false;
  private readyWaiters: (() => void)[] = [];
  /** conversation → highest seq handed to the app */
  private readonly last = new Map<string, number>();
  /** conversation → highest seq to confirm as delivered */
  private readonly toConfirm = new Map<string, number>();
  private confirmTimer?: ReturnType<typeof setTimeout>;
  /** confirmations sent and not answered yet */
  private readonly confirming = new Set<Promise<void>>();
  /** ids of messages this client sent (acked): not handed back to it as `message` */
  private readonly own = new Set<string>();
  /** live rooms joined: room → conversation */
  private readonly rooms = new Map<string, string>();
  /** serialises deliveries: sync pages, pushes and gap fills run one after the other */
  private chain: Promise<void> = Promise.resolve();
  /** requests written on the current connection and not answered yet, and those waiting for a place */
  private readonly onWire = new Set<string>();
  private backlog: Pending[] = [];
  /** the user, from the first welcome */
  user?: string;

  constructor(private readonly o: ChatClientOptions) {
    for (const [conv, seq] of Object.entries(o.positions ?? {})) this.last.set(conv, seq);
  }

  on<K extends keyof ChatEvents>(event: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  /** Connects (and keeps reconnecting until `close()`); resolves at the first resume. */
  connect(): Promise<void> {
    this.stopped = false;
    const p = new Promise<void>((resolve, reject) => {
      const off = this.on("resumed", () => (off(), offStop(), resolve()));
      const offStop = this.on("stopped", (e) => (off(), offStop(), reject(new ChatError(e.code, "stopped", e.reason))));
    });
    if (this.ready) return Promise.resolve();
    if (!this.ws && this.reconnectTimer === undefined) void this.open();
    return p;
  }

  /** Closes for good: pending requests fail, unacked sends too. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearTimeout(this.refreshTimer);
    clearInterval(this.pingTimer);
    this.flushConfirms();
    this.ws?.close(1000, "client closed");
    this.failAll(new ChatError(0, "closed", "the client was closed"), true);
    this.emit("stopped", { code: 1000, reason: "client closed" });
  }

  /**
   * Sends the `delivered` confirmations gathered so far now (they are otherwise sent `confirmMs` after the
   * messages) and resolves once the server answered them (stored; or refused, e.g. the user left the group;
   * or the connection was lost): call it before `close()` when the next connection, of this device or another,
   * must not be offered them again (a logout, a test). Never rejects.
   */
  async flush(): Promise<void> {
    this.flushConfirms();
    await Promise.all([...this.confirming]);
  }

  /** The last seq handed to the app per conversation (save it to resume after a restart: `positions`). */
  positions(): Record<string, number> {
    return Object.fromEntries(this.last);
  }

  get connected(): boolean {
    return this.ready;
  }

  /**
   * Sends a message (to a user, or into a conversation). Resolves with the server's ack once committed; an
   * unacked send is sent again (same cmid) after a reconnect, and the server answers a repeat with the first ack.
   */
  send(target: { to: string } | { conv: string }, body: unknown, opts: { kind?: string; cmid?: string } = {}): Promise<Ack> {
    const frame = { t: "send", ...target, body, kind: opts.kind ?? "text", cmid: opts.cmid ?? newCmid() };
    return this.call(frame, true).then((r) => {
      this.own.add(r.msg.id);
      // Our own message right after the last one handed over: the next push follows it without a history fill.
      if (this.last.get(r.msg.conv) === r.msg.seq - 1) this.last.set(r.msg.conv, r.msg.seq);
      if (this.own.size > 10_000) this.own.delete(this.own.values().next().value!);
      return r.msg as Ack;
    });
  }

  /** A request of any frame type (docs/protocol.md): resolves with the reply, rejects with a ChatError. */
  request(frame: Record<string, unknown> & { t: string }): Promise<any> {
    return this.call(frame, false);
  }

  /** Joins a live room (re-joined after every reconnect, and what was missed is fetched). */
  async joinRoom(room: string): Promise<any> {
    const r = await this.request({ t: "join_room", room });
    this.rooms.set(room, r.conv);
    if (!this.last.has(r.conv)) this.last.set(r.conv, r.lastSeq ?? 0);
    return r;
  }

  async leaveRoom(room: string): Promise<any> {
    this.rooms.delete(room);
    return this.request({ t: "leave_room", room });
  }

  /** A room message: `must` is committed and acked with a seq (resent after a reconnect), droppable is not. */
  roomSend(room: string, body: unknown, opts: { kind?: string; must?: boolean; cmid?: string } = {}): Promise<Ack> {
    const frame: Record<string, unknown> = { t: "room_send", room, body, kind: opts.kind ?? "danmaku" };
    if (opts.must) Object.assign(frame, { class: "must", cmid: opts.cmid ?? newCmid() });
    return this.call(frame, !!opts.must).then((r) => r.msg as Ack);
  }

  // ---- connection ----

  private async open(): Promise<void> {
    if (this.stopped) return;
    try {
      if (!this.token || this.tokenDue()) this.token = await this.fetchToken();
    } catch (e) {
      this.emit("error", e as Error);
      return this.retry(0, "token callback failed");
    }
    const WS = this.o.WebSocket ?? globalThis.WebSocket;
    // The token goes in the first frame (not the URL): a refused one closes with 4001, which the client understands.
    const ws = new WS(this.o.msgpack ? `${this.o.url}${this.o.url.includes("?") ? "&" : "?"}format=msgpack` : this.o.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => this.raw({ t: "auth", id: AUTH_ID, token: this.token });
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      let f: any;
      try {
        f = typeof e.data === "string" ? JSON.parse(e.data) : this.o.msgpack!.unpack(new Uint8Array(e.data as ArrayBuffer));
      } catch {
        return;
      }
      if (f && typeof f === "object") this.onFrame(f);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.onClose(e.code, e.reason);
    };
    ws.onerror = () => {};
  }

  private onClose(code: number, reason: string): void {
    this.ws = undefined;
    this.onWire.clear();
    this.backlog = [];
    this.ready = false;
    clearInterval(this.pingTimer);
    this.failAll(new ChatError(0, "disconnected", `connection closed (${code})`), false);
    if (this.stopped) return;
    if (code === 4001) {
      // Bad or expired token: fetch a new one; a static token, or a fresh one refused again, stops.
      this.token = undefined;
      if (typeof this.o.token !== "function" || ++this.authFailures > 1) return this.stop(code, reason || "authentication failed");
      return this.retry(0, reason, code);
    }
    if (STOP_CODES.has(code)) return this.stop(code, reason);
    // 4200 (node going away): at once; everything else (4100, 1008, 1009, 4002, network): with backoff.
    this.retry(code === 4200 ? 0 : undefined, reason, code);
  }

  private retry(delay: number | undefined, reason: string, code = 1006): void {
    const min = this.o.backoffMinMs ?? 250;
    const max = this.o.backoffMaxMs ?? 10_000;
    const step = Math.min(max, min * 2 ** this.attempt++);
    const wait = delay ?? step / 2 + Math.random() * (step / 2);
    this.emit("disconnected", { code, reason, reconnectInMs: wait });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, wait);
  }

  private stop(code: number, reason: string): void {
    this.stopped = true;
    this.failAll(new ChatError(code, "stopped", reason), true);
    this.emit("disconnected", { code, reason });
    this.emit("stopped", { code, reason });
  }

  private async fetchToken(): Promise<string> {
    return typeof this.o.token === "function" ? await this.o.token() : this.o.token;
  }

  private tokenDue(): boolean {
    if (typeof this.o.token !== "function") return false;
    const exp = tokenExp(this.token!);
    return exp !== undefined && exp - (this.o.refreshBeforeExpSec ?? 60) <= Date.now() / 1000;
  }

  /** Before `exp`: a new token from the callback, sent as `auth` on the open connection. */
  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const exp = this.token ? tokenExp(this.token) : undefined;
    if (typeof this.o.token !== "function" || exp === undefined) return;
    const inMs = Math.max(1000, (exp - (this.o.refreshBeforeExpSec ?? 60)) * 1000 - Date.now());
    this.refreshTimer = setTimeout(async () => {
      try {
        const t = await this.fetchToken();
        this.token = t;
        await this.request({ t: "auth", token: t });
        this.scheduleRefresh();
      } catch (e) {
        this.emit("error", e as Error);
      }
    }, Math.min(inMs, 2 ** 31 - 1));
  }

  private async onWelcome(w: Welcome): Promise<void> {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.attempt = 0;
    this.authFailures = 0;
    this.user = w.user;
    this.emit("connected", w);
    this.scheduleRefresh();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.raw({ t: "ping" }), this.o.pingMs ?? 25_000);
    const ws = this.ws;
    try {
      // Rooms first (their pushes start at once), then what the user missed, then the unacked sends.
      for (const room of this.rooms.keys()) {
        const r = await this.direct({ t: "join_room", room });
        await this.enqueue(() => this.fillRoom(r.conv, this.last.get(r.conv) ?? r.lastSeq ?? 0));
      }
      await this.enqueue(() => this.syncAll());
    } catch (e) {
      if (this.ws !== ws) return; // closed meanwhile: the next welcome resumes
      this.emit("error", e as Error);
    }
    if (this.ws !== ws) return;
    this.ready = true;
    for (const p of this.pending.values()) this.transmit(p);
    for (const r of this.readyWaiters.splice(0)) r();
    this.emit("resumed", { reconnect });
  }

  // ---- frames ----

  private onFrame(f: any): void {
    if (f.id === AUTH_ID) return f.t === "welcome" ? void this.onWelcome(f) : undefined; // a refusal is followed by 4001
    if (f.id !== undefined && f.t !== "msg") {
      this.answered(String(f.id));
      const p = this.pending.get(String(f.id));
      if (!p) return;
      this.pending.delete(String(f.id));
      clearTimeout(p.timer);
      if (f.t === "error") return this.onError(p, f);
      return p.resolve(f);
    }
    switch (f.t) {
      case "msg":
        return void this.enqueue(() => this.inOrder(f.msg));
      case "gap":
        return void this.enqueue(() => this.syncAll());
      case "room":
        return void this.enqueue(() => this.roomTick(f));
      case "resync":
        return void this.enqueue(() => this.fillRoom(f.conv, f.after));
      case "recall":
        return this.emit("recall", { conv: f.conv, msg: f.msg, seq: f.seq, from: f.from });
      case "receipt":
      case "receipts":
      case "member":
      case "friend":
      case "presence":
        return this.emit(f.t, f);
      case "pong":
      case "ok": // a `delivered` confirmation's answer
        return;
      default:
        return this.emit("frame", f);
    }
  }

  private onError(p: Pending, f: any): void {
    const err = new ChatError(f.code, f.error, f.message, f.retryAfterMs);
    // Retryable: a dependency down (5030), a fault (5000), throttled (4290): a send with a cmid tries again.
    if (p.resend && (f.code === 5030 || f.code === 5000 || f.code === 4290)) {
      const wait = f.retryAfterMs ?? 200 + Math.random() * 300;
      setTimeout(() => {
        if (this.stopped) return p.reject(err);
        const id = this.newId();
        p.frame = { ...p.frame, id };
        this.pending.set(id, p);
        if (this.ready) this.transmit(p);
      }, wait);
      return;
    }
    p.reject(err);
  }

  // ---- requests ----

  private newId(): string {
    return `c${++this.nextId}`;
  }

  private call(frame: Record<string, unknown>, resend: boolean): Promise<any> {
    if (this.stopped) return Promise.reject(new ChatError(0, "stopped", "the client is stopped"));
    return new Promise((resolve, reject) => {
      const id = this.newId();
      const p: Pending = { frame: { ...frame, id }, resolve, reject, resend };
      this.pending.set(id, p);
      if (this.ready) this.transmit(p);
    });
  }

  /** A request on the current connection even before the resume is done (used by the resume itself). */
  private direct(frame: Record<string, unknown>): Promise<any> {
    return new Promise((resolve, reject) => {
      const id = this.newId();
      const p: Pending = { frame: { ...frame, id }, resolve, reject, resend: false };
      this.pending.set(id, p);
      this.transmit(p);
    });
  }

  private transmit(p: Pending): void {
    clearTimeout(p.timer);
    const id = String(p.frame.id);
    if (this.onWire.size >= (this.o.maxInFlight ?? 32)) return void this.backlog.push(p);
    this.onWire.add(id);
    p.timer = setTimeout(() => {
      // No reply: the connection is probably dead; closing it makes the client reconnect (and resend).
      if (this.pending.get(id) === p && this.ws) this.ws.close(4000, "request timed out");
    }, this.o.requestTimeoutMs ?? 10_000);
    this.raw(p.frame);
  }

  /** A reply came: its place goes to the next request waiting. */
  private answered(id: string): void {
    if (!this.onWire.delete(id)) return;
    while (this.backlog.length && this.onWire.size < (this.o.maxInFlight ?? 32)) {
      const next = this.backlog.shift()!;
      if (this.pending.get(String(next.frame.id)) === next) this.transmit(next);
    }
  }

  private raw(frame: Record<string, unknown>): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return;
    ws.send(this.o.msgpack ? this.o.msgpack.pack(frame) : JSON.stringify(frame));
  }

  /** The connection closed: requests fail, sends with a cmid wait for the next connection (unless `all`). */
  private failAll(err: Error, all: boolean): void {
    for (const [id, p] of [...this.pending]) {
      clearTimeout(p.timer);
      if (p.resend && !all) {
        // Re-keyed on resend: a late reply of the dead connection cannot be mistaken for it.
        this.pending.delete(id);
        const nid = this.newId();
        p.frame = { ...p.frame, id: nid };
        this.pending.set(nid, p);
        continue;
      }
      this.pending.delete(id);
      p.reject(err);
    }
  }

  // ---- delivery ----

  private enqueue(fn: () => Promise<void> | void): Promise<void> {
    const run = this.chain.then(fn);
    this.chain = run.catch((e) => this.emit("error", e as Error));
    return run;
  }

  /**
   * Everything above the delivered cursor, page by page (a peek; confirmed with `delivered` once handed over). A sync
   * page holds only what others wrote: a message of the user's other device in between shows as a seq jump, filled
   * from history like a push's.
   */
  private async syncAll(): Promise<void> {
    let after: { conv: string; seq: number } | undefined;
    for (;;) {
      const r = await this.direct({ t: "sync", limit: this.o.syncPageSize ?? 200, ...(after ? { after } : {}) });
      for (const m of r.msgs as Message[]) await this.inOrder(m);
      if (!r.more || !r.msgs.length) break;
      const l = r.msgs[r.msgs.length - 1];
      after = { conv: l.conv, seq: l.seq };
    }
    this.flushConfirms();
  }

  /** A message pushed or synced: what is missing before it in its conversation is fetched first. */
  private async inOrder(m: Message): Promise<void> {
    const l = this.last.get(m.conv);
    if (l !== undefined && m.seq <= l) return;
    if (l !== undefined && m.seq > l + 1) await this.fill(m.conv, l, m.seq);
    this.deliver(m);
  }

  /** Messages of `conv` after seq `from` and before `to`, from history. */
  private async fill(conv: string, from: number, to: number): Promise<void> {
    let after = from;
    while (after < to - 1) {
      const r = await this.direct({ t: "history", conv, after, limit: Math.min(500, to - after - 1) });
      const msgs = (r.msgs as Message[]).filter((m) => m.seq < to);
      for (const m of msgs) this.deliver(m);
      if (!r.more || !msgs.length) break;
      after = msgs[msgs.length - 1]!.seq;
    }
  }

  private deliver(m: Message): void {
    const l = this.last.get(m.conv) ?? 0;
    if (m.seq <= l) return;
    this.last.set(m.conv, m.seq);
    if (this.own.has(m.id)) return;
    this.emit("message", m);
    if (m.from !== this.user) this.confirm(m.conv, m.seq);
  }

  private confirm(conv: string, seq: number): void {
    this.toConfirm.set(conv, Math.max(seq, this.toConfirm.get(conv) ?? 0));
    this.confirmTimer ??= setTimeout(() => this.flushConfirms(), this.o.confirmMs ?? 100);
  }

  /** Sends the gathered confirmations (as requests: the server answers each with `ok`, awaited by `flush`). */
  private flushConfirms(): void {
    clearTimeout(this.confirmTimer);
    this.confirmTimer = undefined;
    if (this.ws?.readyState === 1) {
      // Lost with the connection: the next resume's sync offers those messages again and they are confirmed then.
      for (const [conv, seq] of this.toConfirm) {
        const p: Promise<void> = this.direct({ t: "delivered", conv, seq }).then(
          () => void this.confirming.delete(p),
          () => void this.confirming.delete(p),
        );
        this.confirming.add(p);
      }
    }
    this.toConfirm.clear();
  }

  /** A live room's must-deliver messages after seq `after` (a resync, a reconnect), de-duplicated by seq. */
  private async fillRoom(conv: string, after: number): Promise<void> {
    let from = Math.min(this.last.get(conv) ?? after, after);
    for (;;) {
      const r = await this.direct({ t: "history", conv, after: from, limit: 200 });
      for (const m of r.msgs as RoomMessage[]) this.roomMust(conv, { ...m, class: "must" });
      if (!r.more || !r.msgs.length) break;
      from = r.msgs[r.msgs.length - 1].seq;
    }
  }

  private roomTick(f: any): void {
    const room = f.room as string;
    const conv = `r:${room}`;
    for (const it of f.items ?? []) {
      if (it.t === "msg") {
        if (it.msg.class === "must") this.roomMust(conv, it.msg);
        else this.emit("danmaku", { room, msg: it.msg });
      } else if (it.t === "in" || it.t === "out") this.emit("roomPresence", { room, change: it.t, user: it.user, online: f.online });
      else if (it.t === "recall") this.emit("recall", { conv, msg: it.msg, seq: it.seq, from: it.from });
    }
  }

  private roomMust(conv: string, msg: RoomMessage): void {
    const l = this.last.get(conv) ?? 0;
    if (msg.seq === undefined || msg.seq <= l) return;
    this.last.set(conv, msg.seq);
    this.emit("roomMessage", { room: conv.slice(2), msg });
  }

  private emit<K extends keyof ChatEvents>(event: K, e: ChatEvents[K]): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(e);
      } catch (err) {
        if (event !== "error") this.emit("error", err as Error);
      }
    }
  }
}
