// Client tokens: what the hand-made HS256 check accepts and refuses, tokens made by jose (as an app backend
// would make them) and tokens forged or bent by hand.
import { describe, expect, test } from "bun:test";
import { SignJWT } from "jose";
import { TokenService } from "../../src/core/tokens.ts";

const SECRET = "unit-secret-unit-secret-unit-secret-0001";
const key = new TextEncoder().encode(SECRET);
const tokens = new TokenService(SECRET, 3600);
const now = () => Math.floor(Date.now() / 1000);

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
/** A token from raw parts, signed with HMAC-SHA256 of `secret` (whatever its header says). */
const forge = (header: unknown, claims: unknown, secret = SECRET) => {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${new Bun.CryptoHasher("sha256", secret).update(input).digest("base64url")}`;
};
const jwt = (claims: Record<string, unknown>, alg = "HS256") => new SignJWT(claims).setProtectedHeader({ alg, typ: "JWT" }).sign(key);

describe("TokenService", () => {
  test("a token it issued verifies, with its user and expiry", async () => {
    const { token, expiresAt } = await tokens.issue("ann", 60);
    expect(await tokens.verify(token)).toEqual({ userId: "ann", exp: expiresAt / 1000 });
    expect(await tokens.signedHere(token)).toBe(true);
  });

  test("a token an app backend made with jose (HS256, the shared secret) verifies", async () => {
    const token = await jwt({ sub: "ben", iat: now(), exp: now() + 600 });
    expect((await tokens.verify(token))?.userId).toBe("ben");
  });

  test("a wrong signature, another secret or a changed part is refused before anything is read", async () => {
    const good = forge({ alg: "HS256" }, { sub: "ann", exp: now() + 60 });
    expect((await tokens.verify(good))?.userId).toBe("ann");
    const [h, p, s] = good.split(".") as [string, string, string];
    expect(await tokens.verify(forge({ alg: "HS256" }, { sub: "ann", exp: now() + 60 }, "another-secret"))).toBeUndefined();
    expect(await tokens.verify(`${h}.${b64({ sub: "eve", exp: now() + 60 })}.${s}`)).toBeUndefined();
    expect(await tokens.verify(`${h}.${p}.${s.slice(0, -2)}`)).toBeUndefined();
    expect(await tokens.verify(`${h}.${p}.${s}=`)).toBeUndefined(); // not base64url: no second spelling of a token
    expect(await tokens.verify(`${h}.${p}`)).toBeUndefined();
    expect(await tokens.verify(`${good}.x`)).toBeUndefined();
    expect(await tokens.signedHere(forge({ alg: "HS256" }, { sub: "ann" }, "another-secret"))).toBe(false);
  });

  // Stricter than jose on two points no real token meets: a `b64` header outside `crit` (jose ignores it) and a
  // signature with padding (jose decodes it).
  test("any algorithm but HS256 in the header is refused, even with a good HMAC; so are crit and b64", async () => {
    const claims = { sub: "ann", exp: now() + 60 };
    for (const header of [{ alg: "none" }, { alg: "HS512" }, { alg: "hs256" }, {}, { alg: "HS256", crit: ["x"], x: 1 }, { alg: "HS256", b64: false }]) {
      expect(await tokens.verify(forge(header, claims))).toBeUndefined();
      expect(await tokens.signedHere(forge(header, claims))).toBe(false);
    }
    expect(await tokens.verify(await jwt({ sub: "ann", exp: now() + 60 }, "HS512"))).toBeUndefined();
    const unsigned = `${b64({ alg: "none" })}.${b64(claims)}.`;
    expect(await tokens.verify(unsigned)).toBeUndefined();
  });

  test("claims: exp required and in the future, nbf passed, sub a non-empty string, lifetime at most the maximum", async () => {
    const h = { alg: "HS256", typ: "JWT" };
    expect(await tokens.verify(forge(h, { sub: "ann" }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: "ann", exp: now() }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: "ann", exp: String(now() + 60) }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: "ann", exp: now() + 60, nbf: now() + 30 }))).toBeUndefined();
    expect((await tokens.verify(forge(h, { sub: "ann", exp: now() + 60, nbf: now() - 1 })))?.userId).toBe("ann");
    expect(await tokens.verify(forge(h, { sub: "ann", exp: now() + 60, iat: "yesterday" }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: "", exp: now() + 60 }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: 7, exp: now() + 60 }))).toBeUndefined();
    expect(await tokens.verify(forge(h, { sub: "ann", exp: now() + 7200 }))).toBeUndefined(); // longer than 3600 s from now
    expect(await tokens.verify(forge(h, { sub: "ann", iat: now() - 7000, exp: now() + 60 }))).toBeUndefined(); // issued for longer
    expect(await tokens.verify(forge(h, ["ann"]))).toBeUndefined();
    expect(await tokens.verify(forge(h, "not json"))).toBeUndefined();
    // Claims named like Object.prototype's members are plain data.
    expect((await tokens.verify(forge(h, { sub: "ann", exp: now() + 60, __proto__: { x: 1 }, constructor: 1 })))?.userId).toBe("ann");
  });

  test("an expired token of ours is still signed here (it must not log in any other way)", async () => {
    const expired = forge({ alg: "HS256" }, { sub: "ann", exp: now() - 10 });
    expect(await tokens.verify(expired)).toBeUndefined();
    expect(await tokens.signedHere(expired)).toBe(true);
  });

  test("oversized and non-string input is refused", async () => {
    expect(await tokens.verify(`${forge({ alg: "HS256" }, { sub: "ann", exp: now() + 60, pad: "x".repeat(5000) })}`)).toBeUndefined();
    expect(await tokens.verify(undefined)).toBeUndefined();
    expect(await tokens.verify(null)).toBeUndefined();
    expect(await tokens.verify("")).toBeUndefined();
    expect(await tokens.verify(42 as unknown as string)).toBeUndefined();
  });
});
