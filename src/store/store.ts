// Repositories over drizzle's PgDatabase: the same code runs on postgres.js and PGlite.
import { and, asc, desc, eq, gt, gte, inArray, lt, lte, sql, type SQL } from "drizzle-orm";
import type { Db } from "./db.ts";
import { blocks, conversations, members, messages, users } from "./schema.ts";
import type { Message } from "../core/types.ts";

export type UserRow = typeof users.$inferSelect;
export type ConversationRow = typeof conversations.$inferSelect;
export type MemberRow = typeof members.$inferSelect;

export interface UserInput {
  id: string;
  nick?: string;
  avatar?: string;
  role?: string;
  sex?: number;
  vip?: number;
  attributes?: Record<string, unknown>;
  passwordHash?: string | null;
  disabled?: boolean;
}

/** One message to append. `members` creates the conversation and its members if missing (direct chats). */
export interface AppendItem {
  id: bigint;
  conv: string;
  sender: string;
  kind: string;
  body: unknown;
  cmid?: string | null;
  at: Date;
  create?: { kind: string; members: string[] };
  /** A 1:1 recipient: the message is refused, inside the same transaction, if it blocked the sender. */
  recipient?: string;
}

/**
 * The stored message, and whether it had been stored before under the same (sender, client msg id);
 * or `refused` (nothing stored) when the recipient blocked the sender.
 */
export type AppendResult = { msg: Message; dup: boolean; refused?: undefined } | { refused: "blocked"; msg?: undefined; dup?: undefined };

export interface HistoryQuery {
  beforeSeq?: number;
  afterSeq?: number;
  from?: Date;
  to?: Date;
  limit: number;
  /** newest first when true */
  desc?: boolean;
}

type MessageRow = typeof messages.$inferSelect;

export function toMessage(r: MessageRow): Message {
  return {
    id: r.id.toString(),
    conv: r.convId,
    seq: Number(r.seq),
    from: r.senderId,
    kind: r.kind,
    body: r.recalledAt ? null : r.body,
    cmid: r.clientMsgId ?? undefined,
    ts: r.createdAt.getTime(),
    ...(r.recalledAt ? { recalled: true } : {}),
  };
}

export class Store {
  constructor(readonly db: Db) {}

  async ping(): Promise<void> {
    await this.db.execute(sql`select 1`);
  }

  // ---- users ----

  async upsertUser(u: UserInput): Promise<UserRow> {
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
    const [row] = await this.db.select().from(users).where(eq(users.id, id));
    return row;
  }

  async getUsers(ids: string[]): Promise<UserRow[]> {
    if (ids.length === 0) return [];
    return this.db.select().from(users).where(inArray(users.id, ids));
  }

  // ---- conversations and members ----

  async getConversation(id: string): Promise<ConversationRow | undefined> {
    const [row] = await this.db.select().from(conversations).where(eq(conversations.id, id));
    return row;
  }

