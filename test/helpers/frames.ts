// Frames received and not yet taken, with awaitable takers: `await q.next(pred)` instead of callbacks.
export class FrameQueue {
  private queue: any[] = [];
  private waiters: { pred: (f: any) => boolean; resolve: (f: any) => void; reject: (e: Error) => void }[] = [];
  private ended?: Error;

  push(f: any): void {
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(f);
    else this.queue.push(f);
  }

  /** No more frames will come: waiting takers fail with `err`, later ones at once. */
  end(err: Error): void {
    this.ended = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The next frame (matching `pred`, if given), in arrival order; frames skipped by `pred` stay queued. */
  next(pred: (f: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      this.waiters.push(w);
      // A safety net so a broken server fails the test instead of hanging it; never a synchronisation.
      setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) {
          this.waiters.splice(k, 1);
          reject(new Error(`no matching frame within ${timeoutMs} ms; queued: ${JSON.stringify(this.queue).slice(0, 500)}`));
        }
      }, timeoutMs);
    });
  }

  /** Frames already received and not yet taken. */
  pending(): any[] {
    return [...this.queue];
  }
}
