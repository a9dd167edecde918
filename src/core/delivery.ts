// Delivered marks of pushes, for the protocols whose clients never acknowledge a message (J-IM, rooms: their
// Dialect declares `marksOnPush`). A push counts as delivered only once its connection took the frame AND
// wrote it out:
//  - the hub reports every frame carrying a message that a socket accepted (`accepted`): Bun's send returned
//    the bytes written or -1 (queued under backpressure); a frame Bun dropped (0) is never reported;
//  - a mark is held per connection until that connection has nothing left queued in the server
//    (`writtenOut`, checked right after the frames went out, in the next turn of the event loop, and then on
//    every flush until it holds): a frame queued under backpressure and then lost with its socket
//    (closed by the client, or with 4100 for being too slow) is never marked. A connection that closes with
//    marks still held leaves them unmarked (`closed`): those messages are offered again by the next pull,
//    and the client drops repeats by message id;
//  - marks that are written out are gathered per user and written every MARK_FLUSH_MS, one statement per
//    user per flush (Chat.markPushed), and before a pull of that user (`flush`), so a pull never repeats a
//    push it could have known about;
//  - a mark carries every seq pushed, not only the highest: the cursor moves over pushed messages only, so
//    an older message the connection never got (sent while the user was offline, not pulled yet) stops it
//    (store: advancePushed).
// Protocols with explicit confirmations (native `delivered`; the desk's read marks) do not mark on push.
//
// A page pulled over a socket (native `sync` with `mark`) is marked the same way, whatever the protocol: the
// reply frame carries the page's highest seq per conversation (`PageMarks`), held until the connection wrote
// the reply out, then stored with every other user's pulled pages of the flush in ONE statement
// (Chat.markPulled): a reconnect costs a read, and a share of one update, instead of an update of its own.
// A pull of the same user on this node stores them first; one on another node within the flush interval
// may offer the page again, which the client drops by seq (the cursor is advisory).
import { metric } from "./metrics.ts";

/** How often marks that are written out reach the store. */
export const MARK_FLUSH_MS = 100;

const mStatements = metric("chat_delivered_marks_statements_total", "Statements writing delivered marks: of pushes, one per user per flush; of pulled pages, one per flush");
const mUnmarked = metric("chat_delivered_marks_unwritten_total", "Connections closed with pushes or a pulled page not yet written out: left unmarked, offered again by the next pull");

/** The delivered marks a pulled page carries: its highest seq per conversation; `skip`, the pulling session. */
export interface PageMarks {
  readonly tops: ReadonlyMap<string, number>;
  readonly skip?: string;
}

/** One pulled mark to store: the user's delivered cursor of `conv` moves up to `seq`. */
export interface PulledMark {
  user: string;
  conv: string;
  seq: number;
  /** the session that pulled, not told of its own cursor (its reply said it all) */
  skip?: string;
}

export interface DeliveryDeps<K> {
  /** Moves one user's delivered cursors over the pushed seqs, in one statement (conversation → seqs). */
  advance(userId: string, pushed: ReadonlyMap<string, readonly number[]>): Promise<void>;
  /** Moves the delivered cursors of pulled pages, of any number of users, in one statement. */
  advancePulled(marks: PulledMark[]): Promise<void>;
  /** Whether connection `key` is open and has written out everything it accepted (nothing queued in the server). */
  writtenOut(key: K): boolean;
  intervalMs?: number;
  log?: (msg: string) => void;
}

interface Held {
  userId: string;
  /** conversation → seqs accepted */
  marks: Map<string, number[]>;
  /** conversation → the highest seq of the pages accepted */
  pulled: Map<string, PulledMark>;
}

interface Ready {
  pushed?: Map<string, number[]>;
  pulled?: Map<string, PulledMark>;
}

const raise = (m: Map<string, PulledMark>, mark: PulledMark) => {
  const had = m.get(mark.conv);
  if (!had) return void m.set(mark.conv, { ...mark });
  if (had.skip !== mark.skip) had.skip = undefined;
  if (mark.seq > had.seq) had.seq = mark.seq;
};

const add = (m: Map<string, number[]>, conv: string, seqs: number | number[]) => {
  const list = m.get(conv);
  if (list) list.push(...(typeof seqs === "number" ? [seqs] : seqs));
  else m.set(conv, typeof seqs === "number" ? [seqs] : [...seqs]);
};

export class DeliveryMarks<K> {
  /** connection → the marks waiting for it to write out what it accepted */
  private readonly held = new Map<K, Held>();
  private readonly heldByUser = new Map<string, Set<K>>();
  /** user → marks written out, to store */
  private readonly ready = new Map<string, Ready>();
  /** user → the statements in flight holding its marks (a user's statements run one after another) */
  private readonly writing = new Map<string, Promise<void>>();
  private timer?: ReturnType<typeof setTimeout>;
  /** connections that accepted frames in this turn of the event loop: checked once it is over */
  private readonly fresh = new Set<K>();
  private stopped = false;

