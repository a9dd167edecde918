// Group-commit writer: sends queue up for at most `batchMs` (or until `batchRows` are waiting) and are
// committed together in one transaction, so the per-commit cost (fsync, round trips) is shared by the
// batch. An idle writer (no batch in flight) starts on the next turn of the event loop instead, with the sends
// of the current turn: waiting would only add latency, and under load batches form behind the one in flight.
// Every promise resolves only after its batch committed: an ack always follows a commit.
//
// Two batches overlap: once a batch is on its way (the store sends a writer's batches on one connection, in
// order), the next one is sent behind it, so the store never waits for the writer between two batches. The
// second commits only if the first did: when the first one fails, the second fails too and is queued again,
// in front, so a bad row's bisection keeps the order of the sends.
//
// Bounded: at most `queueMax` sends wait (past it a send is refused at once with `unavailable`), and a send
// waits at most `commitTimeoutMs` for its commit (then it is refused with `unavailable`). A send refused
// while its transaction was already in flight may still commit: the client's retry with the same client id
// gets the first message back as a duplicate ack, never a second message. Nothing is acknowledged before
// its commit.
import { storeDown, storeFailure } from "./store-errors.ts";
import { CoreError } from "./errors.ts";
import { histogram, metric } from "./metrics.ts";
import type { AppendBatch, AppendStages } from "./ports.ts";
import type { AppendItem, AppendResult } from "./records.ts";

interface Pending {
  item: AppendItem;
  /** performance.now() past which the sender is answered `unavailable` */
  deadline: number;
  done: boolean;
  resolve(r: AppendResult): void;
  reject(e: unknown): void;
}

/** A batch being written. */
interface Flight {
  rows: Pending[];
  /** its name for the store (AppendStages.batch) */
  batch: number;
  /** the batch is on its way and has not failed: the next batch may be sent behind it */
  open: boolean;
  /** the whole run, its bisection included */
  done?: Promise<void>;
}

/** Batch names, unique in the process. */
let batches = 0;

export interface WriterOptions {
  /** Sends waiting for a batch (not counting the one being written); past it a send is refused. */
  queueMax?: number;
  /** Longest a send waits for its commit before it is answered `unavailable`. */
  commitTimeoutMs?: number;
  /** Called when a batch committed, before its sends are answered (the hub corks the acks and pushes that follow). */
  onCommit?: () => void;
}

const mBatches = metric("chat_writer_batches_total", "Group-commit batches written");
const mRows = metric("chat_writer_rows_total", "Messages written through the group-commit writer");
const mFailed = metric("chat_writer_failed_batches_total", "Batches whose transaction failed");
const mRefused = metric("chat_writer_refused_total", "Sends refused as unavailable: queue full, commit timed out or store down");
const mSeconds = metric("chat_writer_batch_seconds_total", "Time spent committing batches");
const hRows = histogram("chat_writer_batch_rows", "Messages per committed batch", [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]);
const hSeconds = histogram("chat_writer_batch_latency_seconds", "Time to commit one batch", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);
const mQueue = metric("chat_writer_queue", "Messages waiting for the next batch", "gauge");

