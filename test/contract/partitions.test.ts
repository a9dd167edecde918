// The partitioned messages table (docs/storage.md), on Postgres (postgres.js) and embedded PGlite: messages of
// three months in three partitions read as one table (pull, history, inbox, receipts, recall, ids, retries),
// retention drops the oldest whole partition, and a read above a conversation's mark scans only the newest one.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql, type SQL } from "drizzle-orm";
import { IdGen } from "../../src/core/ids.ts";
import { storeFailure } from "../../src/core/store-errors.ts";
import type { AppendItem } from "../../src/core/records.ts";
import { openDb, rowsOf, type OpenDb } from "../../src/store/db.ts";
import { InboxStore } from "../../src/store/inbox.ts";
import { MessageIndexStore } from "../../src/store/message-index.ts";
import { MessageStore, pendingPage } from "../../src/store/messages.ts";
import { listPartitions, MessagePartitions, partitionName, periodStart } from "../../src/store/partitions.ts";
import { RecallStore } from "../../src/store/recall.ts";
import { ReceiptStore } from "../../src/store/receipts.ts";
import { freshPgUrl } from "../helpers/services.ts";

const DAY = 86_400_000;
const drivers: [string, () => Promise<OpenDb>][] = [
  ["postgres", async () => openDb({ databaseUrl: await freshPgUrl() })],
  ["pglite", async () => openDb({ memory: true })],
];

/** EXPLAIN ANALYZE of a query, one line per plan node line. */
async function explain(db: OpenDb, q: SQL): Promise<string[]> {
  const rows = rowsOf<Record<string, string>>(await db.db.execute(sql`explain (analyze, costs off, timing off, summary off) ${q}`));
  return rows.map((r) => r["QUERY PLAN"]!);
}

/** The partitions an EXPLAIN ANALYZE read: scans of messages_* that were executed. */
const scanned = (plan: string[]) =>
  [...new Set(plan.filter((l) => / on messages_\w+/.test(l) && !l.includes("never executed")).map((l) => / on (messages_\w+)/.exec(l)![1]!))].sort();
/** The partitions read that are older than `hot` (names sort by period). */
const olderThan = (hot: string, plan: string[]) => scanned(plan).filter((p) => p < hot);

