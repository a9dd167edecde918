// A database made before the messages table was partitioned: the server started on it converts it at start
// (drizzle/0003_partition_messages.sql attaches the old table as the partition `messages_legacy`), keeping every
// message, and everything is read and written as before.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import { IdGen } from "../../src/core/ids.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPgUrl } from "../helpers/services.ts";

const DAY = 86_400_000;
const N = 120;
const conv = "d:ann:ben";
let srv: TestServer;
let dbUrl: string;
let pg: postgres.Sql;
/** the old rows: seq, id, time, sender, client id */
const old: { seq: number; id: bigint; at: number; from: string; cmid: string }[] = [];

/** Runs `apply` on a copy of the migrations folder holding only those that existed before partitioning (0000–0002). */
async function withOldMigrations(apply: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "chat-old-schema-"));
  try {
    cpSync(new URL("../../drizzle", import.meta.url).pathname, dir, { recursive: true });
    const journal = JSON.parse(readFileSync(join(dir, "meta/_journal.json"), "utf8"));
    journal.entries = journal.entries.filter((e: { tag: string }) => e.tag < "0003");
    writeFileSync(join(dir, "meta/_journal.json"), JSON.stringify(journal));
    await apply(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Applies the migrations that existed before partitioning to a new database. */
async function oldSchema(url: string): Promise<void> {
  await withOldMigrations(async (dir) => {
    const client = postgres(url, { max: 1, onnotice: () => {} });
    await migrate(drizzle(client), { migrationsFolder: dir });
    await client.end();
  });
}

beforeAll(async () => {
  dbUrl = await freshPgUrl();
  await oldSchema(dbUrl);
  pg = postgres(dbUrl, { max: 2, onnotice: () => {} });
  // Old-shaped rows, as the server before partitioning wrote them: N messages over the last 90 days.
  const ids = new IdGen("legacy");
  const start = Date.now() - 90 * DAY;
  for (let seq = 1; seq <= N; seq++) {
    const at = start + Math.floor(((seq - 1) * 89 * DAY) / N);
    old.push({ seq, id: ids.next(at), at, from: seq % 3 === 0 ? "ben" : "ann", cmid: `old-${seq}` });
  }
  await pg`insert into users (id, nick) values ('ann', 'Ann'), ('ben', 'Ben')`;
  const last = old[N - 1]!;
  // A node whose clock ran an hour ahead wrote seq 61: its time is later than the conversation's last_msg_at.
  old[60]!.at = last.at + 3_600_000;
  await pg`insert into conversations (id, kind, last_seq, last_msg_at) values (${conv}, 'direct', ${N}, ${new Date(last.at)})`;
  await pg`insert into members (conv_id, user_id, delivered_seq, read_seq) values (${conv}, 'ann', ${N}, ${N}), (${conv}, 'ben', 0, 0)`;
  await pg`insert into messages ${pg(
    old.map((m) => ({ id: m.id.toString(), conv_id: conv, seq: m.seq, sender_id: m.from, kind: "text", body: pg.json({ n: m.seq }), client_msg_id: m.cmid, created_at: new Date(m.at) })),
  )}`;
  srv = await startTestServer({ databaseUrl: dbUrl });
});

afterAll(async () => {
  await srv?.stop();
  await pg?.end();
});

describe("converting an unpartitioned messages table at start", () => {
  test("the old table is the partition messages_legacy, with every row; the next partitions exist", async () => {
    const [{ kind }] = await pg`select c.relkind as kind from pg_class c where c.relname = 'messages'`;
    expect(kind).toBe("p");
    const parts = await pg`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'messages'::regclass order by 1`;
    expect(parts.map((p) => p.name)).toContain("messages_legacy");
    expect(parts.length).toBeGreaterThanOrEqual(3);
    const [{ n }] = await pg`select count(*)::int as n from messages_legacy`;
    expect(n).toBe(N);
  });

  test("history, the pull, the conversation list and a retry of an old client id read the old messages", async () => {
    const tok = { ann: await srv.user("ann"), ben: await srv.user("ben") };
    const h = await srv.api(`/api/conversations/${conv}/messages?user=ben&limit=500&after=0`);
    expect(h.status).toBe(200);
    expect(h.body.msgs.map((m: { seq: number; id: string; ts: number }) => [m.seq, m.id, m.ts])).toEqual(old.map((m) => [m.seq, m.id.toString(), m.at]));
    // ben never pulled: every message of ann is pending, in order.
    const ben = await protocols.native.login(srv, "ben", { token: tok.ben });
    const pulled = await ben.syncAll();
    expect(pulled.map((m: { seq: number }) => m.seq)).toEqual(old.filter((m) => m.from === "ann").map((m) => m.seq));
    // ann sends: the next seq; a retry of an old client id gets the old message back.
    const ann = await protocols.native.login(srv, "ann", { token: tok.ann });
    const fresh = await ann.ok({ t: "send", to: "ben", body: "after the upgrade", cmid: "new-1" });
    expect(fresh.msg).toMatchObject({ seq: N + 1, dup: false });
    const retry = await ann.ok({ t: "send", to: "ben", body: { n: 1 }, cmid: "old-1" });
    expect(retry.msg).toMatchObject({ seq: 1, id: old[0]!.id.toString(), dup: true });
    const list = await srv.api(`/api/users/ben/conversations`);
    expect(list.status).toBe(200);
    expect(list.body[0]).toMatchObject({ conv, lastSeq: N + 1, last: { seq: N + 1, body: "after the upgrade" } });
    const newest = await srv.api(`/api/conversations/${conv}/messages?user=ann&limit=3&desc=true`);
    expect(newest.body.msgs.map((m: { seq: number }) => m.seq)).toEqual([N + 1, N, N - 1]);
    await ann.close();
    await ben.close();
  });
});

describe("converting an embedded (PGlite) store made before partitioning", () => {
  test("the old rows are kept and read through the partitioned table", async () => {
    const { PGlite } = await import("@electric-sql/pglite");
    const { drizzle: lite } = await import("drizzle-orm/pglite");
    const { migrate: migrateLite } = await import("drizzle-orm/pglite/migrator");
    const { openDb } = await import("../../src/store/db.ts");
    const { MessageStore } = await import("../../src/store/messages.ts");
    const dataDir = mkdtempSync(join(tmpdir(), "chat-old-pglite-"));
    try {
      const client = new PGlite(`${dataDir}/pglite`);
      await withOldMigrations((dir) => migrateLite(lite(client), { migrationsFolder: dir }));
      await client.query(`insert into conversations (id, kind, last_seq, last_msg_at) values ('${conv}', 'direct', 3, now())`);
      await client.query(`insert into members (conv_id, user_id) values ('${conv}', 'ann'), ('${conv}', 'ben')`);
      for (const seq of [1, 2, 3]) {
        await client.query(
          `insert into messages (id, conv_id, seq, sender_id, body, created_at) values ($1, '${conv}', $2, 'ann', '{}'::jsonb, now() - make_interval(days => $3))`,
          [String(1000 + seq), seq, 40 - seq],
        );
      }
      await client.close();
      const db = await openDb({ dataDir });
      try {
        const store = new MessageStore(db.db);
        expect((await store.history(conv, { limit: 10 })).map((m) => [m.seq, m.id])).toEqual([
          [1, "1001"],
          [2, "1002"],
          [3, "1003"],
        ]);
        expect((await store.pull("ben", { limit: 10 })).msgs.map((m) => m.seq)).toEqual([1, 2, 3]);
      } finally {
        await db.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
