// Transactions that touch a conversation and its member rows take their locks in one order (the conversation
// row first), so two of them on the same group cannot deadlock: an ownership hand-over racing the group's
// message batches. Postgres only: the embedded PGlite runs one statement at a time.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { groupConvId } from "../../src/core/conv-ids.ts";
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
  const ids = new IdGen("locks");
  const conv = groupConvId("locks");

  beforeAll(async () => {
    db = await openDb({ databaseUrl: await freshPgUrl() });
    store = new Store(db.db, { users: new UserStore(db.db), conversations: new ConversationStore(db.db), messages: new MessageStore(db.db) });
    memberships = new MembershipStore(db.db);
    for (const id of ["ann", "ben"]) await store.upsertUser({ id });
    expect(await store.createConversation({ id: conv, kind: "group", subtype: "user", ownerId: "ann" }, { ann: "owner", ben: "member" })).toBe(true);
  });
  afterAll(() => db.close());

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
});
