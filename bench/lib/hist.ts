// Latency histogram in microseconds: log buckets 1% wide from 1 µs to ~10^9 µs, so merging the
// workers' histograms is adding arrays and any percentile is within 1% of the recorded value.
const STEP = Math.log(1.01);
export const BUCKETS = 2100;

export class Hist {
  readonly counts: Uint32Array;
  n = 0;
  max = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Uint32Array(BUCKETS);
    if (counts) {
      this.counts.set(counts);
      for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) (this.n += this.counts[i]!), (this.max = upper(i));
    }
  }

  /** Records one latency given in milliseconds. */
  add(ms: number): void {
    const us = ms * 1000;
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(us) / STEP));
    this.counts[i]!++;
    this.n++;
    if (ms > this.max) this.max = ms;
  }

  merge(o: Hist | { counts: ArrayLike<number> }): this {
    const c = o.counts;
    for (let i = 0; i < BUCKETS; i++) {
      const v = c[i]!;
      if (v) {
        this.counts[i]! += v;
        this.n += v;
        this.max = Math.max(this.max, upper(i));
      }
    }
    return this;
  }

  /** The latency (ms) below which a fraction `p` of the samples lie; NaN when empty. */
  pct(p: number): number {
    if (this.n === 0) return NaN;
    const target = Math.ceil(p * this.n);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= target) return upper(i);
    }
    return this.max;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.max = 0;
  }

  /** Sparse form for IPC and JSON: [bucket, count] pairs. */
  toJSON(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) out.push([i, this.counts[i]!]);
    return out;
  }

  static from(pairs: [number, number][]): Hist {
    const h = new Hist();
    for (const [i, c] of pairs) {
      h.counts[i] = c;
      h.n += c;
      h.max = Math.max(h.max, upper(i));
    }
    return h;
  }
}

/** Upper edge of bucket i, in ms. */
function upper(i: number): number {
  return Math.exp(i * STEP) / 1000;
}
