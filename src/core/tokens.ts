// Client tokens are JWTs (HS256) so that an app backend holding TOKEN_SECRET can mint them itself.
// Every token expires: one without `exp`, or living longer than the configured maximum, is refused.
//
// Checked by hand at every login: the signature (HMAC-SHA256, compared in constant time) before anything of
// the token is parsed, then its header and claims as jose's jwtVerify checks them. jose's own check went through
// WebCrypto's asynchronous verify: 43 µs a token in a loop and up to 180 µs of a reconnect's server CPU under
// load (bench: offline-pull), against under 4 µs here.
import { timingSafeEqual } from "node:crypto";
import { SignJWT } from "jose";
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
    return this.signed(token) !== undefined;
  }

  /**
   * The user id in `sub` and the expiry (`exp`, seconds), or undefined for a bad signature, a wrong
   * algorithm, a token without `exp`, an expired one, one not valid yet (`nbf`), or one living longer than
   * `maxTtlSec`.
   */
  async verify(token: string | undefined | null): Promise<{ userId: string; exp: number } | undefined> {
    const claims = typeof token === "string" ? jsonObject(this.signed(token)?.payload) : undefined;
    if (!claims) return undefined;
    const { sub, exp, iat, nbf } = claims;
    if (typeof sub !== "string" || !sub || typeof exp !== "number" || !Number.isFinite(exp)) return undefined;
    if ((iat !== undefined && typeof iat !== "number") || (nbf !== undefined && typeof nbf !== "number")) return undefined;
    const now = Math.floor(Date.now() / 1000);
    if (exp <= now || (nbf !== undefined && nbf > now)) return undefined;
    if (exp - Date.now() / 1000 > this.maxTtlSec) return undefined;
    if (typeof iat === "number" && exp - iat > this.maxTtlSec) return undefined;
    return { userId: sub, exp };
  }

  /**
   * A compact JWS of three base64url parts whose signature is this server's HMAC-SHA256 of the first two (checked
   * before anything is decoded), with a header saying HS256 and nothing this check does not understand (`crit`,
   * an unencoded payload): its payload part, still encoded.
   */
  private signed(token: string): { payload: string } | undefined {
    if (token.length > MAX_TOKEN_CHARS) return undefined;
    const parts = token.split(".");
    if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) return undefined;
    const [header, payload, signature] = parts as [string, string, string];
    const mac = new Bun.CryptoHasher("sha256", this.key).update(`${header}.${payload}`).digest();
    const sig = Buffer.from(signature, "base64url");
    if (sig.length !== mac.length || !timingSafeEqual(sig, mac)) return undefined;
    const h = jsonObject(header);
    if (!h || h.alg !== "HS256" || h.crit !== undefined || h.b64 !== undefined) return undefined;
    return { payload };
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** A base64url part decoded as a JSON object (null-prototype), or undefined. */
function jsonObject(part: string | undefined): Record<string, unknown> | undefined {
  if (part === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? Object.assign(Object.create(null), v) : undefined;
  } catch {
    return undefined;
  }
}
