// Receipts in groups: when members confirm delivery or reading, the senders of the messages concerned get
// "delivered to N / read by N" counts. Cursor moves are gathered per conversation for `debounceMs`, then
// counted once from the cursors and pushed, one event per sender — not one push per member per message.
import type { ReceiptQueries } from "./ports.ts";
import type { CoreEvent } from "./types.ts";

/** Counts are pushed for at most this many of the latest messages a flush covers. */
export const RECEIPT_WINDOW = 200;

export class Receipts {
  /** conv → highest seq confirmed since the last flush */
  private readonly dirty = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly queries: Pick<ReceiptQueries, "receiptCounts">,
    private readonly emit: (ev: CoreEvent) => void,
    private readonly debounceMs: number,
    private readonly log: (msg: string) => void,
  ) {}

  /** A member of `conv` confirmed up to `seq`. */
  touch(conv: string, seq: number): void {
    this.dirty.set(conv, Math.max(this.dirty.get(conv) ?? 0, seq));
    this.timer ??= setTimeout(() => void this.flush(), this.debounceMs);
  }

  async flush(): Promise<void> {
    this.timer = undefined;
    const batch = [...this.dirty];
    this.dirty.clear();
    for (const [conv, top] of batch) {
      try {
        const rows = await this.queries.receiptCounts(conv, Math.max(1, top - RECEIPT_WINDOW + 1), top);
        const bySender = new Map<string, typeof rows>();
        for (const r of rows) {
          let list = bySender.get(r.sender);
          if (!list) bySender.set(r.sender, (list = []));
          list.push(r);
        }
        for (const [sender, list] of bySender) {
          this.emit({ type: "receipts", conv, counts: list.map(({ seq, delivered, read }) => ({ seq, delivered, read })), to: [sender] });
        }
      } catch (e) {
        this.log(`receipts ${conv}: ${e}`);
      }
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