  constructor(private readonly d: DeliveryDeps<K>) {}

  /** Connection `key` of `userId` accepted a frame carrying message `seq` of `conv`. */
  accepted(key: K, userId: string, conv: string, seq: number): void {
    add(this.hold(key, userId).marks, conv, seq);
    this.touched(key);
  }

  /** Connection `key` of `userId` accepted the reply carrying a pulled page. */
  acceptedPage(key: K, userId: string, page: PageMarks): void {
    if (page.tops.size === 0) return;
    const h = this.hold(key, userId);
    for (const [conv, seq] of page.tops) raise(h.pulled, { user: userId, conv, seq, skip: page.skip });
    this.touched(key);
  }

  /** The connection is gone: what it had not written out stays unmarked. */
  closed(key: K): void {
    const h = this.held.get(key);
    this.fresh.delete(key);
    if (!h) return;
    mUnmarked.value++;
    this.unhold(key, h);
  }

  /** Stores the user's marks its connections wrote out so far; resolves once they are stored (a pull runs after). */
  flush(userId: string): Promise<void> {
    for (const key of [...(this.heldByUser.get(userId) ?? [])]) this.promote(key);
    return this.write([userId]);
  }

  /** Stores every mark written out; the rest stays held. */
  flushAll(): Promise<void> {
    for (const key of [...this.held.keys()]) this.promote(key);
    return this.write([...this.ready.keys()]);
  }

  /** Last flush (node shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushAll();
    await Promise.all([...this.writing.values()]);
  }

  /** Marks held (not yet written out), for tests and metrics. */
  heldCount(): number {
    return this.held.size;
  }

  private hold(key: K, userId: string): Held {
    let h = this.held.get(key);
    if (!h) {
      this.held.set(key, (h = { userId, marks: new Map(), pulled: new Map() }));
      let set = this.heldByUser.get(userId);
      if (!set) this.heldByUser.set(userId, (set = new Set()));
      set.add(key);
    }
    return h;
  }

  private touched(key: K): void {
    if (this.fresh.size === 0) setImmediate(() => this.checkFresh());
    this.fresh.add(key);
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flushAll().finally(() => this.held.size && this.arm());
    }, this.d.intervalMs ?? MARK_FLUSH_MS);
  }

  private checkFresh(): void {
    const keys = [...this.fresh];
    this.fresh.clear();
    for (const key of keys) this.promote(key);
  }

  private promote(key: K): void {
    const h = this.held.get(key);
    if (!h || !this.d.writtenOut(key)) return;
    this.unhold(key, h);
    let r = this.ready.get(h.userId);
    if (!r) this.ready.set(h.userId, (r = {}));
    if (h.marks.size) for (const [conv, seqs] of h.marks) add((r.pushed ??= new Map()), conv, seqs);
    if (h.pulled.size) for (const mark of h.pulled.values()) raise((r.pulled ??= new Map()), mark);
  }

  private unhold(key: K, h: Held): void {
    this.held.delete(key);
    const set = this.heldByUser.get(h.userId);
    set?.delete(key);
    if (set?.size === 0) this.heldByUser.delete(h.userId);
  }

  /**
   * Stores what is ready for `users`, after their statements in flight (which a pull also waits for): each
   * user's pushes in a statement of its own, the pulled pages of them all in one.
   */
  private write(users: string[]): Promise<void> {
    const before: Promise<void>[] = [];
    const batch = new Map<string, Ready>();
    for (const u of users) {
      const w = this.writing.get(u);
      if (w) before.push(w);
      const r = this.ready.get(u);
      if (r) (batch.set(u, r), this.ready.delete(u));
    }
    if (batch.size === 0) return before.length ? Promise.all(before).then(() => undefined) : Promise.resolve();
    const next = Promise.all(before).then(() => this.store(batch));
    for (const u of batch.keys()) this.writing.set(u, next);
    void next.finally(() => {
      for (const u of batch.keys()) if (this.writing.get(u) === next) this.writing.delete(u);
    });
    return next;
  }

  private async store(batch: Map<string, Ready>): Promise<void> {
    // Not stored (the database is away): those messages are offered again by the next pull.
    const failed = (what: string) => (e: unknown) => this.d.log?.(`delivered marks of ${what}: ${e}`);
    const pushes: Promise<void>[] = [];
    const pulled: PulledMark[] = [];
    for (const [u, r] of batch) {
      if (r.pushed) pushes.push(this.d.advance(u, r.pushed).catch(failed(u)));
      if (r.pulled) for (const mark of r.pulled.values()) pulled.push(mark);
    }
    mStatements.value += pushes.length + (pulled.length ? 1 : 0);
    // The pages after the pushes: a user's rows are never locked by two of these statements at once.
    await Promise.all(pushes);
    if (pulled.length) await this.d.advancePulled(pulled).catch(failed(`${pulled.length} pulled pages`));
  }
}