  async createConversation(c: typeof conversations.$inferInsert, memberRoles: Record<string, string>): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const made = await tx.insert(conversations).values(c).onConflictDoNothing().returning({ id: conversations.id });
      const rows = Object.entries(memberRoles).map(([userId, role]) => ({ convId: c.id, userId, role }));
      if (rows.length) await tx.insert(members).values(rows).onConflictDoNothing();
      return made.length > 0;
    });
  }

  async getMember(convId: string, userId: string): Promise<MemberRow | undefined> {
    const [row] = await this.db
      .select()
      .from(members)
      .where(and(eq(members.convId, convId), eq(members.userId, userId)));
    return row;
  }

  async memberIds(convId: string): Promise<string[]> {
    const rows = await this.db.select({ u: members.userId }).from(members).where(eq(members.convId, convId));
    return rows.map((r) => r.u);
  }

  /** Moves a cursor forward only (a late or repeated confirmation never moves it back). Returns the new value. */
  async advanceCursor(userId: string, convId: string, field: "delivered" | "read", seq: number): Promise<number | undefined> {
    const col = field === "delivered" ? members.deliveredSeq : members.readSeq;
    const key = field === "delivered" ? "deliveredSeq" : "readSeq";
    // Never past the conversation's last committed seq; reading also implies delivery.
    const capped = sql`least(${seq}, (select ${conversations.lastSeq} from ${conversations} where ${conversations.id} = ${convId}))`;
    const set: Record<string, SQL> = { [key]: sql`greatest(${col}, ${capped})` };
    if (field === "read") set.deliveredSeq = sql`greatest(${members.deliveredSeq}, ${capped})`;
    const rows = await this.db
      .update(members)
      .set(set)
      .where(and(eq(members.convId, convId), eq(members.userId, userId)))
      .returning({ v: col });
    return rows[0]?.v;
  }

  // ---- messages ----

  /**
   * Appends a batch in one transaction: retried client ids resolve to their first message, each
   * conversation's seq range is reserved under its row lock (taken in id order, so concurrent
   * batches from other nodes cannot deadlock), then one multi-row INSERT. Nothing is visible
   * before the commit, and a failed batch consumes no seq.
   */
  async appendBatch(items: AppendItem[]): Promise<AppendResult[]> {
    return this.db.transaction(async (tx) => {
      const results: (AppendResult | undefined)[] = new Array(items.length);

      // 1. Idempotency: earlier messages with the same (sender, client msg id), and repeats inside the batch.
      const withCmid = items.filter((i) => i.cmid);
      const firstByKey = new Map<string, number>();
      if (withCmid.length) {
        const pairs = sql.join(
          withCmid.map((i) => sql`(${i.sender}, ${i.cmid})`),
          sql`, `,
        );
        const found = await tx
          .select()
          .from(messages)
          .where(sql`(${messages.senderId}, ${messages.clientMsgId}) in (${pairs})`);
        const byKey = new Map(found.map((r) => [`${r.senderId}\u0000${r.clientMsgId}`, toMessage(r)]));
        items.forEach((it, i) => {
          if (!it.cmid) return;
          const key = `${it.sender}\u0000${it.cmid}`;
          const prior = byKey.get(key);
          if (prior) results[i] = { msg: prior, dup: true };
          else if (firstByKey.has(key)) results[i] = { msg: undefined as unknown as Message, dup: true };
          else firstByKey.set(key, i);
        });
      }

      // 2. Blacklist: a recipient who blocked the sender refuses the message (checked in the writing
      // transaction, so a block committed before it can never let a message through).
      const checked = items.map((it, i) => ({ it, i })).filter(({ it, i }) => !results[i] && it.recipient);
      if (checked.length) {
        const pairs = sql.join(
          checked.map(({ it }) => sql`(${it.recipient!}::text, ${it.sender}::text)`),
          sql`, `,
        );
        const found = await tx.select().from(blocks).where(sql`(${blocks.userId}, ${blocks.blockedId}) in (${pairs})`);
        const blocked = new Set(found.map((b) => `${b.userId}\u0000${b.blockedId}`));
        for (const { it, i } of checked) if (blocked.has(`${it.recipient}\u0000${it.sender}`)) results[i] = { refused: "blocked" };
      }

      const fresh = items.map((it, i) => ({ it, i })).filter(({ i }) => !results[i]);
      if (fresh.length) {
        // 3. Conversations that must exist (direct chats are created by their first message).
        const creates = new Map<string, { kind: string; members: string[] }>();
        for (const { it } of fresh) if (it.create && !creates.has(it.conv)) creates.set(it.conv, it.create);
        if (creates.size) {
          await tx
            .insert(conversations)
            .values([...creates].map(([id, c]) => ({ id, kind: c.kind })))
            .onConflictDoNothing();
          await tx
            .insert(members)
            .values([...creates].flatMap(([id, c]) => c.members.map((userId) => ({ convId: id, userId }))))
            .onConflictDoNothing();
        }

        // 4. Reserve seq ranges, locking conversation rows in id order.
        const counts = new Map<string, number>();
        const lastAt = new Map<string, Date>();
        for (const { it } of fresh) {
          counts.set(it.conv, (counts.get(it.conv) ?? 0) + 1);
          lastAt.set(it.conv, it.at);
        }
        const convIds = [...counts.keys()].sort();
        const locked = await tx
          .select({ id: conversations.id, lastSeq: conversations.lastSeq })
          .from(conversations)
          .where(inArray(conversations.id, convIds))
          .orderBy(asc(conversations.id))
          .for("update");
        const next = new Map(locked.map((r) => [r.id, Number(r.lastSeq)]));
        for (const id of convIds) if (!next.has(id)) throw new Error(`conversation ${id} does not exist`);
        const values = sql.join(
          convIds.map((id) => sql`(${id}::text, ${next.get(id)! + counts.get(id)!}::bigint, ${lastAt.get(id)!.toISOString()}::timestamptz)`),
          sql`, `,
        );
        await tx.execute(
          sql`update ${conversations} as c set last_seq = v.s, last_msg_at = v.t from (values ${values}) as v(id, s, t) where c.id = v.id`,
        );

        // 5. One multi-row insert.
        const rows = fresh.map(({ it }) => {
          const seq = next.get(it.conv)! + 1;
          next.set(it.conv, seq);
          return {
            id: it.id,
            convId: it.conv,
            seq,
            senderId: it.sender,
            kind: it.kind,
            body: it.body,
            clientMsgId: it.cmid ?? null,
            createdAt: it.at,
          };
        });
        await tx.insert(messages).values(rows);
        fresh.forEach(({ i }, k) => (results[i] = { msg: toMessage({ ...rows[k]!, recalledAt: null }), dup: false }));

        // 6. The sender's own latest seq per conversation ("awaiting reply" is derived from it).
        const sent = new Map<string, { conv: string; user: string; seq: number }>();
        for (const r of rows) sent.set(`${r.convId}\u0000${r.senderId}`, { conv: r.convId, user: r.senderId, seq: r.seq });
        const sv = sql.join(
          [...sent.values()].map((s) => sql`(${s.conv}::text, ${s.user}::text, ${s.seq}::bigint)`),
          sql`, `,
        );
        await tx.execute(
          sql`update ${members} as m set last_sent_seq = greatest(m.last_sent_seq, v.s) from (values ${sv}) as v(c, u, s) where m.conv_id = v.c and m.user_id = v.u`,
        );
      }

      // Repeats inside one batch resolve to the message stored for their first occurrence.
      items.forEach((it, i) => {
        const r = results[i]!;
        if (r.dup && !r.msg) {
          const first = results[firstByKey.get(`${it.sender}\u0000${it.cmid}`)!]!;
          results[i] = first.refused ? first : { msg: first.msg, dup: true };
        }
      });
      return results as AppendResult[];
    });
  }

  /**
   * Messages above the user's delivered cursor written by others, in (conversation, seq) order:
   * what an offline client has not yet confirmed. `after` pages without moving the cursor.
   */
  async pending(
    userId: string,
    opts: { conv?: string; limit: number; after?: { conv: string; seq: number } },
  ): Promise<Message[]> {
    const conds: SQL[] = [eq(members.userId, userId), sql`${messages.senderId} <> ${userId}`];
    if (opts.conv) conds.push(eq(members.convId, opts.conv));
    if (opts.after) conds.push(sql`(${messages.convId}, ${messages.seq}) > (${opts.after.conv}::text, ${opts.after.seq}::bigint)`);
    const rows = await this.db
      .select({ m: messages })
      .from(members)
      .innerJoin(conversations, and(eq(conversations.id, members.convId), gt(conversations.lastSeq, members.deliveredSeq)))
      .innerJoin(messages, and(eq(messages.convId, members.convId), gt(messages.seq, members.deliveredSeq)))
      .where(and(...conds))
      .orderBy(asc(messages.convId), asc(messages.seq))
      .limit(opts.limit);
    return rows.map((r) => toMessage(r.m));
  }

  async history(convId: string, q: HistoryQuery): Promise<Message[]> {
    const conds: SQL[] = [eq(messages.convId, convId)];
    if (q.beforeSeq !== undefined) conds.push(lt(messages.seq, q.beforeSeq));
    if (q.afterSeq !== undefined) conds.push(gt(messages.seq, q.afterSeq));
    if (q.from) conds.push(gte(messages.createdAt, q.from));
    if (q.to) conds.push(lte(messages.createdAt, q.to));
    const rows = await this.db
      .select()
      .from(messages)
      .where(and(...conds))
      .orderBy(q.desc ? desc(messages.seq) : asc(messages.seq))
      .limit(q.limit);
    return rows.map(toMessage);
  }
}
