// The group-commit writer's statements keep finding rows through indexes as the tables grow. Postgres keeps a
// generic plan per statement and connection (a function's statements included) once it ran a few times: planned
// while the messages table was small, the retry lookup became a hash join over a scan of every partition, whose
// cost then grew with each row written. And the login's group lookup gets a generic plan at all
// (it was planned at every execution). The cursor statements' plans walk the rows they are given, so they lock
// member rows in the order given. Postgres only: PGlite plans every statement anew.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { groupConvId } from "../../src/core/conv-ids.ts";
import { IdGen } from "../../src/core/ids.ts";
import { appendBatch } from "../../src/store/append.ts";
import { openDb, type Db } from "../../src/store/db.ts";
import * as schema from "../../src/store/schema.ts";
import { ConversationStore } from "../../src/store/conversations.ts";
import { MembershipStore } from "../../src/store/memberships.ts";
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
    const [again] = await appendBatch(db, db, [{ id: ids.next(), conv, sender: "ann", kind: "text", body: "hi", cmid: "c1", at: new Date() }]);
    expect(again && "dup" in again && again.dup).toBe(true);
    expect((await seqScans()) - before).toBe(0);
  });

  test("the login's group lookup settles on a generic plan (no planning per login)", async () => {
    // Asked at every login and logout. With the conversation kind bound as a parameter, the generic plan could
    // not know how rare a kind is and Postgres planned each execution afresh, 20 times the query's own cost.
    // A store like a real one: group conversations are rare, each user has a few direct ones.
    await client.unsafe(`insert into conversations (id, kind) select 'd:' || g, 'direct' from generate_series(1, 20000) g`);
    await client.unsafe(
      `insert into members (conv_id, user_id) select 'd:' || g, 'x' || (g % 2000) from generate_series(1, 20000) g
       union all select 'd:' || g, 'x' || ((g + 1) % 2000) from generate_series(1, 20000) g`,
    );
    await client`analyze conversations`;
    await client`analyze members`;
    const memberships = new MembershipStore(db);
    for (let i = 0; i < 10; i++) expect((await memberships.conversationsWithMembers(i % 2 ? "ann" : `x${i}`, "group")).length).toBe(i % 2 ? 2 : 0);
    const rows = await client`select generic_plans::int as g, custom_plans::int as c from pg_prepared_statements where statement like '%json_agg(o.user_id%' and statement not like '%pg_prepared%'`;
    expect(rows.length).toBe(1);
    expect(rows[0]!.g).toBeGreaterThan(0);
    expect(rows[0]!.c).toBeLessThanOrEqual(5);
  });

  test("the cursor statements' generic plans walk the rows they are given (so they lock member rows in that order)", async () => {
    // store/messages.ts gives them their rows sorted by (conversation, user), the order every statement updating
    // several member rows takes its locks in. The update meets the rows in that order when its plan is driven by
    // them: a nested loop over them, or a hash join probing with them. The store is the one the test above grew.
    const messages = new MessageStore(db);
    for (let i = 0; i < 10; i++) {
      await messages.advancePulled([{ user: "x1", conv: "d:1", seq: 1 }, { user: "x2", conv: "d:1", seq: 1 }]);
      await messages.advanceCursors("x1", "delivered", [{ conv: "d:1", seq: 1 }, { conv: "d:2000", seq: 1 }]);
      await messages.advancePushed("x1", [{ conv: "d:1", seqs: [1] }, { conv: "d:2000", seqs: [1] }]);
    }
    const statements: [string, string[]][] = [
      ["update members as mb set delivered_seq = v.s", ['[["x1","d:1",1]]']],
      ["set delivered_seq = greatest(m.delivered_seq, least(v.s, c.last_seq))", ['[{"c":"d:1","s":1}]', "x1"]],
      ["x.seq <> all(v.a)", ['[{"c":"d:1","s":1,"a":[1]}]', "x1"]],
    ];
    type Plan = { "Node Type": string; "Relation Name"?: string; "Function Name"?: string; "CTE Name"?: string; Plans?: Plan[] };
    const find = (p: Plan): Plan | undefined => (p["Node Type"] === "ModifyTable" ? p : p.Plans?.map(find).find((x) => x));
    await client`set plan_cache_mode = force_generic_plan`;
    try {
      for (const [text, args] of statements) {
        const rows = await client`select name from pg_prepared_statements where statement like ${`%${text}%`} and statement not like '%pg_prepared%'`;
        expect(rows.length).toBe(1);
        const literals = args.map((a) => `'${a.replaceAll("'", "''")}'`).join(", ");
        const [explained] = await client.unsafe(`explain (format json) execute "${rows[0]!.name}"(${literals})`);
        const update = find((explained!["QUERY PLAN"] as { Plan: Plan }[])[0]!.Plan);
        // The leaf an update's plan starts from: the outer side of each join, down to a scan.
        let driver = update!.Plans![0]!;
        while (driver.Plans?.length) driver = driver.Plans[0]!;
        expect([text, driver["Node Type"]]).toEqual([text, expect.stringMatching(/^(Function Scan|CTE Scan)$/)]);
      }
    } finally {
      await client`set plan_cache_mode = auto`;
    }
  });
});
