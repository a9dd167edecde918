// Password-login attempt counters for a cluster, in Redis (`l:` keys, bus/keys.ts): every node counts into the
// same keys, so a burst spread over many nodes meets one limit. Each call is one Lua script: checking the limits
// and counting the attempt are one atomic step, so concurrent attempts on any nodes never pass a limit together.
// Keys expire with their window (PEXPIRE on the first attempt). The connection does not queue commands while
// Redis is away: a call fails at once and LoginThrottle counts on the node meanwhile.
import type { Logger } from "../app.ts";
import type { Keys } from "../bus/keys.ts";
import { redisClient, type RedisConn, type RedisTarget } from "../bus/redis.ts";
import type { AttemptCounter } from "../core/ratelimit.ts";

// KEYS: the counters; ARGV[1]: window ms, ARGV[1 + i]: the limit of KEYS[i]. Returns 0 (counted) or ms to wait.
const TAKE = `
for i = 1, #KEYS do
  local n = tonumber(redis.call('GET', KEYS[i]) or '0')
  if n >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[1]) end
    return ttl
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 0`;

// KEYS: ARGV[1] keys to delete, then keys to count one less on.
const GIVE_BACK = `
local clear = tonumber(ARGV[1])
for i = 1, #KEYS do
  if i <= clear then redis.call('DEL', KEYS[i])
  elseif tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 0`;

type Scripted = RedisConn & {
  loginTake(n: number, ...args: (string | number)[]): Promise<number>;
  loginGiveBack(n: number, ...args: (string | number)[]): Promise<number>;
};

export class RedisLoginAttempts implements AttemptCounter {
  private constructor(
    private readonly r: Scripted,
    private readonly keys: Keys,
  ) {}

  static async connect(url: RedisTarget, keys: Keys, log: Logger): Promise<RedisLoginAttempts> {
    const r = redisClient(url, "logins", log, false);
    r.defineCommand("loginTake", { lua: TAKE });
    r.defineCommand("loginGiveBack", { lua: GIVE_BACK });
    await r.connect();
    return new RedisLoginAttempts(r as Scripted, keys);
  }

  async take(keys: readonly string[], limits: readonly number[], windowMs: number): Promise<number> {
    return Number(await this.r.loginTake(keys.length, ...keys.map((k) => this.keys.loginAttempts(k)), windowMs, ...limits));
  }

  async giveBack(clear: readonly string[], decrement: readonly string[]): Promise<void> {
    const all = [...clear, ...decrement].map((k) => this.keys.loginAttempts(k));
    await this.r.loginGiveBack(all.length, ...all, clear.length);
  }

  async close(): Promise<void> {
    this.r.disconnect();
  }
}
