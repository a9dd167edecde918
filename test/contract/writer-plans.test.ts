// The group-commit writer's statements keep finding rows through indexes as the tables grow. They are prepared
// on postgres.js, and Postgres keeps a generic plan per statement and connection once a statement ran a few
// times: planned while the messages table was small, the retry lookup became a hash join over a scan of every
// partition, whose cost then grew with each row written. Postgres only: PGlite plans every statement anew.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { groupConvId } from "../../src/core/conv-ids.ts";
import { IdGen } from "../../src/core/ids.ts";
import { appendBatch } from "../../src/store/append.ts";
import { openDb, type Db } from "../../src/store/db.ts";
import * as schema from "../../src/store/schema.ts";
import { ConversationStore } from "../../src/store/conversations.ts";
import { MessageStore } from "../../src/store/messages.ts";
import { Store } from "../../src/store/store.ts";
import { UserStore } from "../../src/store/users.ts";
import { freshPgUrl } from "../helpers/services.ts";

describe("writer plans on Postgres", () => {
  let url: string;
  /** one connection: the prepared statements and their plans live on it */
  let client: postgres.Sql;
  let db: Db;
  const ids = new IdGen("plans");
  const conv = groupConvId("plans");
  const bulk = groupConvId("plans-bulk");

  beforeAll(async () => {
    url = await freshPgUrl();
    const opened = await openDb({ databaseUrl: url });
    const store = new Store(opened.db, { users: new UserStore(opened.db), conversations: new ConversationStore(opened.db), messages: new MessageStore(opened.db) });
    for (const id of ["ann", "ben"]) await store.upsertUser({ id });
    for (const id of [conv, bulk]) expect(await store.createConversation({ id, kind: "group", subtype: "user", ownerId: "ann" }, { ann: "owner", ben: "member" })).toBe(true);
    await opened.close();
    client = postgres(url, { max: 1, onnotice: () => {} });
    db = drizzle(client, { schema }) as unknown as Db;
  });
  afterAll(() => client.end());

  let n = 0;
  const batch = () =>
    appendBatch(
      db,
      Array.from({ length: 20 }, () => ({ id: ids.next(), conv, sender: "ann", kind: "text", body: "hi", cmid: `c${++n}`, at: new Date() })),
    );
  /** Sequential scans of the messages partitions so far, this connection's counts included. */
  const seqScans = async () => {
    await client`select pg_stat_force_next_flush()`;
    await client`select pg_stat_clear_snapshot()`;
    const [row] = await client`select coalesce(sum(seq_scan), 0)::int as n from pg_stat_user_tables where relname like 'messages_p%'`;
    return row!.n as number;
  };

  test("batches written after the store grew scan no messages partition", async () => {
    // Enough runs on a near-empty table for Postgres to settle on a generic plan for each statement.
    for (let i = 0; i < 10; i++) await batch();
    await client.unsafe(
      `insert into messages (id, conv_id, seq, sender_id, kind, body, client_msg_id, created_at)
       select 1000000000 + g, $1, g, 'ben', 'text', '"bulk"', 'b' || g, now() from generate_series(1, 50000) g`,
      [bulk],
    );
    const before = await seqScans();
    for (let i = 0; i < 3; i++) {
      const results = await batch();
      expect(results.every((r) => "msg" in r && r.dup === false)).toBe(true);
    }
    // A retry is still found (through the client-id index).
    const [again] = await appendBatch(db, [{ id: ids.next(), conv, sender: "ann", kind: "text", body: "hi", cmid: "c1", at: new Date() }]);
    expect(again && "dup" in again && again.dup).toBe(true);
    expect((await seqScans()) - before).toBe(0);
  });
});