for (const [name, open] of drivers) {
  describe(`partitioned messages on ${name}`, () => {
    let db: OpenDb;
    let store: MessageStore;
    const ids = new IdGen("partitions");
    const conv = "d:ann:ben";
    const now = Date.now();
    // Three months: two before the current one, and the current one.
    const m0 = periodStart(now, "month");
    const m1 = periodStart(m0 - 1, "month");
    const m2 = periodStart(m1 - 1, "month");
    const times = [m2 + 3 * DAY, m1 + 3 * DAY, now - 1000];
    const item = (at: number, sender: string, body: unknown, cmid?: string): AppendItem => ({
      id: ids.next(at),
      conv,
      sender,
      kind: "text",
      body,
      cmid,
      at: new Date(at),
      create: { kind: "direct", members: ["ann", "ben"] },
    });

    beforeAll(async () => {
      db = await open();
      store = new MessageStore(db.db);
      // The server made the partitions of its own months at start; those of the two months before come from a
      // run of the same maintenance with its clock set back (as a server running then would have made them).
      await new MessagePartitions(db.db, { interval: "month", ahead: 2, retentionDays: 0 }).maintain(times[0]!);
      // Per month: ann writes two messages (the first with a client id), ben one.
      for (const [k, at] of times.entries()) {
        await store.appendBatch([item(at, "ann", `a${k}`, `c${k}`), item(at + 1, "ann", `b${k}`), item(at + 2, "ben", `r${k}`)]);
      }
    });
    afterAll(() => db.close());

    test("each month's messages are in their own partition; the conversation's mark is its first message of this month", async () => {
      const rows = rowsOf<{ p: string; n: number | string }>(
        await db.db.execute(sql`select tableoid::regclass::text as p, count(*) as n from messages group by 1 order by 1`),
      );
      expect(rows.map((r) => [r.p, Number(r.n)])).toEqual([m2, m1, m0].map((m) => [partitionName(m), 3]));
      const [c] = rowsOf<{ mark_seq: number | string; mark: number | string }>(
        await db.db.execute(sql`select mark_seq, (extract(epoch from mark_at) * 1000)::float8 as mark from conversations where id = ${conv}`),
      );
      expect([Number(c!.mark_seq), Number(c!.mark)]).toEqual([7, m0]);
    });

    test("pull, history, inbox, receipts, recall, ids and retries read across the partitions", async () => {
      // ben's pending: ann's six messages of the three months, in seq order, then the cursor moves past them.
      const pulled = await store.pull("ben", { limit: 100 });
      expect(pulled.msgs.map((m) => [m.seq, m.body])).toEqual([
        [1, "a0"],
        [2, "b0"],
        [4, "a1"],
        [5, "b1"],
        [7, "a2"],
        [8, "b2"],
      ]);
      expect(pulled.msgs[0]!.ts).toBe(times[0]);
      expect([...pulled.moved]).toEqual([[conv, 8]]);
      expect((await store.history(conv, { limit: 100 })).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect((await store.history(conv, { limit: 4, desc: true })).map((m) => m.seq)).toEqual([9, 8, 7, 6]);
      expect((await store.history(conv, { limit: 2, desc: true, beforeSeq: 4 })).map((m) => m.seq)).toEqual([3, 2]);
      expect((await store.history(conv, { limit: 2, afterSeq: 2 })).map((m) => m.seq)).toEqual([3, 4]);
      const lastMonth = await store.history(conv, { limit: 10, from: new Date(m1), to: new Date(m0 - 1) });
      expect(lastMonth.map((m) => m.body)).toEqual(["a1", "b1", "r1"]);
      // ann's inbox: the last message (this month) and what is unread (ann read nothing: ben's three).
      const inbox = new InboxStore(db.db);
      const [row] = await inbox.inboxOf("ann", { limit: 10 });
      expect(row).toMatchObject({ conv, lastSeq: 9, unread: 3, last: { seq: 9, body: "r2" } });
      expect((await inbox.lastMessagesOf([conv], 4)).get(conv)!.map((m) => m.seq)).toEqual([9, 8, 7, 6]);
      await store.advanceCursor("ben", conv, "read", 4);
      expect((await new ReceiptStore(db.db).receiptCounts(conv, 1, 9, "ann")).map((r) => [r.seq, r.read])).toEqual([
        [1, 1],
        [2, 1],
        [4, 1],
        [5, 0],
        [7, 0],
        [8, 0],
      ]);
      // A message of two months ago: found by id and by client id, recalled, found by id again.
      const recall = new RecallStore(db.db);
      const old = (await store.history(conv, { limit: 1 }))[0]!;
      expect(await recall.ownMessage("ann", { id: BigInt(old.id) })).toMatchObject({ seq: 1, body: "a0" });
      expect(await recall.ownMessage("ann", { cmid: "c0" })).toMatchObject({ seq: 1 });
      expect(await recall.markRecalled(BigInt(old.id))).toBe(true);
      expect(await recall.markRecalled(BigInt(old.id))).toBe(false);
      expect(await new MessageIndexStore(db.db).byIds([BigInt(old.id)])).toMatchObject([{ seq: 1, body: null, recalled: true }]);
      // A retry of the message of two months ago (same client id) is answered with it, not stored again.
      const [retry] = await store.appendBatch([item(now, "ann", "a0", "c0")]);
      expect(retry).toMatchObject({ dup: true, msg: { id: old.id, seq: 1 } });
      expect((await store.history(conv, { limit: 1, desc: true }))[0]!.seq).toBe(9);
    });

    test("a read above the conversation's mark reads no partition older than this month's", async () => {
      const hot = partitionName(m0);
      // (The empty partitions made ahead are probed too: one descent of an empty index each.)
      const onlyHot = (plan: string[]) => {
        expect(olderThan(hot, plan)).toEqual([]);
        expect(scanned(plan)).toContain(hot);
      };
      // ben's cursor is at 8 (above the mark, 7): the offline pull reads this month's partition only.
      onlyHot(await explain(db, pendingPage("ben", { limit: 100 })));
      // ann's cursor is 0: below the mark, the two older months are read too.
      const older = [partitionName(m2), partitionName(m1)];
      expect(olderThan(hot, await explain(db, pendingPage("ann", { limit: 100 })))).toEqual(expect.arrayContaining(older));
      // The newest page of the history and a page after the mark, with the store's own statements; a page of
      // the first seqs reads the older partitions.
      onlyHot(await explain(db, store.historyQuery(conv, { limit: 2, desc: true }).getSQL()));
      onlyHot(await explain(db, store.historyQuery(conv, { limit: 50, afterSeq: 7 }).getSQL()));
      expect(olderThan(hot, await explain(db, store.historyQuery(conv, { limit: 2, afterSeq: 0 }).getSQL()))).toEqual(expect.arrayContaining(older));
      // The conversation list: the last message and the unread count of ben (read cursor at 4, below the mark)
      // and of ann after reading up to the mark.
      const inbox = new InboxStore(db.db);
      await store.advanceCursor("ann", conv, "read", 7);
      onlyHot(await explain(db, inbox.inboxQuery("ann", { limit: 10 })));
      expect(olderThan(hot, await explain(db, inbox.inboxQuery("ben", { limit: 10 }))).length).toBeGreaterThanOrEqual(1);
    });

    test("a message's time never goes back within its conversation", async () => {
      const [late] = await store.appendBatch([item(now - 60_000, "ann", "from a slow clock")]);
      expect(late!.msg!.seq).toBe(10);
      expect(late!.msg!.ts).toBe(times[2]! + 2);
      expect((await store.history(conv, { limit: 1, desc: true }))[0]!.ts).toBe(times[2]! + 2);
    });

    test("a message whose time no partition holds is refused as unavailable (retryable); nothing is stored", async () => {
      const far = now + 3 * 366 * DAY;
      const err = await store.appendBatch([item(far, "ann", "from a clock years ahead")]).catch((e) => e);
      expect(storeFailure(err)).toMatchObject({ name: "unavailable" });
      expect((await store.history(conv, { limit: 1, desc: true }))[0]!.seq).toBe(10);
    });

    test("retention drops the oldest month's partition whole; the other months stay readable", async () => {
      // A retention whose cut falls in the previous month: only partitions that ended before it go.
      const days = Math.floor((now - m1) / DAY);
      const r = await new MessagePartitions(db.db, { interval: "month", ahead: 2, retentionDays: days }).maintain(now);
      expect(r.dropped).toContain(partitionName(m2));
      expect(r.dropped).not.toContain(partitionName(m1));
      const names = (await listPartitions(db.db)).map((p) => p.name);
      expect(names).not.toContain(partitionName(m2));
      expect(names).toContain(partitionName(m1));
      expect(names).toContain(partitionName(m0));
      expect((await store.history(conv, { limit: 100 })).map((m) => m.seq)).toEqual([4, 5, 6, 7, 8, 9, 10]);
      expect(await new RecallStore(db.db).ownMessage("ann", { cmid: "c0" })).toBeUndefined();
      // Pulls go on from the cursors; a history page below the kept seqs finds nothing and fails nothing.
      expect((await store.pull("ann", { limit: 100 })).msgs.map((m) => m.seq)).toEqual([9]);
      expect(await store.history(conv, { limit: 2, desc: true, beforeSeq: 3 })).toEqual([]);
      expect((await store.pull("ben", { limit: 100 })).msgs.map((m) => m.seq)).toEqual([10]);
    });
  });
}

describe("partitions made by several nodes at once (Postgres)", () => {
  test("nodes opening one new database together, then creating the same periods together, make each partition once", async () => {
    const url = await freshPgUrl();
    // Three nodes start together: each migrates (one at a time) and creates the partitions around now.
    const nodes = await Promise.all([0, 1, 2].map(() => openDb({ databaseUrl: url })));
    try {
      const around = (await listPartitions(nodes[0]!.db)).map((p) => p.name);
      expect(around).toContain(partitionName(periodStart(Date.now(), "month")));
      // Half a year on, all three create the same new periods at once.
      const later = Date.now() + 183 * DAY;
      const runs = await Promise.all(nodes.map((n) => new MessagePartitions(n.db, { interval: "month", ahead: 2, retentionDays: 0 }).maintain(later)));
      const made = runs.flatMap((r) => r.created).sort();
      expect(made.length).toBe(4);
      expect(new Set(made).size).toBe(4);
      const names = (await listPartitions(nodes[1]!.db)).map((p) => p.name);
      expect(names.length).toBe(around.length + 4);
      // No overlap: each partition begins at or after the end of the one before.
      const parts = await listPartitions(nodes[2]!.db);
      for (let i = 1; i < parts.length; i++) expect(parts[i]!.from!).toBeGreaterThanOrEqual(parts[i - 1]!.to!);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});

describe("uniqueness without unique indexes (Postgres, two nodes)", () => {
  test("the same client id appended at once by two nodes is stored once; seqs stay gap-free and unique", async () => {
    const url = await freshPgUrl();
    const nodes = await Promise.all([0, 1].map(() => openDb({ databaseUrl: url })));
    try {
      const stores = nodes.map((n) => new MessageStore(n.db));
      const ids = [new IdGen("node-a"), new IdGen("node-b")];
      const conv = "d:ann:ben";
      const item = (k: number, cmid: string, body: string): AppendItem => ({
        id: ids[k]!.next(),
        conv,
        sender: "ann",
        kind: "text",
        body,
        cmid,
        at: new Date(),
        create: { kind: "direct", members: ["ann", "ben"] },
      });
      // 20 rounds: each node appends a batch holding the round's client id and a fresh one, at the same time.
      for (let r = 0; r < 20; r++) {
        const [a, b] = await Promise.all(stores.map((st, k) => st.appendBatch([item(k, `same-${r}`, `from ${k}`), item(k, `own-${k}-${r}`, "x")])));
        const same = [a![0]!, b![0]!];
        expect(same.filter((x) => !x.dup).length).toBe(1);
        expect(same[0]!.msg!.id).toBe(same[1]!.msg!.id);
      }
      const all = await stores[0]!.history(conv, { limit: 500 });
      expect(all.length).toBe(60);
      expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
      expect(new Set(all.map((m) => m.cmid)).size).toBe(60);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});

describe("changing MESSAGE_PARTITION_INTERVAL (PGlite)", () => {
  test("weekly partitions, then monthly ones: the month's rest begins where the last week ends, with nothing left uncovered", async () => {
    const db = await openDb({ memory: true });
    try {
      // A month whose first day is a Monday, half a year on or later: a weekly partition then begins on it.
      let first = periodStart(Date.now() + 183 * DAY, "month");
      while (new Date(first).getUTCDay() !== 1) first = periodStart(first + 32 * DAY, "month");
      await new MessagePartitions(db.db, { interval: "week", ahead: 1, retentionDays: 0 }).maintain(first + 2 * DAY);
      const weeks = await listPartitions(db.db);
      const lastWeekEnd = Math.max(...weeks.map((p) => p.to ?? 0));
      expect(weeks.some((p) => p.from === first)).toBe(true);
      const r = await new MessagePartitions(db.db, { interval: "month", ahead: 1, retentionDays: 0 }).maintain(first + 3 * DAY);
      expect(r.created).toContain(partitionName(lastWeekEnd));
      const parts = await listPartitions(db.db);
      const next = periodStart(first + 32 * DAY, "month");
      // From `first` to the end of the month after, every instant is in exactly one partition.
      for (let t = first; t < periodStart(next + 32 * DAY, "month"); t += DAY / 2) {
        expect(`${new Date(t).toISOString()}: ${parts.filter((p) => (p.from ?? -Infinity) <= t && t < (p.to ?? Infinity)).length}`).toBe(`${new Date(t).toISOString()}: 1`);
      }
    } finally {
      await db.close();
    }
  });
});
