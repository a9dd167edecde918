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
 * Attempt counters of fixed windows: in memory (one node) or in Redis (shared by the cluster). Keys are opaque
 * strings made by LoginThrottle.
 */
export interface AttemptCounter {
  /**
   * Counts one attempt on every key unless one of them has reached its limit (`limits[i]` for `keys[i]`). Returns
   * 0 when counted, else the milliseconds until the full key's window ends (nothing is counted then). Atomic:
   * concurrent calls never pass a limit together. A key's window starts with its first attempt.
   */
  take(keys: readonly string[], limits: readonly number[], windowMs: number): Promise<number>;
  /** Takes an attempt back: deletes the `clear` keys and counts one less on the `decrement` keys. */
  giveBack(clear: readonly string[], decrement: readonly string[]): Promise<void>;
}

const MEMORY_COUNTERS_MAX = 100_000;

export class MemoryAttempts implements AttemptCounter {
  private readonly counts = new Map<string, { n: number; until: number }>();

  private live(key: string, now: number) {
    const c = this.counts.get(key);
    if (c && c.until <= now) {
      this.counts.delete(key);
      return undefined;
    }
    return c;
  }

  /** Synchronous, so atomic on one node. */
  takeNow(keys: readonly string[], limits: readonly number[], windowMs: number, now = Date.now()): number {
    for (let i = 0; i < keys.length; i++) {
      const c = this.live(keys[i]!, now);
      if (c && c.n >= limits[i]!) return Math.max(1, c.until - now);
    }
    if (this.counts.size > MEMORY_COUNTERS_MAX) for (const [k, c] of this.counts) if (c.until <= now) this.counts.delete(k);
    for (const k of keys) {
      const c = this.live(k, now);
      if (c) c.n++;
      else this.counts.set(k, { n: 1, until: now + windowMs });
    }
    return 0;
  }

  async take(keys: readonly string[], limits: readonly number[], windowMs: number): Promise<number> {
    return this.takeNow(keys, limits, windowMs);
  }

  async giveBack(clear: readonly string[], decrement: readonly string[]): Promise<void> {
    for (const k of clear) this.counts.delete(k);
    for (const k of decrement) {
      const c = this.counts.get(k);
      if (c && c.n > 0) c.n--;
    }
  }
}

export interface LoginLimits {
  windowMs: number;
  /** attempts on one account from one address (the tight lock: a guesser locks only itself out) */
  perAccountAddress: number;
  /** attempts on one account from anywhere (many addresses guessing one account) */
  perAccount: number;
  /** attempts from one address on any account (one address guessing many accounts) */
  perAddress: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { windowMs: 900_000, perAccountAddress: 5, perAccount: 50, perAddress: 100 };

/**
 * The address a limit counts: an IPv4 address (also when IPv4-mapped), or the /64 network of an IPv6 address
 * (one host easily holds a whole /64).
 */
export function addressKey(address: string | undefined): string {
  if (!address) return "?";
  const a = address.toLowerCase();
  const v4 = a.match(/^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/);
  if (v4) return v4[1]!;
  if (!a.includes(":")) return a;
  const [head = "", tail] = a.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (g.replace(/^0+/, "") || "0"))
    .join(":")}::/64`;
}

/**
 * Password logins under attempt limits, per window: of one account from one address, of one account, and of one
 * address. An attempt is counted BEFORE its password is checked, so a burst of concurrent guesses gets at most
 * the limit checked, however fast they come; an attempt over a limit is refused without a check (and without
 * counting). A success takes its attempt back and clears its (account, address) count, so the owner's own typos
 * do not add up. A guesser from one address locks only that address out of the account (the owner elsewhere
 * still logs in); many addresses on one account lock it for the rest of the window, never longer.
 * The counts live in `counter` (Redis in a cluster); while it fails, this node's own counts are used.
 */
export class LoginThrottle {
  private readonly local = new MemoryAttempts();

  constructor(
    private readonly counter: AttemptCounter = new MemoryAttempts(),
    private readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS,
    private readonly log: (msg: string) => void = () => {},
  ) {}

  /** Runs `check` (the password check of `account`, from `address`) if the limits allow: its result, or undefined. */
  async attempt<T>(account: string, address: string | undefined, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const from = addressKey(address);
    const pair = `aa:${account}\u0000${from}`;
    const acc = `a:${account}`;
    const addr = `ip:${from}`;
    const keys = [pair, acc, addr];
    const l = this.limits;
    let counter: AttemptCounter = this.counter;
    let wait: number;
    try {
      wait = await counter.take(keys, [l.perAccountAddress, l.perAccount, l.perAddress], l.windowMs);
    } catch (e) {
      this.log(`login attempts: shared counter unavailable, counting on this node: ${(e as Error).message}`);
      counter = this.local;
      wait = this.local.takeNow(keys, [l.perAccountAddress, l.perAccount, l.perAddress], l.windowMs);
    }
    if (wait > 0) return undefined;
    const ok = await check();
    if (ok !== undefined) await counter.giveBack([pair], [acc, addr]).catch((e) => this.log(`login attempts: ${(e as Error).message}`));
    return ok;
  }
}
