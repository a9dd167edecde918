// Opaque login tokens registered by app backends (J-IM `initUser`). Only their sha256 is stored.
import { and, eq, gt, lte, or, sql } from "drizzle-orm";
import type { Db } from "./db.ts";
import type { AppTokens } from "../core/ports.ts";
import { appTokens } from "./schema.ts";

export class AppTokenStore implements AppTokens {
  constructor(private readonly db: Db) {}

  /**
   * Binds a token hash to a user until `expiresAt`. A hash still bound to another user is not taken
   * over (returns false): nobody can claim a token someone else holds.
   */
  async put(hash: string, userId: string, expiresAt: Date): Promise<boolean> {
    const rows = await this.db
      .insert(appTokens)
      .values({ hash, userId, expiresAt })
      .onConflictDoUpdate({
        target: appTokens.hash,
        set: { userId, expiresAt, createdAt: sql`now()` },
        setWhere: or(eq(appTokens.userId, userId), lte(appTokens.expiresAt, sql`now()`)),
      })
      .returning({ u: appTokens.userId });
    return rows.length > 0;
  }

  /** The user a live token hash belongs to, and when its registration ends. */
  async userOf(hash: string): Promise<{ userId: string; expiresAt: Date } | undefined> {
    const [row] = await this.db
      .select({ userId: appTokens.userId, expiresAt: appTokens.expiresAt })
      .from(appTokens)
      .where(and(eq(appTokens.hash, hash), gt(appTokens.expiresAt, sql`now()`)));
    return row;
  }
}
