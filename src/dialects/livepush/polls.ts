// Held long polls of this node (docs/livepush.md "Delivery"). One entry per polling user: a hub session bound to
// the user (so the cluster's presence counts a polling user as online, and pushes for the user reach this node
// through its user channel), the poll held now, and what the previous answer carried. A held poll has no timer
// of its own: one shared sweep, once a second while any user polls here, answers polls whose timeout passed and
// unbinds users whose grace period after their last poll ended.
//  - a stored message for the user (any protocol, any node) reaches the hub session as "m": the held poll reads
//    the user's pending messages (from the delivered cursor) and answers;
//  - the cursor moves over an answer's messages only when the user's next poll arrives (or up to its `ack`), so
//    an answer lost on the way is answered again; a poll whose client went away before the answer is not
//    answered at all (the messages stay pending);
//  - a second poll of the user answers the first at once (empty, result 3); on another node, through the user's
//    channel (a `{poll: node, ack}` notice), which also confirms the answer that node gave last (a poll on another
//    node may read before that confirmation lands, and repeat that answer's messages once: same msg_id);
//  - a notice that is not stored (a group dial) waits in the entry until a poll takes it (best effort).
import type { ServerWebSocket } from "bun";
import type { Chat } from "../../core/chat.ts";
import type { Livepush } from "../../core/livepush.ts";
import type { LpMessage } from "../../core/livepush-fields.ts";
import type { Message } from "../../core/types.ts";
import type { Hub } from "../../hub/hub.ts";
import { NO_TOPICS, type Dialect, type Session } from "../../hub/session.ts";
import { Result } from "./encode.ts";

export interface PollAnswer {
  result: number;
  msgs: LpMessage[];
}

/**
 * A held poll: its promise's resolve, its deadline and its request (whose `signal` says the client went away). It
 * is its own abort listener (`handleEvent`), so a held poll allocates no closure of its own.
 */
class Held {
  constructor(
    readonly polls: Polls,
    readonly up: UserPoll,
    readonly resolve: (a: PollAnswer) => void,
    readonly until: number,
    readonly req: Request,
  ) {}

  /** The client went away: nothing is answered, so nothing counts as returned. */
  handleEvent(): void {
    this.polls.gone(this);
  }
}

/**
 * The hub session's socket of a polling user: frames go to the user's entry. One small object per user with its
 * methods on the prototype (no closures per user).
 */
class PollSocket {
  constructor(
    private readonly polls: Polls,
    private readonly up: UserPoll,
  ) {}
  send(f: string | Uint8Array): number {
    this.polls.frame(this.up, f);
    return 1;
  }
  close(): void {
    this.polls.end(this.up);
  }
  getBufferedAmount(): number {
    return 0;
  }
  cork<T>(fn: () => T): T {
    return fn();
  }
}

interface UserPoll {
  user: string;
  s: Session;
  held?: Held;
  /** the stored messages of the previous answer, in its order: confirmed by the next poll */
  returned?: Message[];
  /**
   * the previous answer's messages a poll confirmed, while that confirmation is written: the poll reads at the
   * same time, and leaves these out of what it read (the read may run before the confirmation lands)
   */
  confirming?: { msgs: Message[]; ids: Set<string>; done: Promise<unknown> };
  /** notices not stored (group dials) waiting for a poll */
  notices: LpMessage[];
  /** when the user goes offline without another poll */
  idleUntil: number;
  /**
   * a read is due: something arrived since the last read, or what a read found was not all answered and
   * confirmed (a fresh entry, an answer cut short or lost, a partial ack, a failure, the user polled elsewhere)
   */
  dirty: boolean;
  /** when the last read started */
  readAt: number;
  reading: boolean;
}

export interface PollDeps {
  hub: Pick<Hub, "add" | "bindUser" | "remove" | "dispatch">;
  chat: Pick<Chat, "pending" | "confirmAll">;
  livepush: Pick<Livepush, "view" | "cameOnline">;
  presence: { isOnline(user: string): Promise<boolean> };
  /** whether other nodes may hold a poll of the user (the bus has peers) */
  clustered: boolean;
  dialect: Dialect;
  nodeId: string;
  pollMs: number;
  graceMs: number;
  pollMax: number;
  log(msg: string): void;
}

