// Transactions that touch a conversation and its member rows take their locks in one order (the conversation
// row first, then member rows in (conversation, user) order), so two of them cannot deadlock: an ownership
// hand-over racing the group's message batches, a batch racing delivered-cursor updates of its senders' rows.
// Postgres only: the embedded PGlite runs one statement at a time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { directConvId, groupConvId } from "../../src/core/conv-ids.ts";
import { IdGen } from "../../src/core/ids.ts";
import { openDb, type OpenDb } from "../../src/store/db.ts";
import { MembershipStore } from "../../src/store/memberships.ts";
import { ConversationStore } from "../../src/store/conversations.ts";
import { MessageStore } from "../../src/store/messages.ts";
import { Store } from "../../src/store/store.ts";
import { UserStore } from "../../src/store/users.ts";
import { freshPgUrl } from "../helpers/services.ts";

describe("lock order on Postgres", () => {
  let db: OpenDb;
  let store: Store;
  let memberships: MembershipStore;
  let url: string;
  const ids = new IdGen("locks");
  const conv = groupConvId("locks");

  beforeAll(async () => {
    url = await freshPgUrl();
    db = await openDb({ databaseUrl: url });
    store = new Store(db.db, { users: new UserStore(db.db), conversations: new ConversationStore(db.db), messages: new MessageStore(db.db) });
    memberships = new MembershipStore(db.db);
    for (const id of ["ann", "ben", "cat", "dan", "eve", "fay"]) await store.upsertUser({ id });
    expect(await store.createConversation({ id: conv, kind: "group", subtype: "user", ownerId: "ann" }, { ann: "owner", ben: "member" })).toBe(true);
  });
  afterAll(() => db.close());

  /** Resolves once a statement of this database waits for a lock, or `act` has ended (it took no lock wait). */
  async function lockWaitOrEnd(watch: postgres.Sql, act: Promise<unknown>): Promise<void> {
    for (;;) {
      const [w] = await watch.unsafe<{ n: number }[]>("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()");
      if (w!.n > 0 || (await Promise.race([act.then(() => "ended"), Promise.resolve("pending")])) !== "pending") return;
      await Bun.sleep(5);
    }
  }

  test("ownership handed back and forth while both members post: every transaction commits (no deadlock)", async () => {
    let owner = "ann";
    for (let round = 0; round < 40; round++) {
      const heir = owner === "ann" ? "ben" : "ann";
      const post = (sender: string) => store.appendBatch([{ id: ids.next(), conv, sender, kind: "text", body: round, at: new Date() }]);
      const [moved] = await Promise.all([memberships.transferOwner(conv, owner, heir), post(heir), post(owner), post(heir)]);
      expect(moved).toBe(true);
      owner = heir;
    }
    expect((await store.getConversation(conv))?.lastSeq).toBe(120);
  });

  test("a batch creating a direct chat that another transaction is creating holds no lock while it waits (no deadlock)", async () => {
    // Both halves of a pair send their first message at once from two nodes: one node's batch locked the
    // conversations it had (here ann–cat) and finds ann–ben missing, while the other node is inserting ann–ben
    // and then needs ann–cat. Creating the chat inside the locked batch closes a cycle Postgres breaks after
    // deadlock_timeout by aborting one side.
    const known = directConvId("ann", "cat");
    const fresh = directConvId("ann", "ben");
    const dm = (conv: string, recipient: string) => ({ id: ids.next(), conv, sender: "ann", recipient, kind: "text", body: "hi", at: new Date(), create: { kind: "direct", members: ["ann", recipient] } });
    await store.appendBatch([dm(known, "cat")]);
    const other = postgres(url, { max: 1, onnotice: () => {} });
    const watch = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await other.unsafe("begin");
      await other.unsafe("insert into conversations (id, kind) values ($1, 'direct')", [fresh]);
      const batch = store.appendBatch([dm(known, "cat"), dm(fresh, "ben")]);
      const batchError = batch.then(() => undefined, (e: Error) => e);
      // Wait until the batch waits for the other transaction's insert.
      await lockWaitOrEnd(watch, batchError);
      const lockedKnown = await other.unsafe("select id from conversations where id = $1 for update", [known]).then(
        (rows) => rows.length,
        (e: Error) => e.message,
      );
      await other.unsafe("commit").catch(() => other.unsafe("rollback"));
      expect(lockedKnown).toBe(1);
      expect(await batchError).toBeUndefined();
      const [a, b] = await batch;
      expect(a?.msg?.seq).toBe(2);
      expect(b?.msg?.seq).toBe(1);
      const members = await watch.unsafe("select user_id from members where conv_id = $1 order by user_id", [fresh]);
      expect(members.map((r) => r.user_id)).toEqual(["ann", "ben"]);
    } finally {
      await other.end();
      await watch.end();
    }
  });

  /**
   * `act` locks member rows `first` and then `last`: with `last` held by another transaction, `act` waits for it
   * holding `first` already (a statement taking them the other way round would wait holding neither).
   */
  async function locksInOrder(act: () => Promise<unknown>, first: [conv: string, user: string], last: [conv: string, user: string]) {
    const other = postgres(url, { max: 1, onnotice: () => {} });
    const watch = postgres(url, { max: 1, onnotice: () => {} });
    const row = "select 1 from members where conv_id = $1 and user_id = $2 for update";
    try {
      await other.unsafe("begin");
      expect(await other.unsafe(row, last)).toHaveLength(1);
      const done = act().then(() => undefined, (e: Error) => e);
      await lockWaitOrEnd(watch, done);
      await watch.unsafe("begin");
      const probe = await watch.unsafe(`${row} nowait`, first).then(
        () => "free",
        (e: { code?: string }) => e.code,
      );
      await watch.unsafe("rollback");
      await other.unsafe("rollback");
      expect(probe).toBe("55P03"); // lock_not_available: `act` holds it
      expect(await done).toBeUndefined();
    } finally {
      await other.end();
      await watch.end();
    }
  }

  test("member rows are locked in (conversation, user) order: a batch's senders, delivered cursors, an ownership transfer", async () => {
    const c1 = directConvId("dan", "eve");
    const c2 = directConvId("dan", "fay");
    expect(c1 < c2).toBe(true);
    const dm = (conv: string, recipient: string) => ({ id: ids.next(), conv, sender: "dan", recipient, kind: "text", body: "hi", at: new Date(), create: { kind: "direct", members: ["dan", recipient] } });
    await store.appendBatch([dm(c1, "eve"), dm(c2, "fay")]);
    // The writer's batch updates its senders' rows (last_sent_seq), listed here the other way round.
    await locksInOrder(() => store.appendBatch([dm(c2, "fay"), dm(c1, "eve")]), [c1, "dan"], [c2, "dan"]);
    const messages = new MessageStore(db.db);
    // Pulled pages' delivered cursors, of several users at once (eve's and fay's rows come after dan's).
    await locksInOrder(
      () => messages.advancePulled([{ user: "fay", conv: c2, seq: 2 }, { user: "dan", conv: c2, seq: 2 }, { user: "eve", conv: c1, seq: 2 }, { user: "dan", conv: c1, seq: 2 }]),
      [c1, "dan"],
      [c2, "dan"],
    );
    await locksInOrder(() => messages.advanceCursors("eve", "read", [{ conv: c2, seq: 2 }, { conv: c1, seq: 2 }]).then(() => messages.advanceCursors("dan", "read", [{ conv: c2, seq: 2 }, { conv: c1, seq: 2 }])), [c1, "dan"], [c2, "dan"]);
    await locksInOrder(() => messages.advancePushed("fay", [{ conv: c2, seqs: [2] }]).then(() => messages.advancePushed("dan", [{ conv: c2, seqs: [2] }, { conv: c1, seqs: [2] }])), [c1, "dan"], [c2, "dan"]);
    // An ownership transfer from ann to ben (ann's row comes first).
    const g = groupConvId("locks-order");
    expect(await store.createConversation({ id: g, kind: "group", subtype: "user", ownerId: "ann" }, { ann: "owner", ben: "member" })).toBe(true);
    await locksInOrder(() => memberships.transferOwner(g, "ann", "ben"), [g, "ann"], [g, "ben"]);
    expect((await store.getConversation(g))?.ownerId).toBe("ben");
  });
});
