// Who a connection is, from what a client presents: a JWT (TokenService), an opaque token an app
// backend registered for the user (e.g. J-IM `initUser`), or a user name and password.
import { createHash } from "node:crypto";
import type { AppTokenStore } from "../store/app-tokens.ts";
import type { Chat } from "./chat.ts";
import { USER_ID_RE } from "./ids.ts";
import { FailedLogins } from "./ratelimit.ts";
import type { TokenService } from "./tokens.ts";

export interface LoginDeps {
  chat: Chat;
  tokens: TokenService;
  appTokens: AppTokenStore;
  /** password hash of a user, if it has one */
  passwordHash(userId: string): Promise<string | null | undefined>;
}

export type Who = { id: string; role: string; exp?: number };

/** Registered opaque tokens live this long (the J-IM original: 7 days). */
export const APP_TOKEN_TTL_SEC = 7 * 86400;

export const tokenHash = (token: string) => createHash("sha256").update(token).digest("hex");

export class Logins {
  private readonly failures = new FailedLogins();

  constructor(private readonly d: LoginDeps) {}

  /** A JWT of TOKEN_SECRET, or a registered opaque token, of an active user. */
  async byToken(token: unknown): Promise<Who | undefined> {
    if (typeof token !== "string" || !token || token.length > 4096) return undefined;
    const jwt = await this.d.tokens.verify(token);
    const userId = jwt?.userId ?? (await this.d.appTokens.userOf(tokenHash(token)));
    const u = userId ? await this.d.chat.activeUser(userId) : undefined;
    return u && { ...u, exp: jwt?.exp };
  }

  async byPassword(userId: unknown, password: unknown): Promise<Who | undefined> {
    if (typeof userId !== "string" || !USER_ID_RE.test(userId) || typeof password !== "string" || !password) return undefined;
    if (this.failures.blocked(userId)) return undefined;
    const hash = await this.d.passwordHash(userId);
    if (!hash || !(await this.failures.verify(userId, password, hash))) return undefined;
    return this.d.chat.activeUser(userId);
  }

  /** Makes `token` log `userId` in for APP_TOKEN_TTL_SEC. False when another user holds that token. */
  async register(userId: string, token: string): Promise<boolean> {
    return this.d.appTokens.put(tokenHash(token), userId, new Date(Date.now() + APP_TOKEN_TTL_SEC * 1000));
  }
}
