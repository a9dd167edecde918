// Client tokens are JWTs (HS256) so that an app backend holding TOKEN_SECRET can mint them itself.
// Every token expires: one without `exp`, or living longer than the configured maximum, is refused.
import { compactVerify, jwtVerify, SignJWT } from "jose";
import { fail } from "./errors.ts";

/** Longest token accepted anywhere (a JWT is a few hundred bytes). */
export const MAX_TOKEN_CHARS = 4096;
/** TOKEN_MAX_TTL_SEC's default. */
export const DEFAULT_TOKEN_MAX_TTL_SEC = 30 * 86400;

export class TokenService {
  private readonly key: Uint8Array;
  constructor(
    secret: string,
    /** longest lifetime of a token: `exp - iat` and `exp - now` */
    readonly maxTtlSec = DEFAULT_TOKEN_MAX_TTL_SEC,
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  async issue(userId: string, ttlSec: number): Promise<{ token: string; expiresAt: number }> {
    if (!(ttlSec >= 1 && ttlSec <= this.maxTtlSec)) fail("bad_request", `ttlSec must be from 1 to ${this.maxTtlSec} (TOKEN_MAX_TTL_SEC)`);
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSec)
      .sign(this.key);
    return { token, expiresAt: (now + ttlSec) * 1000 };
  }

  /**
   * Whether `token` carries a valid HS256 signature of this server's secret, whatever its claims (an expired JWT
   * of ours is still ours: it must not log in any other way, e.g. as a registered opaque token).
   */
  async signedHere(token: string): Promise<boolean> {
    if (token.length > MAX_TOKEN_CHARS || token.split(".").length !== 3) return false;
    try {
      await compactVerify(token, this.key, { algorithms: ["HS256"] });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The user id in `sub` and the expiry (`exp`, seconds), or undefined for a bad signature, a wrong
   * algorithm, a token without `exp`, an expired one, or one living longer than `maxTtlSec`.
   */
  async verify(token: string | undefined | null): Promise<{ userId: string; exp: number } | undefined> {
    if (!token || typeof token !== "string" || token.length > MAX_TOKEN_CHARS) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ["HS256"], requiredClaims: ["exp"] });
      if (typeof payload.sub !== "string" || !payload.sub || typeof payload.exp !== "number") return undefined;
      const now = Date.now() / 1000;
      if (payload.exp - now > this.maxTtlSec) return undefined;
      if (typeof payload.iat === "number" && payload.exp - payload.iat > this.maxTtlSec) return undefined;
      return { userId: payload.sub, exp: payload.exp };
    } catch {
      return undefined;
    }
  }
}
