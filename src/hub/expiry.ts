// Deadlines of many connections (token expiry) on one timer: sessions are kept in per-second buckets and
// one interval, running only while any deadline is pending, closes the due ones. A timer per connection
// would cost a few hundred bytes each; an idle server holds tens of thousands of connections.
import type { Session } from "./session.ts";

export class Deadlines {
  private readonly buckets = new Map<number, Set<Session>>();
  private readonly at = new WeakMap<Session, number>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private size = 0;

  constructor(private readonly due: (s: Session) => void) {}

  /** Calls `due(s)` at `atMs` (to the second), replacing an earlier deadline of `s`. */
  set(s: Session, atMs: number): void {
    this.clear(s);
    const sec = Math.ceil(atMs / 1000);
    let b = this.buckets.get(sec);
    if (!b) this.buckets.set(sec, (b = new Set()));
    b.add(s);
    this.at.set(s, sec);
    this.size++;
    this.timer ??= setInterval(() => this.run(), 1000);
  }

  clear(s: Session): void {
    const sec = this.at.get(s);
    if (sec === undefined) return;
    this.at.delete(s);
    if (this.buckets.get(sec)?.delete(s)) this.size--;
    if (this.buckets.get(sec)?.size === 0) this.buckets.delete(sec);
    if (this.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private run(): void {
    const now = Math.floor(Date.now() / 1000);
    for (const [sec, b] of this.buckets) {
      if (sec > now) continue;
      this.buckets.delete(sec);
      for (const s of b) {
        this.at.delete(s);
        this.size--;
        this.due(s);
      }
    }
    if (this.size === 0) this.stop();
  }
}
