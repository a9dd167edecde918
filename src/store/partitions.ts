// The partitions of the messages table (docs/storage.md): one per period of created_at (a month by default),
// created ahead by every node, at start and then every hour; with a retention, whole partitions whose period
// ended before it are dropped. Nodes doing it at once take turns on a transaction-level advisory lock, and
// each step checks what exists first, so any number of nodes may run it together.
import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type Db } from "./db.ts";

export type PartitionInterval = "month" | "week" | "day";
export const PARTITION_INTERVALS: readonly PartitionInterval[] = ["month", "week", "day"];

const DAY = 86_400_000;

/** Start (UTC) of the period holding `t`. Weeks start on Monday. */
export function periodStart(t: number, iv: PartitionInterval): number {
  const d = new Date(t);
  if (iv === "month") return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  if (iv === "day") return day;
  return day - ((d.getUTCDay() + 6) % 7) * DAY;
}

/** Start of the period after the one starting at `start`. */
export function nextPeriod(start: number, iv: PartitionInterval): number {
  if (iv === "day") return start + DAY;
  if (iv === "week") return start + 7 * DAY;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The period before the one starting at `start`. */
function prevPeriod(start: number, iv: PartitionInterval): number {
  return periodStart(start - 1, iv);
}

/** `messages_p20261201`: the partition beginning at `start` (a period's start, unless a partition before it ends later). */
export function partitionName(start: number): string {
  return `messages_p${new Date(start).toISOString().slice(0, 10).replaceAll("-", "")}`;
}

/**
 * The partition bound of a read of seqs from `fromSeq` up in the conversation row `c` (alias): the messages
 * from the mark on were all written at mark_at or later (docs/storage.md), so a read that starts at or above
 * the mark is pruned to the partitions from mark_at on, the newest ones; a read below it scans them all.
 */
export const floorAt = (c: SQL, fromSeq: SQL) =>
  sql`(case when ${fromSeq} >= ${c}.mark_seq then ${c}.mark_at else '-infinity'::timestamptz end)`;

/**
 * `col` (a message's created_at) within the partitions that can hold seqs from `fromSeq` up of the conversation
 * row `c`. Only a lower bound: a range on created_at (two bounds) would look so selective to the planner that it
 * would read a conversation's rows through the (conv_id, created_at) index and sort them, instead of walking
 * (conv_id, seq) from the cursor (a busy conversation would then cost all its rows of the period).
 */
export const inPartitions = (col: SQL, c: SQL, fromSeq: SQL) => sql`${col} >= ${floorAt(c, fromSeq)}`;

/** The same for one conversation by id, read in a subquery (a statement that does not join its row). */
export const inPartitionsOf = (col: SQL, conv: string, fromSeq: SQL) =>
  sql`${col} >= (select ${floorAt(sql`c`, fromSeq)} from conversations c where c.id = ${conv})`;

/** pg_advisory_xact_lock key held while partitions are created or dropped ("part" in ASCII). */
const PARTITION_LOCK = 0x70617274;

export interface Partition {
  name: string;
  /** bounds in epoch milliseconds; null = MINVALUE / MAXVALUE */
  from: number | null;
  to: number | null;
}

export interface PartitionOptions {
  interval: PartitionInterval;
  /** periods created ahead of the current one */
  ahead: number;
  /** messages older than this many days are dropped, a whole partition at a time; 0 = kept forever */
  retentionDays: number;
}

/** The partitions of `messages`, oldest first. */
export async function listPartitions(db: Pick<Db, "execute">): Promise<Partition[]> {
  const rows = rowsOf<{ name: string; lo: number | string | null; hi: number | string | null }>(
    await db.execute(sql`
      select p.name,
             (extract(epoch from substring(p.b from $re$FROM [(]'([^']+)'[)]$re$)::timestamptz) * 1000)::float8 as lo,
             (extract(epoch from substring(p.b from $re$TO [(]'([^']+)'[)]$re$)::timestamptz) * 1000)::float8 as hi
        from (select c.relname::text as name, pg_get_expr(c.relpartbound, c.oid) as b
                from pg_inherits i join pg_class c on c.oid = i.inhrelid
               where i.inhparent = 'messages'::regclass) p`),
  );
  const num = (v: number | string | null) => (v === null ? null : Number(v));
  return rows.map((r) => ({ name: r.name, from: num(r.lo), to: num(r.hi) })).sort((a, b) => (a.from ?? -Infinity) - (b.from ?? -Infinity));
}

export class MessagePartitions {
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly db: Db,
    readonly opts: PartitionOptions,
  ) {}

  /**
   * Creates the partitions of the previous, the current and the next `ahead` periods of `now` that are
   * missing (a range already covered in part, by the legacy partition for one, is left to it), and drops
   * the partitions that ended before the retention. Returns the names created and dropped.
   */
  async maintain(now = Date.now()): Promise<{ created: string[]; dropped: string[] }> {
    const { interval: iv, ahead, retentionDays } = this.opts;
    return this.db.transaction(async (tx) => {
      // DDL on the parent waits at most this long for the queries running on it, then gives up (next run retries).
      await tx.execute(sql`set local lock_timeout = '5s'`);
      await tx.execute(sql`select pg_advisory_xact_lock(${PARTITION_LOCK})`);
      // A messages table that is not partitioned (made by hand, as the bench's baseline) is left as it is.
      const [kind] = rowsOf<{ k: string }>(await tx.execute(sql`select relkind::text as k from pg_class where oid = 'messages'::regclass`));
      if (kind?.k !== "p") return { created: [], dropped: [] };
      const parts = await listPartitions(tx);
      const created: string[] = [];
      const dropped: string[] = [];
      let start = prevPeriod(periodStart(now, iv), iv);
      for (let i = 0; i < ahead + 2; i++, start = nextPeriod(start, iv)) {
        let lo = start;
        let hi = nextPeriod(start, iv);
        for (const p of parts) {
          const pf = p.from ?? -Infinity;
          const pt = p.to ?? Infinity;
          if (pf <= lo && pt > lo) lo = pt;
          else if (pf > lo && pf < hi) hi = pf;
        }
        if (lo >= hi) continue;
        // Named after where it begins: the start of its period, or where the partition before it ends (the legacy
        // partition, or partitions of another MESSAGE_PARTITION_INTERVAL), so no two names collide.
        const name = partitionName(lo);
        if (parts.some((p) => p.name === name)) continue;
        const from = new Date(lo).toISOString();
        const to = new Date(hi).toISOString();
        // Created apart and attached: ATTACH takes a lock that lets reads and writes of the table go on, where
        // CREATE TABLE ... PARTITION OF would stop them while it waits.
        await tx.execute(sql.raw(`create table "${name}" (like "messages" including defaults)`));
        await tx.execute(sql.raw(`alter table "messages" attach partition "${name}" for values from ('${from}') to ('${to}')`));
        parts.push({ name, from: lo, to: hi });
        created.push(name);
      }
      if (retentionDays > 0) {
        const cut = now - retentionDays * DAY;
        for (const p of parts) {
          if (p.to === null || p.to > cut) continue;
          await tx.execute(sql.raw(`drop table "${p.name}"`));
          dropped.push(p.name);
        }
      }
      return { created, dropped };
    });
  }

  /** Runs `maintain` every `everyMs` (failures are reported to `warn` and retried at the next run). */
  start(warn: (msg: string) => void, everyMs = 3_600_000): void {
    this.timer = setInterval(() => {
      this.maintain().then(
        (r) => r.dropped.length && warn(`message partitions dropped by retention: ${r.dropped.join(", ")}`),
        (e) => warn(`message partitions: ${e instanceof Error ? e.message : e}`),
      );
    }, everyMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
