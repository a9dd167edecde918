// User records (the core's Users port).
import { eq, inArray, sql } from "drizzle-orm";
import { storableJson, storableText } from "../core/storable.ts";
import type { Users } from "../core/ports.ts";
import type { UserInput, UserRow } from "../core/records.ts";
import type { Db } from "./db.ts";
import { users } from "./schema.ts";

export class UserStore implements Users {
  /** A prepared statement: every login and every uncached sender reads a user by id. */
  private readonly byId;

  constructor(private readonly db: Db) {
    this.byId = db.select().from(users).where(eq(users.id, sql.placeholder("id"))).prepare("users_by_id");
  }

  async upsertUser(u: UserInput): Promise<UserRow> {
    // Every profile write of every entry point passes here: what Postgres cannot store is a bad request.
    for (const k of ["id", "nick", "avatar", "role"] as const) storableText(u[k], `\`${k}\``);
    storableJson(u.attributes, "`attributes`");
    const set: Partial<typeof users.$inferInsert> = { updatedAt: new Date() };
    for (const k of ["nick", "avatar", "role", "sex", "vip", "attributes", "passwordHash", "disabled"] as const) {
      if (u[k] !== undefined) (set as Record<string, unknown>)[k] = u[k];
    }
    const [row] = await this.db
      .insert(users)
      .values({ ...set, id: u.id })
      .onConflictDoUpdate({ target: users.id, set })
      .returning();
    return row!;
  }

  async getUser(id: string): Promise<UserRow | undefined> {
    const [row] = await this.byId.execute({ id });
    return row;
  }

  async getUsers(ids: string[]): Promise<UserRow[]> {
    if (ids.length === 0) return [];
    return this.db.select().from(users).where(inArray(users.id, ids));
  }
}
