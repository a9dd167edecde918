// Stored messages and the members' delivered/read cursors over them (the core's Messages port). Raw SQL where
// the query builder's cost shows (bench: offline-pull); the same code runs on postgres.js and PGlite.
import { and, asc, desc, eq, gt, gte, lt, lte, sql, type Placeholder, type SQL } from "drizzle-orm";
import type { AppendStages, Messages } from "../core/ports.ts";
import type { AppendItem, AppendResult, HistoryQuery } from "../core/records.ts";
import type { Message } from "../core/types.ts";
import { appendBatch } from "./append.ts";
import { built, prepared, run, type Built, type Db } from "./db.ts";
import { fromPulled, toMessage, type PulledRow } from "./message-rows.ts";
import { inPartitions, inPartitionsOf, type PartitionInterval } from "./partitions.ts";
import { messages } from "./schema.ts";


/**
 * The reconnect hot path, in raw SQL: the query builder's join building and row mapping cost more CPU than
 * the query (bench: offline-pull). Per conversation with news, a range scan of (conv_id, seq) above the
 * user's delivered cursor, at most `limit` rows each, so a long conversation costs only what is returned. The page
 * stays inside its statement, numbered (`rn`), its bodies left as jsonb: it is returned as one JSON array (pageJson).
 */
export function pendingPage(
  userId: string | Placeholder,
  opts: { conv?: string | Placeholder; limit: number | Placeholder; after?: { conv: string; seq: number } },
): SQL {
  return sql`
    select m.id::text as id, m.conv_id, m.seq, m.sender_id, m.kind, m.body, m.client_msg_id,
           (extract(epoch from m.created_at) * 1000)::float8 as created_at, m.recalled_at,
           row_number() over (order by m.conv_id, m.seq) as rn
      from members mb
      join conversations c on c.id = mb.conv_id and c.last_seq > mb.delivered_seq
      cross join lateral (
        select * from messages m
         where m.conv_id = mb.conv_id and m.seq > mb.delivered_seq and m.sender_id <> ${userId}
           and ${inPartitions(sql`m.created_at`, sql`c`, sql`mb.delivered_seq + 1`)}
           ${opts.after ? sql`and (m.conv_id, m.seq) > (${opts.after.conv}::text, ${opts.after.seq}::bigint)` : sql``}
         order by m.seq
         limit ${opts.limit}) m
     where mb.user_id = ${userId}
       ${opts.conv ? sql`and mb.conv_id = ${opts.conv}` : sql``}
       ${opts.after ? sql`and mb.conv_id >= ${opts.after.conv}` : sql``}
     order by m.conv_id, m.seq
     limit ${opts.limit}`;
}

/** A page (the rows of a `pendingPage`) as one JSON array of PulledRows in page order: a scalar subquery. */
const pageJson = (page: SQL) => sql`
  (select json_agg(json_build_array(p.id, p.conv_id, p.seq, p.sender_id, p.kind, p.body, p.client_msg_id, p.created_at, p.recalled_at is not null)
                   order by p.rn)::text from ${page} p)`;

/** The user of the prepared page statements, and their page of all conversations or of one (placeholders: user, conv, page). */
const USER = sql.placeholder("user");
const placedPage = (oneConv: boolean) => pendingPage(USER, { conv: oneConv ? sql.placeholder("conv") : undefined, limit: sql.placeholder("page") });

/** The read of a page, of all conversations or of one. */
const readStatement = (oneConv: boolean): Built => built(sql`select ${pageJson(sql`(${placedPage(oneConv)})`)} as msgs`);
const READ = { all: readStatement(false), conv: readStatement(true) };

/** The pull's statement, of all conversations or of one (placeholders: the page's, limit; page = limit + 1). */
const pullStatement = (oneConv: boolean): Built =>
  built(sql`
    with page as (${placedPage(oneConv)}),
    top as (
      select conv_id, max(seq) as s from page
       where rn <= ${sql.placeholder("limit")} and set_config('synchronous_commit', 'off', true) = 'off'
       group by conv_id order by conv_id),
    moved as (
      update members as mb set delivered_seq = greatest(mb.delivered_seq, top.s)
        from top where mb.conv_id = top.conv_id and mb.user_id = ${USER}
      returning mb.conv_id, mb.delivered_seq)
    select ${pageJson(sql`page`)} as msgs,
           (select json_agg(json_build_array(conv_id, delivered_seq))::text from moved) as moved`);
const PULL = { all: pullStatement(false), conv: pullStatement(true) };

/** Moves pulled pages' delivered cursors (placeholder: marks, a JSON array of [user, conv, seq]). */
const ADVANCE_PULLED = built(sql`
  with v as (
    select v->>0 as u, v->>1 as c, (v->>2)::bigint as s from jsonb_array_elements(${sql.placeholder("marks")}::text::jsonb) v
     where set_config('synchronous_commit', 'off', true) = 'off'),
  moved as (
    update members as mb set delivered_seq = v.s
      from v where mb.conv_id = v.c and mb.user_id = v.u and mb.delivered_seq < v.s
    returning mb.user_id, mb.conv_id, mb.delivered_seq)
  select json_agg(json_build_array(user_id, conv_id, delivered_seq))::text as moved from moved`);

