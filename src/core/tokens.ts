// Client tokens are JWTs (HS256) so that an app backend holding TOKEN_SECRET can mint them itself.
import { jwtVerify, SignJWT } from "jose";

export class TokenService {
  private readonly key: Uint8Array;
  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async issue(userId: string, ttlSec: number): Promise<{ token: string; expiresAt: number }> {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuedAt(now)
      .setExpirationTime(now + ttlSec)
      .sign(this.key);
    return { token, expiresAt: (now + ttlSec) * 1000 };
  }

  /** The user id in `sub`, or undefined for a bad signature, a wrong algorithm or an expired token. */
  async verify(token: string | undefined | null): Promise<{ userId: string; exp?: number } | undefined> {
    if (!token || typeof token !== "string") return undefined;
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ["HS256"] });
      if (typeof payload.sub !== "string" || !payload.sub) return undefined;
      return { userId: payload.sub, exp: payload.exp };
    } catch {
      return undefined;
    }
  }
}
