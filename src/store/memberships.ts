// Leaving a conversation (the Store creates members; this removes one).
import { and, eq } from "drizzle-orm";
import type { Db } from "./db.ts";
import { members } from "./schema.ts";

export async function removeMember(db: Db, convId: string, userId: string): Promise<boolean> {
  const rows = await db
    .delete(members)
    .where(and(eq(members.convId, convId), eq(members.userId, userId)))
    .returning({ u: members.userId });
  return rows.length > 0;
}