/**
 * Statements that update several member rows take their row locks in (conversation, user) order, as the writer's
 * batch does (drizzle/0006_append_keyed_conversations.sql), so two of them can never wait for each other in a cycle
 * (Postgres would break it after deadlock_timeout by failing one). They are given their rows sorted, and a plan
 * that walks the given rows locks them in that order: a nested loop over them, or a hash join probing with them
 * (the user's member rows hashed), as their generic plans are on a store of 10,000 users in 10 chats each and on
 * the tests' (test/contract/writer-plans.test.ts checks the plans, lock-order.test.ts the locks). A plan driven
 * from the members table would not. A sorted `FOR UPDATE` joined by each update would hold whatever the plan, but
 * made the pulled-cursor flush cost 2.3–2.6 times the Postgres CPU per pull (bench: offline-pull, alternating
 * runs), so it is not used.
 */
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const rowOrder = <T extends { conv: string; user?: string }>(a: T, b: T): number => byText(a.conv, b.conv) || byText(a.user ?? "", b.user ?? "");

/** A JSON column as postgres.js (text) or PGlite (parsed) returns it. */
const json = <T>(v: string | T | null | undefined): T | [] => (typeof v === "string" ? (JSON.parse(v) as T) : (v ?? []));

export class MessageStore implements Messages {
  constructor(
    private readonly db: Db,
    /** the period of the messages table's partitions (store/partitions.ts), which moves conversations' marks */
    private readonly interval: PartitionInterval = "month",
    /** the connection the writer's batches travel on, in order (OpenDb.appendDb) */
    private readonly appendDb: Db = db,
  ) {}

  /** One batch in one statement (store/append.ts). */
  appendBatch(items: AppendItem[], stages?: AppendStages): Promise<AppendResult[]> {
    return appendBatch(this.appendDb, this.db, items, stages, this.interval);
  }

  /**
   * Messages above the user's delivered cursor written by others, in (conversation, seq) order:
   * what an offline client has not yet confirmed. `after` pages without moving the cursor.
   */
  async pending(
    userId: string,
    opts: { conv?: string; limit: number; after?: { conv: string; seq: number } },
  ): Promise<Message[]> {
    const [row] = opts.after
      ? await prepared<{ msgs: string | PulledRow[] | null }>(this.db, sql`select ${pageJson(sql`(${pendingPage(userId, opts)})`)} as msgs`)
      : await run<{ msgs: string | PulledRow[] | null }>(this.db, opts.conv === undefined ? READ.all : READ.conv, { user: userId, conv: opts.conv, page: opts.limit });
    return json<PulledRow[]>(row?.msgs).map(fromPulled);
  }

  /**
   * Pull and mark delivered in one statement: the page of `pending` (up to `limit` + 1 rows: the extra one,
   * not marked, tells whether more wait) and, in the same statement, every conversation's delivered cursor moved to
   * the highest seq of the first `limit` rows. Returns the page and the cursors' new values.
   *
   * The page comes back as one JSON array in one row, not a row per message: the driver's decoding of a
   * hundred rows column by column (and a JSON.parse per body) cost more server CPU than anything else in a
   * reconnect (bench: offline-pull).
   *
   * The cursor is advisory (a lost update only repeats messages the client drops by seq), so this statement's
   * transaction commits without waiting for its WAL flush (`synchronous_commit` off for it alone, set inside
   * the statement: no extra round trip). Messages are never written so: an ack waits for its flush.
   */
  async pull(userId: string, opts: { conv?: string; limit: number }): Promise<{ msgs: Message[]; moved: Map<string, number> }> {
    const q = opts.conv === undefined ? PULL.all : PULL.conv;
    const [row] = await run<{ msgs: string | PulledRow[] | null; moved: string | [string, number | string][] | null }>(this.db, q, {
      user: userId,
      conv: opts.conv,
      limit: opts.limit,
      page: opts.limit + 1,
    });
    const pairs = json<[string, number | string][]>(row?.moved);
    return { msgs: json<PulledRow[]>(row?.msgs).map(fromPulled), moved: new Map(pairs.map(([c, v]) => [c, Number(v)])) };
  }

  async history(convId: string, q: HistoryQuery): Promise<Message[]> {
    return (await this.historyQuery(convId, q)).map(toMessage);
  }

