import { describe, expect, test } from "bun:test";
import { addressKey, LoginThrottle, MemoryAttempts, TokenBucket } from "../../src/core/ratelimit.ts";

describe("MemoryAttempts", () => {
  test("counts every key until one reaches its limit, then refuses without counting until that window ends", () => {
    const m = new MemoryAttempts();
    expect(m.takeNow(["p", "a"], [2, 10], 1000, 0)).toBe(0);
    expect(m.takeNow(["p", "a"], [2, 10], 1000, 10)).toBe(0);
    expect(m.takeNow(["p", "a"], [2, 10], 1000, 20)).toBe(980);
    expect(m.takeNow(["q", "a"], [2, 10], 1000, 20)).toBe(0); // the refused attempt did not count on "a"
    expect(m.takeNow(["q", "a"], [2, 3], 1000, 30)).toBe(970); // "a" has 3
    expect(m.takeNow(["p", "a"], [2, 10], 1000, 1000)).toBe(0); // the window is over
  });
});

describe("LoginThrottle", () => {
  const limits = { windowMs: 60_000, perAccountAddress: 3, perAccount: 10, perAddress: 20 };
  const slowCheck = (ok: boolean) => async () => {
    await Bun.sleep(5); // a password hash check takes a while: the whole burst is in flight meanwhile
    return ok ? "in" : undefined;
  };

  test("a concurrent burst gets at most the limit checked: the right password behind 40 wrong ones is refused", async () => {
    const t = new LoginThrottle(new MemoryAttempts(), limits);
    let checked = 0;
    const check = (ok: boolean) => () => (checked++, slowCheck(ok)());
    const burst = [...Array.from({ length: 40 }, () => t.attempt("alice", "1.2.3.4", check(false))), t.attempt("alice", "1.2.3.4", check(true))];
    const results = await Promise.all(burst);
    expect(results.every((r) => r === undefined)).toBe(true);
    expect(checked).toBe(3);
    // the owner from another address still logs in; the guesser's address stays locked out of the account
    expect(await t.attempt("alice", "5.6.7.8", slowCheck(true))).toBe("in");
    expect(await t.attempt("alice", "1.2.3.4", slowCheck(true))).toBeUndefined();
  });

  test("a success takes its attempt back and clears its own (account, address) count", async () => {
    const t = new LoginThrottle(new MemoryAttempts(), limits);
    for (let round = 0; round < 4; round++) {
      expect(await t.attempt("bob", "1.1.1.1", slowCheck(false))).toBeUndefined();
      expect(await t.attempt("bob", "1.1.1.1", slowCheck(false))).toBeUndefined();
      expect(await t.attempt("bob", "1.1.1.1", slowCheck(true))).toBe("in");
    }
  });

  test("many addresses on one account lock it; one address on many accounts is limited too", async () => {
    const t = new LoginThrottle(new MemoryAttempts(), limits);
    for (let i = 0; i < 10; i++) await t.attempt("carol", `10.0.0.${i}`, slowCheck(false));
    expect(await t.attempt("carol", "10.0.1.1", slowCheck(true))).toBeUndefined();
    for (let i = 0; i < 20; i++) await t.attempt(`u${i}`, "9.9.9.9", slowCheck(false));
    expect(await t.attempt("dave", "9.9.9.9", slowCheck(true))).toBeUndefined();
    expect(await t.attempt("dave", "9.9.9.8", slowCheck(true))).toBe("in");
  });

  test("a failing shared counter falls back to this node's counts", async () => {
    const broken = { take: () => Promise.reject(new Error("down")), giveBack: () => Promise.reject(new Error("down")) };
    const t = new LoginThrottle(broken, limits);
    for (let i = 0; i < 3; i++) await t.attempt("erin", "1.2.3.4", slowCheck(false));
    expect(await t.attempt("erin", "1.2.3.4", slowCheck(true))).toBeUndefined();
  });
});

test("addressKey: IPv4 (also IPv4-mapped) as is, IPv6 by its /64", () => {
  expect(addressKey("::ffff:127.0.0.1")).toBe("127.0.0.1");
  expect(addressKey("10.1.2.3")).toBe("10.1.2.3");
  expect(addressKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
  expect(addressKey("2001:db8:1:2::9")).toBe("2001:db8:1:2::/64");
  expect(addressKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
  expect(addressKey("::1")).toBe("0:0:0:0::/64");
  expect(addressKey(undefined)).toBe("?");
});

describe("TokenBucket", () => {
  test("allows the burst, then one per 1/rate seconds", () => {
    const b = new TokenBucket(10, 2, 0);
    expect(b.take(0)).toBe(0);
    expect(b.take(0)).toBe(0);
    expect(b.take(0)).toBe(100);
    expect(b.take(100)).toBe(0);
  });
});
