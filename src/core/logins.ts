// Who a connection is, from what a client presents: a JWT (TokenService), an opaque token an app
// backend registered for the user (e.g. J-IM `initUser`), or a user name and password.
import { createHash } from "node:crypto";
import type { Chat } from "./chat.ts";
import { USER_ID_RE } from "./ids.ts";
import type { AppTokens } from "./ports.ts";
import { LoginThrottle } from "./ratelimit.ts";
import { MAX_TOKEN_CHARS, type TokenService } from "./tokens.ts";

export interface LoginDeps {
  chat: Pick<Chat, "activeUser">;
  tokens: TokenService;
  appTokens: AppTokens;
  /** password hash of a user, if it has one */
  passwordHash(userId: string): Promise<string | null | undefined>;
  /** attempt limits of password logins (shared by the cluster) */
  throttle?: LoginThrottle;
}

export type Who = { id: string; role: string; exp?: number };

/** Opaque tokens registered with the server API key live this long (the J-IM original: 7 days). */
export const APP_TOKEN_TTL_SEC = 7 * 86400;

export const tokenHash = (token: string) => createHash("sha256").update(token).digest("hex");

export class Logins {
  private readonly throttle: LoginThrottle;

  constructor(private readonly d: LoginDeps) {
    this.throttle = d.throttle ?? new LoginThrottle();
  }

  /**
   * What a token proves by itself: its user and until when (epoch ms): a JWT of TOKEN_SECRET until its `exp`,
   * a registered token until its registration ends. Undefined for anything expired or unknown; a JWT of ours
   * that is expired (or without `exp`, or too long-lived) proves nothing, even if it was registered as a token.
   */
  async proof(token: unknown): Promise<{ id: string; until: number } | undefined> {
    if (typeof token !== "string" || !token || token.length > MAX_TOKEN_CHARS) return undefined;
    const jwt = await this.d.tokens.verify(token);
    if (jwt) return { id: jwt.userId, until: jwt.exp * 1000 };
    if (await this.d.tokens.signedHere(token)) return undefined;
    const reg = await this.d.appTokens.userOf(tokenHash(token));
    return reg && { id: reg.userId, until: reg.expiresAt.getTime() };
  }

  /** A JWT of TOKEN_SECRET, or a registered opaque token, of an active user. `exp`: when the token ends (seconds). */
  async byToken(token: unknown): Promise<Who | undefined> {
    const p = await this.proof(token);
    const u = p ? await this.d.chat.activeUser(p.id) : undefined;
    return u && { ...u, exp: Math.floor(p!.until / 1000) };
  }

  /**
   * A JWT of TOKEN_SECRET only (the native and desk protocols take no registered tokens): the user it names and
   * its `exp` (seconds), with `user` set when that user is active. Undefined when the token proves nothing.
   */
  async byJwt(token: unknown): Promise<{ id: string; exp: number; user?: Who } | undefined> {
    const jwt = typeof token === "string" ? await this.d.tokens.verify(token) : undefined;
    if (!jwt) return undefined;
    const u = await this.d.chat.activeUser(jwt.userId);
    return { id: jwt.userId, exp: jwt.exp, user: u && { ...u, exp: jwt.exp } };
  }

  /** A user's password, under the login attempt limits (by user and by the client's `address`). */
  async byPassword(userId: unknown, password: unknown, address?: string): Promise<Who | undefined> {
    if (typeof userId !== "string" || !USER_ID_RE.test(userId) || typeof password !== "string" || !password) return undefined;
    return this.throttle.attempt(`u:${userId}`, address, async () => {
      const hash = await this.d.passwordHash(userId);
      if (!hash || !(await Bun.password.verify(password, hash))) return undefined;
      return this.d.chat.activeUser(userId);
    });
  }

  /**
   * Makes `token` log `userId` in until `until` (epoch ms), at most APP_TOKEN_TTL_SEC from now. A registration
   * proved by a token ends when that token does (pass its proof's `until`); only the server API key registers
   * for the full APP_TOKEN_TTL_SEC, and a JWT of ours never past its own `exp` (an expired one not at all). False
   * when another user holds that token, or when it would already be over.
   */
  async register(userId: string, token: string, until = Infinity): Promise<boolean> {
    let end = Math.min(Date.now() + APP_TOKEN_TTL_SEC * 1000, until);
    const jwt = await this.d.tokens.verify(token);
    if (jwt) end = Math.min(end, jwt.exp * 1000);
    else if (await this.d.tokens.signedHere(token)) return false;
    if (end <= Date.now()) return false;
    return this.d.appTokens.put(tokenHash(token), userId, new Date(end));
  }
}