  /** The statement of a history page (its plan is shown in docs/storage.md and checked by the tests). */
  historyQuery(convId: string, q: HistoryQuery) {
    const conds: SQL[] = [eq(messages.convId, convId)];
    if (q.beforeSeq !== undefined) conds.push(lt(messages.seq, q.beforeSeq));
    if (q.afterSeq !== undefined) conds.push(gt(messages.seq, q.afterSeq));
    if (q.from) conds.push(gte(messages.createdAt, q.from));
    if (q.to) conds.push(lte(messages.createdAt, q.to));
    // The lowest seq the page can hold: above afterSeq, and for a newest-first page without a time range the
    // `limit` seqs below beforeSeq (seqs have no gaps); its partition bound prunes the older partitions.
    const after = (q.afterSeq ?? 0) + 1;
    const lowest =
      q.desc && !q.from && !q.to ? sql`greatest(${after}::bigint, coalesce(${q.beforeSeq ?? null}::bigint, c.last_seq + 1) - ${q.limit}::bigint)` : sql`${after}::bigint`;
    conds.push(inPartitionsOf(sql`${messages.createdAt}`, convId, lowest));
    return this.db
      .select()
      .from(messages)
      .where(and(...conds))
      .orderBy(q.desc ? desc(messages.seq) : asc(messages.seq))
      .limit(q.limit);
  }

  /** Moves one cursor forward (never back, never past the conversation's last seq); undefined for a non-member. */
  async advanceCursor(userId: string, convId: string, field: "delivered" | "read", seq: number): Promise<number | undefined> {
    return (await this.advanceCursors(userId, field, [{ conv: convId, seq }])).get(convId);
  }

  /**
   * Cursors of several conversations of one user in one statement (a page of messages confirms every
   * conversation it holds at once): each moves forward only, never past its conversation's last seq, and
   * reading implies delivery. Returns the new value per conversation the user is a member of.
   */
  async advanceCursors(userId: string, field: "delivered" | "read", to: { conv: string; seq: number }[]): Promise<Map<string, number>> {
    if (to.length === 0) return new Map();
    const v = JSON.stringify([...to].sort(rowOrder).map((t) => ({ c: t.conv, s: t.seq })));
    const capped = sql.raw("least(v.s, c.last_seq)");
    const set =
      field === "delivered"
        ? sql`delivered_seq = greatest(m.delivered_seq, ${capped})`
        : sql`read_seq = greatest(m.read_seq, ${capped}), delivered_seq = greatest(m.delivered_seq, ${capped})`;
    const rows = await prepared<{ conv_id: string; v: string | number }>(
      this.db,
      sql`
        update members as m set ${set}
          from jsonb_to_recordset(${v}::jsonb) as v(c text, s bigint), conversations as c
         where m.conv_id = v.c and m.user_id = ${userId} and c.id = v.c
        returning m.conv_id, ${sql.raw(field === "delivered" ? "m.delivered_seq" : "m.read_seq")} as v`,
    );
    return new Map(rows.map((r) => [r.conv_id, Number(r.v)]));
  }

  /**
   * Delivered cursors of pulled pages, of any number of users, in one statement: each moves forward to the
   * highest seq its page held (a page holds every message of others from the cursor up to there). Like the
   * pull's own, it commits without waiting for its WAL flush: the cursor is advisory. Returns the cursors that moved.
   */
  async advancePulled(marks: readonly { user: string; conv: string; seq: number }[]): Promise<{ user: string; conv: string; seq: number }[]> {
    if (marks.length === 0) return [];
    const rows = await run<{ moved: string | [string, string, number | string][] | null }>(this.db, ADVANCE_PULLED, {
      marks: JSON.stringify([...marks].sort(rowOrder).map((m) => [m.user, m.conv, m.seq])),
    });
    return json<[string, string, number | string][]>(rows[0]?.moved).map(([user, conv, v]) => ({ user, conv, seq: Number(v) }));
  }

  /**
   * Delivered cursors moved over pushed messages, one statement for several conversations of one user: a
   * cursor moves to the highest pushed seq, but never past a message of another sender above it that was
   * not pushed (the first such one stops it: an index range scan from the cursor). Returns the new value per
   * conversation whose cursor moved.
   */
  async advancePushed(userId: string, pushed: { conv: string; seqs: readonly number[] }[]): Promise<Map<string, number>> {
    if (pushed.length === 0) return new Map();
    const v = JSON.stringify([...pushed].sort(rowOrder).map((p) => ({ c: p.conv, s: p.seqs.reduce((a, b) => (a > b ? a : b), 0), a: p.seqs })));
    const rows = await prepared<{ conv_id: string; v: string | number }>(
      this.db,
      sql`
        update members as m set delivered_seq = greatest(m.delivered_seq, least(v.s, c.last_seq, coalesce((
            select min(x.seq) - 1 from messages x
             where x.conv_id = v.c and x.seq > m.delivered_seq and x.seq <= v.s and x.sender_id <> m.user_id and x.seq <> all(v.a)
               and ${inPartitions(sql`x.created_at`, sql`c`, sql`m.delivered_seq + 1`)}), v.s)))
          from jsonb_to_recordset(${v}::jsonb) as v(c text, s bigint, a bigint[]), conversations as c
         where m.conv_id = v.c and m.user_id = ${userId} and c.id = v.c
        returning m.conv_id, m.delivered_seq as v`,
    );
    return new Map(rows.map((r) => [r.conv_id, Number(r.v)]));
  }
}
