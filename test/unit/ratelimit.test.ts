import { describe, expect, test } from "bun:test";
import { FailedLogins, TokenBucket } from "../../src/core/ratelimit.ts";

describe("FailedLogins", () => {
  test("blocks an account after max failures within the window, until the window has passed", () => {
    const f = new FailedLogins(3, 1000);
    for (let i = 0; i < 2; i++) f.failed("a", 100 + i);
    expect(f.blocked("a", 110)).toBe(false);
    f.failed("a", 120);
    expect(f.blocked("a", 130)).toBe(true);
    expect(f.blocked("b", 130)).toBe(false);
    expect(f.blocked("a", 1099)).toBe(true);
    expect(f.blocked("a", 1100)).toBe(false);
  });

  test("a success clears the account's failures", () => {
    const f = new FailedLogins(2, 1000);
    f.failed("a", 0);
    f.succeeded("a");
    f.failed("a", 10);
    expect(f.blocked("a", 20)).toBe(false);
  });
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
