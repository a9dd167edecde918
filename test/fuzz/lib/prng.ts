// A small seeded PRNG (mulberry32): the same seed gives the same frames, so a failure can be replayed.
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A child generator for one stream (a protocol, a connection), independent of how many values others drew. */
  fork(label: string): Rng {
    let h = this.s ^ 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619);
    return new Rng(h >>> 0);
  }
}

/** FUZZ_SEED (default: a fixed seed, so CI is reproducible) and FUZZ_FRAMES (frames per protocol). */
export function fuzzSettings(defaultFrames: number): { seed: number; frames: number; waitMs: number } {
  const seed = Number(process.env.FUZZ_SEED ?? 20261206) >>> 0;
  const frames = Number(process.env.FUZZ_FRAMES ?? defaultFrames);
  const waitMs = Number(process.env.FUZZ_WAIT_MS ?? 3000);
  return { seed, frames, waitMs };
}
