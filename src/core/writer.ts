// Group-commit writer: sends queue up for at most `batchMs` (or until `batchRows` are waiting) and are
// committed together in one transaction, so the per-commit cost (fsync, round trips) is shared by the
// batch. Every promise resolves only after its batch committed: an ack always follows a commit.
import type { AppendItem, AppendResult } from "../store/store.ts";
import { histogram, metric } from "./metrics.ts";

interface Pending {
  item: AppendItem;
  resolve(r: AppendResult): void;
  reject(e: unknown): void;
}

const mBatches = metric("chat_writer_batches_total", "Group-commit batches written");
const mRows = metric("chat_writer_rows_total", "Messages written through the group-commit writer");
const mFailed = metric("chat_writer_failed_batches_total", "Batches whose transaction failed");
const mSeconds = metric("chat_writer_batch_seconds_total", "Time spent committing batches");
const hRows = histogram("chat_writer_batch_rows", "Messages per committed batch", [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000]);
const hSeconds = histogram("chat_writer_batch_latency_seconds", "Time to commit one batch", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);
const mQueue = metric("chat_writer_queue", "Messages waiting for the next batch", "gauge");

export class GroupWriter {
  private queue: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly write: (items: AppendItem[]) => Promise<AppendResult[]>,
    private readonly batchRows: number,
    private readonly batchMs: number,
  ) {}

  append(item: AppendItem): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      mQueue.value = this.queue.length;
      if (this.running) return; // the running batch drains the queue when it ends
      if (this.queue.length >= this.batchRows) this.kick();
      else this.timer ??= setTimeout(() => this.kick(), this.batchMs);
    });
  }

  /** Resolves once everything queued so far is committed (used at shutdown). */
  async flush(): Promise<void> {
    while (this.queue.length || this.running) {
      if (!this.running) this.kick();
      await this.running;
    }
  }

  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running || this.queue.length === 0) return;
    this.running = this.drain().finally(() => {
      this.running = undefined;
      if (this.queue.length) this.kick();
    });
  }

  private async drain(): Promise<void> {
    const batch = this.queue.splice(0, this.batchRows);
    mQueue.value = this.queue.length;
    const t0 = performance.now();
    try {
      const results = await this.write(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(results[i]!));
      mRows.value += batch.length;
    } catch (err) {
      mFailed.value++;
      // One bad row (or a unique race with another node) must not fail its neighbours: retry one by one.
      if (batch.length === 1) batch[0]!.reject(err);
      else
        for (const p of batch) {
          try {
            const [r] = await this.write([p.item]);
            p.resolve(r!);
          } catch (e) {
            p.reject(e);
          }
        }
    }
    const sec = (performance.now() - t0) / 1000;
    mBatches.value++;
    mSeconds.value += sec;
    hRows.observe(batch.length);
    hSeconds.observe(sec);
  }
}