export class GroupWriter {
  private queue: Pending[] = [];
  /** the batches being written, oldest first (at most two) */
  private flights: Flight[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** the next turn's start of an idle writer */
  private soon: ReturnType<typeof setImmediate> | undefined;
  private sweeper: ReturnType<typeof setTimeout> | undefined;
  private readonly queueMax: number;
  private readonly commitTimeoutMs: number;
  private readonly onCommit: (() => void) | undefined;
  /** Why the last write failed for the store being unreachable; cleared by the next commit. */
  storeError: string | undefined;
  /** Transactions attempted (batches, and the halves of failed batches). */
  writes = 0;

  constructor(
    private readonly write: AppendBatch,
    private readonly batchRows: number,
    private readonly batchMs: number,
    opts: WriterOptions = {},
  ) {
    this.queueMax = opts.queueMax ?? 100_000;
    this.commitTimeoutMs = opts.commitTimeoutMs ?? 10_000;
    this.onCommit = opts.onCommit;
  }

  append(item: AppendItem): Promise<AppendResult> {
    if (this.queue.length >= this.queueMax) {
      mRefused.value++;
      return Promise.reject(new CoreError("unavailable", "the message store is not keeping up: retry later with the same cmid", 1000));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ item, deadline: performance.now() + this.commitTimeoutMs, done: false, resolve, reject });
      mQueue.value = this.queue.length;
      this.sweeper ??= setTimeout(() => this.sweep(), this.commitTimeoutMs);
      if (!this.canStart()) return; // a batch in flight starts the next one when it holds its locks or ends
      if (this.queue.length >= this.batchRows) this.kick();
      else if (this.flights.length === 0) this.soon ??= setImmediate(() => this.kick());
      else this.timer ??= setTimeout(() => this.kick(), this.batchMs);
    });
  }

  /** Resolves once everything queued so far is committed or refused (used at shutdown). */
  async flush(): Promise<void> {
    while (this.queue.length || this.flights.length) {
      if (!this.flights.length) this.kick();
      await Promise.all(this.flights.map((f) => f.done));
    }
  }

  /** A batch may start: none in flight, or one on its way that has not failed. */
  private canStart(): boolean {
    return this.flights.length === 0 || (this.flights.length === 1 && this.flights[0]!.open);
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.soon) clearImmediate(this.soon);
    this.timer = this.soon = undefined;
    if (this.queue.length === 0 || !this.canStart()) return;
    const prev = this.flights[0];
    const rows = this.queue.splice(0, this.batchRows);
    mQueue.value = this.queue.length;
    const f: Flight = { rows, batch: ++batches, open: false };
    this.flights.push(f);
    f.done = this.drain(f, prev).finally(() => {
      this.flights.splice(this.flights.indexOf(f), 1);
      if (this.queue.length) this.kick();
    });
  }

  /** The batch in flight is on its way: the next one starts now when full, else after WRITER_BATCH_MS. */
  private sent(f: Flight): void {
    f.open = true;
    if (this.queue.length >= this.batchRows) this.kick();
    else if (this.queue.length) this.timer ??= setTimeout(() => this.kick(), this.batchMs);
  }

  /**
   * Answers `unavailable` to every send past its deadline: those still queued are dropped (never written),
   * those in a batch being written are answered now (the batch may still commit; see the file comment).
   */
  private sweep(): void {
    this.sweeper = undefined;
    const now = performance.now();
    const late = () => new CoreError("unavailable", `not committed within ${this.commitTimeoutMs} ms: retry with the same cmid`, 1000);
    const inflight = this.flights.flatMap((f) => f.rows);
    for (const p of inflight) if (!p.done && p.deadline <= now) this.settle(p, undefined, late());
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.deadline <= now) this.settle(this.queue[n++]!, undefined, late());
    if (n) this.queue.splice(0, n);
    mQueue.value = this.queue.length;
    const next = [this.queue[0], ...inflight.filter((p) => !p.done)].reduce((d, p) => (p ? Math.min(d, p.deadline) : d), Infinity);
    if (next !== Infinity) this.sweeper = setTimeout(() => this.sweep(), Math.max(1, next - now));
  }

  private settle(p: Pending, r: AppendResult | undefined, err?: unknown): void {
    if (p.done) return;
    p.done = true;
    if (err !== undefined) {
      if (err instanceof CoreError && err.name === "unavailable") mRefused.value++;
      p.reject(err);
    } else p.resolve(r!);
  }

  private async drain(f: Flight, prev: Flight | undefined): Promise<void> {
    const t0 = performance.now();
    const rows = f.rows.filter((p) => !p.done);
    if (!rows.length) return;
    this.writes++;
    const stages: AppendStages = { batch: f.batch, sent: () => this.sent(f) };
    if (prev) stages.after = prev.batch;
    try {
      const results = await this.write(rows.map((p) => p.item), stages);
      f.open = false;
      this.committed(rows, results);
    } catch (err) {
      f.open = false;
      mFailed.value++;
      if (prev) {
        // Sent behind a batch before it: written again, in front of the queue, once that one is done
        // (whether it failed or this one did, the order of the seqs stays the order of the sends). Nothing
        // starts beside that one again: a store failing at once (a closed pool) must not spin.
        prev.open = false;
        this.queue.unshift(...rows.filter((p) => !p.done));
        mQueue.value = this.queue.length;
        return;
      }
      if (!this.failed(rows, err)) {
        const half = Math.ceil(rows.length / 2);
        await this.commit(rows.slice(0, half));
        await this.commit(rows.slice(half));
      }
    }
    const sec = (performance.now() - t0) / 1000;
    mBatches.value++;
    mSeconds.value += sec;
    hRows.observe(rows.length);
    hSeconds.observe(sec);
  }

  private committed(rows: Pending[], results: AppendResult[]): void {
    this.onCommit?.();
    this.storeError = undefined;
    rows.forEach((p, i) => this.settle(p, results[i]!));
    mRows.value += rows.length;
  }

  /**
   * A failed transaction: when the store itself is unreachable, all are refused at once with `unavailable`
   * (bisecting would only multiply the failing round trips); a single row the store refused is that sender's
   * bad request. Returns false when the rows are to be bisected.
   */
  private failed(rows: Pending[], err: unknown): boolean {
    const down = storeDown(err);
    if (down) {
      this.storeError = down;
      const e = new CoreError("unavailable", "the message store is unavailable: retry later with the same cmid", 1000);
      for (const p of rows) this.settle(p, undefined, e);
      return true;
    }
    // One row left: a value the store refused is that sender's bad request (core/store-errors.ts).
    if (rows.length === 1) {
      this.settle(rows[0]!, undefined, storeFailure(err));
      return true;
    }
    return false;
  }

  /**
   * Writes `rows` in one transaction (alone: no batch overlaps a bisection). When it fails for one of its rows
   * (bad data, a unique race with another node), the halves are retried, so a batch with one bad row costs
   * about 2·log2(n) transactions instead of n, and only the bad row is refused.
   */
  private async commit(rows: Pending[]): Promise<void> {
    rows = rows.filter((p) => !p.done);
    if (!rows.length) return;
    this.writes++;
    try {
      this.committed(rows, await this.write(rows.map((p) => p.item)));
    } catch (err) {
      mFailed.value++;
      if (this.failed(rows, err)) return;
      const half = Math.ceil(rows.length / 2);
      await this.commit(rows.slice(0, half));
      await this.commit(rows.slice(half));
    }
  }
}
