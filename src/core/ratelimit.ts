// Token bucket: `rate` tokens per second up to `burst`. Refilled lazily on use, so an idle bucket costs nothing.
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /**
   * Takes `cost` tokens (a send takes 1; a read takes READ_COST); returns 0 when allowed, else the
   * milliseconds until they are available. A cost of 0 is always allowed; one above the burst costs the burst.
   */
  take(now = performance.now(), cost = 1): number {
    const c = Math.min(cost, this.burst);
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens >= c) {
      this.tokens -= c;
      return 0;
    }
    return Math.ceil(((c - this.tokens) * 1000) / this.rate);
  }
}

/**
 * Failed password logins per account: after `max` failures within `windowMs` the account's password logins
 * are refused without checking the password until the window has passed. A password check (argon2id) costs
 * a few hundred milliseconds of CPU, so this bounds both guessing and the CPU an attacker can burn.
 */
export class FailedLogins {
  private readonly failures = new Map<string, { n: number; since: number }>();

  constructor(
    private readonly max = 5,
    private readonly windowMs = 60_000,
  ) {}

  blocked(key: string, now = Date.now()): boolean {
    const f = this.failures.get(key);
    if (!f) return false;
    if (now - f.since >= this.windowMs) {
      this.failures.delete(key);
      return false;
    }
    return f.n >= this.max;
  }

  failed(key: string, now = Date.now()): void {
    const f = this.failures.get(key);
    if (f && now - f.since < this.windowMs) f.n++;
    else this.failures.set(key, { n: 1, since: now });
    if (this.failures.size > 100_000) for (const [k, v] of this.failures) if (now - v.since >= this.windowMs) this.failures.delete(k);
  }

  succeeded(key: string): void {
    this.failures.delete(key);
  }

  /** A password check of account `key` under this limit: false when blocked or wrong. */
  async verify(key: string, password: string, hash: string): Promise<boolean> {
    if (this.blocked(key)) return false;
    const ok = await Bun.password.verify(password, hash);
    if (ok) this.succeeded(key);
    else this.failed(key);
    return ok;
  }
}
