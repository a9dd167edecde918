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
// Protocols with explicit confirmations (native `delivered` / `sync` with `mark`; the desk's read marks) do
// not mark on push.
import { metric } from "./metrics.ts";

/** How often marks that are written out reach the store. */
export const MARK_FLUSH_MS = 100;

const mStatements = metric("chat_delivered_marks_statements_total", "Statements writing the delivered marks of pushes (at most one per user per flush)");
const mUnmarked = metric("chat_delivered_marks_unwritten_total", "Connections closed with pushes not yet written out: left unmarked, offered again by the next pull");

export interface DeliveryDeps<K> {
  /** Moves one user's delivered cursors over the pushed seqs, in one statement (conversation → seqs). */
  advance(userId: string, pushed: ReadonlyMap<string, readonly number[]>): Promise<void>;
  /** Whether connection `key` is open and has written out everything it accepted (nothing queued in the server). */
  writtenOut(key: K): boolean;
  intervalMs?: number;
  log?: (msg: string) => void;
}

interface Held {
  userId: string;
  /** conversation → seqs accepted */
  marks: Map<string, number[]>;
}

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
  private readonly ready = new Map<string, Map<string, number[]>>();
  /** user → its statement in flight (a user's statements run one after another) */
  private readonly writing = new Map<string, Promise<void>>();
  private timer?: ReturnType<typeof setTimeout>;
  /** connections that accepted frames in this turn of the event loop: checked once it is over */
  private readonly fresh = new Set<K>();
  private stopped = false;

  constructor(private readonly d: DeliveryDeps<K>) {}

  /** Connection `key` of `userId` accepted a frame carrying message `seq` of `conv`. */
  accepted(key: K, userId: string, conv: string, seq: number): void {
    let h = this.held.get(key);
    if (!h) {
      this.held.set(key, (h = { userId, marks: new Map() }));
      let set = this.heldByUser.get(userId);
      if (!set) this.heldByUser.set(userId, (set = new Set()));
      set.add(key);
    }
    add(h.marks, conv, seq);
    if (this.fresh.size === 0) setImmediate(() => this.checkFresh());
    this.fresh.add(key);
    this.arm();
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
    return this.write(userId);
  }

  /** Stores every mark written out; the rest stays held. */
  async flushAll(): Promise<void> {
    for (const key of [...this.held.keys()]) this.promote(key);
    await Promise.all([...this.ready.keys()].map((u) => this.write(u)));
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
    if (!r) this.ready.set(h.userId, (r = new Map()));
    for (const [conv, seqs] of h.marks) add(r, conv, seqs);
  }

  private unhold(key: K, h: Held): void {
    this.held.delete(key);
    const set = this.heldByUser.get(h.userId);
    set?.delete(key);
    if (set?.size === 0) this.heldByUser.delete(h.userId);
  }

  /** One statement for everything ready for the user, after the one in flight (which a pull also waits for). */
  private write(userId: string): Promise<void> {
    const prev = this.writing.get(userId);
    if (!prev && !this.ready.has(userId)) return Promise.resolve();
    const next = (prev ?? Promise.resolve()).then(async () => {
      const marks = this.ready.get(userId);
      if (!marks) return;
      this.ready.delete(userId);
      mStatements.value++;
      // Not stored (the database is away): those messages are offered again by the next pull.
      await this.d.advance(userId, marks).catch((e) => this.d.log?.(`delivered marks of ${userId}: ${e}`));
    });
    this.writing.set(userId, next);
    void next.finally(() => this.writing.get(userId) === next && this.writing.delete(userId));
    return next;
  }
}
