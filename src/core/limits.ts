// One rate limiter for every protocol: each connection has one token bucket of SEND_RATE tokens per second up
// to SEND_BURST. A send takes one token, a read (sync, history, lists) READ_COST tokens, so a client that floods
// reads is slowed down like one that floods sends. Each protocol answers a refusal with its own rate error.
import { TokenBucket } from "./ratelimit.ts";

/** What a command costs: a send (1 token) or a read (READ_COST tokens). */
export type Charge = "send" | "read";

export interface LimitSettings {
  /** tokens per second */
  rate: number;
  burst: number;
  /** tokens a read takes; 0: reads are not limited */
  readCost: number;
}

export class SessionLimits {
  /**
   * Keyed by the connection object itself: a bucket is made on first use (most connections of a live room never
   * send) and goes with its connection, with nothing to clean up at close.
   */
  private readonly buckets = new WeakMap<object, TokenBucket>();

  constructor(private readonly s: LimitSettings) {}

  /** Charges `session` for one command: 0 when allowed, else the milliseconds until it would be. */
  take(session: object, what: Charge): number {
    const cost = what === "send" ? 1 : this.s.readCost;
    if (!cost) return 0;
    let b = this.buckets.get(session);
    if (!b) this.buckets.set(session, (b = new TokenBucket(this.s.rate, this.s.burst)));
    return b.take(undefined, cost);
  }

  /**
   * Protocols without a connection (HTTP: the social API) charge the user instead: one bucket per user and
   * node, with the same settings, made on first use. At most USER_BUCKETS_MAX are kept; past that the oldest
   * goes (it starts full again when that user comes back).
   */
  takeUser(userId: string, what: Charge): number {
    const cost = what === "send" ? 1 : this.s.readCost;
    if (!cost) return 0;
    let b = this.users.get(userId);
    if (!b) {
      if (this.users.size >= USER_BUCKETS_MAX) this.users.delete(this.users.keys().next().value!);
      this.users.set(userId, (b = new TokenBucket(this.s.rate, this.s.burst)));
    }
    return b.take(undefined, cost);
  }

  private readonly users = new Map<string, TokenBucket>();
}

/** Per-user buckets (SessionLimits.takeUser) kept per node. */
export const USER_BUCKETS_MAX = 100_000;