const NOTICES_MAX = 100;
/** a poll reads at least this often even when nothing arrived */
const REREAD_MS = 60_000;
/** the shared empty notice list of every entry with none waiting (replaced, never pushed to) */
const NO_NOTICES: LpMessage[] = [];
const EMPTY: PollAnswer = { result: Result.timeout, msgs: [] };
let nextId = 0;

export class Polls {
  private readonly users = new Map<string, UserPoll>();
  private readonly opening = new Map<string, Promise<UserPoll>>();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly d: PollDeps) {}

  /** Users with an entry here (polling now or within their grace period). */
  get size(): number {
    return this.users.size;
  }

  /** Polls held now. */
  get held(): number {
    let n = 0;
    for (const up of this.users.values()) if (up.held) n++;
    return n;
  }

  /** A poll of `user`: answered at once when something waits, else held until something does or the timeout. */
  async poll(user: string, role: string, req: Request, ack?: string): Promise<PollAnswer> {
    const up = this.users.get(user) ?? (await this.open(user, role));
    if (up.held) this.answer(up, EMPTY);
    if (this.d.clustered) this.d.hub.dispatch({ type: "notice", proto: "livepush", body: { poll: this.d.nodeId, ...(ack !== undefined ? { ack } : {}) }, to: [user] });
    if (up.returned) {
      const done = acked(up.returned, ack);
      // What the client did not take of the previous answer is still pending: read it again.
      if (done.length < up.returned.length) up.dirty = true;
      up.returned = undefined;
      // Not awaited before the poll is held: its read runs beside the write (drain), not after it.
      if (done.length) {
        const written = this.d.chat.confirmAll(user, done, "delivered").then(
          () => undefined,
          (e: unknown) => {
            // A held poll hears of it (result 8) through its read.
            up.dirty = true;
            this.wake(up);
            return e ?? new Error("confirmation failed");
          },
        );
        up.confirming = { msgs: done, ids: new Set(done.map((m) => m.id)), done: written };
      }
    }
    if (req.signal.aborted) return EMPTY;
    return new Promise<PollAnswer>((resolve) => {
      const now = Date.now();
      const held = new Held(this, up, resolve, now + this.d.pollMs, req);
      up.held = held;
      // Nothing arrived since a read that found everything answered and confirmed: no read (a poll after an
      // answer, or after a timeout, costs no store round trip). Once a minute a poll reads anyway (a push from
      // another node missed while the user's channel was being subscribed is found then).
      if (now - up.readAt >= REREAD_MS) up.dirty = true;
      req.signal.addEventListener("abort", held, { once: true });
      this.tick();
      this.wake(up);
    });
  }

  /** A held poll's client went away before its answer: nothing is answered, so nothing counts as returned. */
  gone(held: Held): void {
    const up = held.up;
    if (up.held !== held) return;
    up.held = undefined;
    up.idleUntil = Date.now() + this.d.graceMs;
  }

  /** Closes every entry (shutdown): held polls are answered empty. */
  closeAll(): void {
    for (const up of [...this.users.values()]) this.end(up);
  }

  private async open(user: string, role: string): Promise<UserPoll> {
    let p = this.opening.get(user);
    if (!p) {
      p = this.bind(user, role).finally(() => this.opening.delete(user));
      this.opening.set(user, p);
    }
    return p;
  }

  private async bind(user: string, role: string): Promise<UserPoll> {
    const wasOnline = await this.d.presence.isOnline(user).catch(() => true);
    const up: UserPoll = { user, s: undefined as unknown as Session, notices: NO_NOTICES, idleUntil: Infinity, dirty: true, readAt: 0, reading: false };
    const ws = new PollSocket(this, up) as unknown as ServerWebSocket<Session>;
    up.s = {
      id: `lp${++nextId}`,
      dialect: this.d.dialect,
      codec: this.d.dialect.name,
      userId: user,
      role,
      ws,
      closed: false,
      topics: NO_TOPICS as Set<string>,
      inflight: 0,
      refusedInRow: 0,
      state: {},
    };
    this.users.set(user, up);
    this.d.hub.add(up.s);
    await this.d.hub.bindUser(up.s, user, role);
    if (!wasOnline) void this.d.livepush.cameOnline(user).catch((e) => this.d.log(`livepush online pushes of ${user}: ${(e as Error).message}`));
    return up;
  }

  /** What the user's hub session received. */
  frame(up: UserPoll, f: string | Uint8Array): void {
    if (typeof f !== "string") return;
    if (f !== "m") {
      let n: { poll?: string; ack?: string; msg_id?: string };
      try {
        n = JSON.parse(f);
      } catch {
        return;
      }
      if (n.poll !== undefined) {
        // The user polls on another node now: the poll held here is answered at once, and the previous answer
        // given here is confirmed as that poll says (its next poll arrived, there).
        if (n.poll === this.d.nodeId) return;
        if (up.held) this.answer(up, EMPTY);
        // Answers given there may be lost: a poll here later reads.
        up.dirty = true;
        const done = up.returned && acked(up.returned, n.ack);
        up.returned = undefined;
        if (done?.length) void this.d.chat.confirmAll(up.user, done, "delivered").catch((e) => this.d.log(`livepush confirm of ${up.user}: ${(e as Error).message}`));
        return;
      }
      if (up.notices === NO_NOTICES) up.notices = [];
      if (up.notices.length >= NOTICES_MAX) up.notices.shift();
      up.notices.push(n as LpMessage);
    }
    up.dirty = true;
    this.wake(up);
  }

  private wake(up: UserPoll): void {
    if (up.held && !up.reading) void this.drain(up);
  }

  /** Reads what waits for the user while a poll is held and something arrived; answers when it found any. */
  private async drain(up: UserPoll): Promise<void> {
    up.reading = true;
    try {
      while (up.held && up.dirty) {
        up.dirty = false;
        up.readAt = Date.now();
        const c = up.confirming;
        const [read, failed] = await Promise.all([this.d.chat.pending(up.user, { limit: this.d.pollMax }), c?.done]);
        if (up.confirming === c) up.confirming = undefined;
        // The confirmation failed: answered as the store's failure (result 8, retry); the next poll confirms them
        // again (as before this one), and until then they stay pending.
        if (failed) {
          up.returned ??= c!.msgs;
          throw failed;
        }
        const msgs = c ? read.msgs.filter((m) => !c.ids.has(m.id)) : read.msgs;
        // More than one answer carries: the rest is read for the next poll.
        if (read.msgs.length >= this.d.pollMax) up.dirty = true;
        if (!up.held) {
          if (msgs.length) up.dirty = true; // read, not answered
          break;
        }
        const shown = await this.d.livepush.view(up.user, msgs);
        if (!up.held) {
          if (msgs.length) up.dirty = true;
          break;
        }
        const notices = up.notices;
        if (notices.length) up.notices = NO_NOTICES;
        if (shown.length + notices.length === 0) continue;
        const byId = new Map(msgs.map((m) => [m.id, m]));
        this.answer(up, { result: Result.ok, msgs: [...shown, ...notices] }, shown.map((v) => byId.get(v.msg_id)!));
      }
    } catch (e) {
      this.d.log(`livepush poll of ${up.user}: ${(e as Error).message}`);
      up.dirty = true;
      this.answer(up, { result: Result.unavailable, msgs: [] });
    } finally {
      up.reading = false;
    }
  }

  private answer(up: UserPoll, a: PollAnswer, returned?: Message[]): void {
    const held = up.held;
    if (!held) return;
    up.held = undefined;
    up.idleUntil = Date.now() + this.d.graceMs;
    if (returned?.length) {
      if (!held.req.signal.aborted) up.returned = returned;
      else up.dirty = true; // nobody took them: still pending
    }
    held.resolve(a);
  }

  /** The user's entry ends: a held poll is answered empty, the hub session unbound (offline after the last one). */
  end(up: UserPoll): void {
    if (this.users.get(up.user) !== up) return;
    this.answer(up, EMPTY);
    this.users.delete(up.user);
    up.s.closed = true;
    this.d.hub.remove(up.s);
  }

  /** Starts the shared sweep when it is not running. */
  private tick(): void {
    this.timer ??= setInterval(() => this.sweep(), 1000);
  }

  private sweep(): void {
    const now = Date.now();
    for (const up of this.users.values()) {
      if (up.held) {
        if (up.held.until <= now) this.answer(up, EMPTY);
      } else if (!up.reading && up.idleUntil <= now) this.end(up);
    }
    if (this.users.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** The messages of the previous answer a poll confirms: all of them, none ("0"), or up to and including `ack`. */
function acked(returned: Message[], ack: string | undefined): Message[] {
  if (ack === undefined) return returned;
  const i = returned.findIndex((m) => m.id === ack);
  return i < 0 ? [] : returned.slice(0, i + 1);
}
