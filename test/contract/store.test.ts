// One contract for the Store, run against Postgres (postgres.js) and embedded PGlite.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { directConvId } from "../../src/core/conv-ids.ts";
import { IdGen } from "../../src/core/ids.ts";
import { sql } from "drizzle-orm";
import { openDb, rowsOf, type OpenDb } from "../../src/store/db.ts";
import { blocks } from "../../src/store/schema.ts";
import type { AppendItem } from "../../src/core/records.ts";
import { ConversationStore } from "../../src/store/conversations.ts";
import { RecallStore } from "../../src/store/recall.ts";
import { MembershipStore } from "../../src/store/memberships.ts";
import { MessageStore } from "../../src/store/messages.ts";
import { Store } from "../../src/store/store.ts";
import { UserStore } from "../../src/store/users.ts";
import { freshPgUrl } from "../helpers/services.ts";

const drivers: [string, () => Promise<OpenDb>][] = [
  ["postgres", async () => openDb({ databaseUrl: await freshPgUrl() })],
  ["pglite", async () => openDb({ memory: true })],
];

for (const [name, open] of drivers) {
  describe(`Store on ${name}`, () => {
    let db: OpenDb;
    let store: Store;
    const ids = new IdGen("contract");
    const conv = directConvId("ann", "ben");
    const item = (sender: string, body: unknown, cmid?: string, to = conv): AppendItem => ({
      id: ids.next(),
      conv: to,
      sender,
      kind: "text",
      body,
      cmid,
      at: new Date(),
      create: { kind: "direct", members: to.split(":").slice(1) },
    });

    beforeAll(async () => {
      db = await open();
      store = new Store(db.db, { users: new UserStore(db.db), conversations: new ConversationStore(db.db), messages: new MessageStore(db.db) });
      await store.upsertUser({ id: "ann", nick: "Ann" });
      await store.upsertUser({ id: "ben" });
    });
    afterAll(() => db.close());

    test("member rows are stored with room on their pages for updates in place (fillfactor 80)", async () => {
      const [row] = rowsOf<{ opts: string[] | null }>(await db.db.execute(sql`select reloptions as opts from pg_class where relname = 'members'`));
      expect(row?.opts).toEqual(["fillfactor=80"]);
    });

    test("users upsert keeps unspecified fields", async () => {
      await store.upsertUser({ id: "ann", avatar: "a.png" });
      const u = await store.getUser("ann");
      expect(u?.nick).toBe("Ann");
      expect(u?.avatar).toBe("a.png");
      expect(await store.getUser("nobody")).toBeUndefined();
    });

    test("a batch gets gap-free seqs per conversation and creates direct chats", async () => {
      const other = directConvId("ann", "cat");
      const res = await store.appendBatch([item("ann", 1), item("ben", 2), item("ann", 3, undefined, other), item("ann", 4)]);
      expect(res.map((r) => [r.msg!.conv, r.msg!.seq])).toEqual([
        [conv, 1],
        [conv, 2],
        [other, 1],
        [conv, 3],
      ]);
      expect(res.every((r) => !r.dup)).toBe(true);
      expect((await store.getConversation(conv))?.lastSeq).toBe(3);
      expect((await store.memberIds(other)).sort()).toEqual(["ann", "cat"]);
    });

    test("a client message id is stored once, within a batch and across batches", async () => {
      const [a, b] = await store.appendBatch([item("ann", "x", "m1"), item("ann", "x", "m1")]);
      expect(a!.dup).toBe(false);
      expect(b!.dup).toBe(true);
      expect(b!.msg!.id).toBe(a!.msg!.id);
      const [c] = await store.appendBatch([item("ann", "x", "m1")]);
      expect(c!.dup).toBe(true);
      expect(c!.msg!.seq).toBe(a!.msg!.seq);
      // the same client id from another sender is another message
      const [d] = await store.appendBatch([item("ben", "x", "m1")]);
      expect(d!.dup).toBe(false);
      const all = await store.history(conv, { limit: 100 });
      expect(all.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    });

    test("pending lists others' messages above the delivered cursor; cursors only move forward", async () => {
      const p = await store.pending("ben", { limit: 100 });
      expect(p.every((m) => m.from !== "ben")).toBe(true);
      expect(p.map((m) => m.seq)).toEqual([1, 3, 4]);
      expect(await store.advanceCursor("ben", conv, "delivered", 3)).toBe(3);
      expect(await store.advanceCursor("ben", conv, "delivered", 1)).toBe(3);
      expect((await store.pending("ben", { limit: 100 })).map((m) => m.seq)).toEqual([4]);
      // never past the last committed seq
      expect(await store.advanceCursor("ben", conv, "read", 999)).toBe(5);
      expect((await store.getMember(conv, "ben"))?.deliveredSeq).toBe(5);
      expect(await store.pending("ben", { limit: 100 })).toEqual([]);
      expect(await store.advanceCursor("zed", conv, "read", 1)).toBeUndefined();
    });

    test("pending pages with `after` without moving the cursor", async () => {
      await store.appendBatch([item("ann", "p1"), item("ann", "p2"), item("ann", "p3")]);
      const first = await store.pending("ben", { limit: 2 });
      expect(first.map((m) => m.seq)).toEqual([6, 7]);
      const rest = await store.pending("ben", { limit: 2, after: { conv, seq: 7 } });
      expect(rest.map((m) => m.seq)).toEqual([8]);
      expect((await store.pending("ben", { limit: 10 })).length).toBe(3);
    });

    test("pull returns a page and moves the cursors past exactly that page, in one statement", async () => {
      // ben has 6, 7, 8 pending in `conv`; pull two: the third stays pending and says `more`.
      // A recalled message is pulled without its body, as pending reads it.
      expect(await new RecallStore(db.db).markRecalled(BigInt((await store.pending("ben", { limit: 3 }))[1]!.id))).toBe(true);
      const pend = await store.pending("ben", { limit: 3 });
      expect(pend[1]).toMatchObject({ body: null, recalled: true });
      const first = await store.pull("ben", { limit: 2 });
      expect(first.msgs.map((m) => m.seq)).toEqual([6, 7, 8]); // limit + 1: the last one is not marked
      // The same messages, field for field, as pending reads them, and as history reads them (rows, not JSON).
      expect(first.msgs).toEqual(pend);
      expect(pend).toEqual(await store.history(conv, { afterSeq: 5, limit: 3 }));
      expect(first.msgs.every((m) => Number.isInteger(m.ts) && typeof m.id === "string" && m.body !== undefined)).toBe(true);
      expect([...first.moved]).toEqual([[conv, 7]]);
      expect((await store.pending("ben", { limit: 10 })).map((m) => m.seq)).toEqual([8]);
      const last = await store.pull("ben", { limit: 2 });
      expect(last.msgs.map((m) => m.seq)).toEqual([8]);
      expect([...last.moved]).toEqual([[conv, 8]]);
      const none = await store.pull("ben", { limit: 2 });
      expect(none).toEqual({ msgs: [], moved: new Map() });
      // The sender's own messages are never pending for it.
      expect((await store.pull("ann", { limit: 100 })).msgs.every((m) => m.from !== "ann")).toBe(true);
    });

    test("pulled pages of several users move their delivered cursors in one statement, forward only", async () => {
      for (const id of ["dee", "eve"]) await store.upsertUser({ id });
      const [de, ef] = [directConvId("dee", "eve"), directConvId("eve", "fay")];
      await store.appendBatch([item("dee", "a", undefined, de), item("dee", "b", undefined, de), item("eve", "c", undefined, ef), item("eve", "d", undefined, ef)]);
      const moved = await store.advancePulled([
        { user: "eve", conv: de, seq: 2 },
        { user: "fay", conv: ef, seq: 1 },
        // not a member: nothing moves
        { user: "zed", conv: de, seq: 2 },
      ]);
      expect(moved.sort((a, b) => a.user.localeCompare(b.user))).toEqual([
        { user: "eve", conv: de, seq: 2 },
        { user: "fay", conv: ef, seq: 1 },
      ]);
      expect(await store.pending("eve", { limit: 10 })).toEqual([]);
      expect((await store.pending("fay", { limit: 10 })).map((m) => m.seq)).toEqual([2]);
      // Never back; a cursor already there is not touched (and not reported).
      expect(await store.advancePulled([{ user: "fay", conv: ef, seq: 1 }, { user: "eve", conv: de, seq: 1 }])).toEqual([]);
      expect((await store.getMember(de, "eve"))!.deliveredSeq).toBe(2);
      expect(await store.advancePulled([])).toEqual([]);
    });

    test("history pages by seq in both directions and by time", async () => {
      const newest = await store.history(conv, { limit: 3, desc: true });
      expect(newest.map((m) => m.seq)).toEqual([8, 7, 6]);
      const older = await store.history(conv, { limit: 3, desc: true, beforeSeq: 6 });
      expect(older.map((m) => m.seq)).toEqual([5, 4, 3]);
      const after = await store.history(conv, { limit: 2, afterSeq: 6 });
      expect(after.map((m) => m.seq)).toEqual([7, 8]);
      const future = await store.history(conv, { limit: 10, from: new Date(Date.now() + 60_000) });
      expect(future).toEqual([]);
      const body = (await store.history(conv, { limit: 1, afterSeq: 5 }))[0]!.body;
      expect(body).toBe("p1");
    });

    test("a recipient's block refuses the message in the batch, and only that one", async () => {
      await store.db.insert(blocks).values({ userId: "cat", blockedId: "dan" });
      const toCat = directConvId("cat", "dan");
      const res = await store.appendBatch([
        { ...item("dan", "no", "b1", toCat), recipient: "cat" },
        { ...item("cat", "yes", undefined, toCat), recipient: "dan" },
        { ...item("dan", "no again", "b1", toCat), recipient: "cat" },
      ]);
      expect(res[0]).toEqual({ refused: "blocked" });
      expect(res[2]).toEqual({ refused: "blocked" });
      expect(res[1]!.msg).toMatchObject({ from: "cat", seq: 1 });
      expect((await store.history(toCat, { limit: 10 })).map((m) => m.body)).toEqual(["yes"]);
    });

    test("a client id names a retry only within its conversation (and sender)", async () => {
      const elsewhere = directConvId("ann", "eve");
      const [a, b] = await store.appendBatch([item("ann", "x", "m1", elsewhere), item("ann", "x", "m1", elsewhere)]);
      expect(a).toMatchObject({ dup: false, msg: { conv: elsewhere, seq: 1 } });
      expect(b).toMatchObject({ dup: true, msg: { id: a!.msg!.id } });
      const [c] = await store.appendBatch([item("ann", "x", "m1", elsewhere)]);
      expect(c).toMatchObject({ dup: true, msg: { id: a!.msg!.id, conv: elsewhere } });
      // "m1" of ann in `conv` (an earlier test) is still its own message
      expect((await store.history(conv, { limit: 100 })).filter((m) => m.cmid === "m1").map((m) => m.from)).toEqual(["ann", "ben"]);
    });

    test("in a container, the owner (the serving agent) who blocked the sender refuses its messages", async () => {
      await store.db.insert(blocks).values({ userId: "eve", blockedId: "fox" });
      expect(await store.createConversation({ id: "c:t:fox", kind: "container", ownerId: "eve" }, { fox: "member", eve: "agent" })).toBe(true);
      expect(await store.createConversation({ id: "c:t:fox2", kind: "container", ownerId: "gus" }, { fox: "member", gus: "agent" })).toBe(true);
      // a group whose owner blocked the sender is not a container: the rule does not apply
      expect(await store.createConversation({ id: "g:t-fox", kind: "group", ownerId: "eve" }, { fox: "member", eve: "owner" })).toBe(true);
      const at = (sender: string, to: string, cmid?: string) => ({ ...item(sender, "hi", cmid, to), create: undefined });
      const res = await store.appendBatch([at("fox", "c:t:fox", "f1"), at("eve", "c:t:fox"), at("fox", "c:t:fox2", "f1"), at("fox", "g:t-fox"), at("fox", "c:t:fox", "f1")]);
      expect(res[0]).toEqual({ refused: "blocked" });
      expect(res[4]).toEqual({ refused: "blocked" });
      expect(res[1]!.msg).toMatchObject({ conv: "c:t:fox", from: "eve", seq: 1 });
      expect(res[2]).toMatchObject({ dup: false, msg: { conv: "c:t:fox2", seq: 1 } });
      expect(res[3]!.msg).toMatchObject({ conv: "g:t-fox", seq: 1 });
      expect((await store.getConversation("c:t:fox"))?.lastSeq).toBe(1);
    });

    test("groups with their members of several users in one statement; a user in none has no entry", async () => {
      for (const id of ["gia", "hal", "ivy", "jon"]) await store.upsertUser({ id });
      expect(await store.createConversation({ id: "g:wm-b", kind: "group", ownerId: "gia" }, { gia: "owner", hal: "member", ivy: "member" })).toBe(true);
      expect(await store.createConversation({ id: "g:wm-a", kind: "group", ownerId: "hal" }, { hal: "owner", gia: "member" })).toBe(true);
      expect(await store.createConversation({ id: "d:gia:jon", kind: "direct" }, { gia: "member", jon: "member" })).toBe(true);
      const m = new MembershipStore(db.db);
      const of = await m.conversationsWithMembersOf(["gia", "ivy", "jon", "nobody"], "group");
      expect([...of.keys()].sort()).toEqual(["gia", "ivy"]);
      expect(of.get("gia")).toEqual([
        { conv: "g:wm-a", name: "", members: ["gia", "hal"] },
        { conv: "g:wm-b", name: "", members: ["gia", "hal", "ivy"] },
      ]);
      expect(of.get("ivy")).toEqual([{ conv: "g:wm-b", name: "", members: ["gia", "hal", "ivy"] }]);
      // One user: the same answer through the single lookup.
      expect(await m.conversationsWithMembers("gia", "group")).toEqual(of.get("gia")!);
      expect(await m.conversationsWithMembers("jon", "group")).toEqual([]);
      expect((await m.conversationsWithMembersOf([], "group")).size).toBe(0);
    });

    test("creating a conversation that exists adds nobody", async () => {
      expect(await store.createConversation({ id: "g:t-fox", kind: "group", ownerId: "zed" }, { zed: "owner" })).toBe(false);
      expect(await store.getMember("g:t-fox", "zed")).toBeUndefined();
      expect((await store.getConversation("g:t-fox"))?.ownerId).toBe("eve");
    });

    test("a batch that fails consumes no seq", async () => {
      const bad = { ...item("ann", "x"), conv: "g:missing", create: undefined };
      await expect(store.appendBatch([item("ann", "ok"), bad])).rejects.toThrow();
      const [r] = await store.appendBatch([item("ann", "after")]);
      expect(r!.msg!.seq).toBe(9);
    });

    test("a pull's cursor update commits without waiting for the WAL flush; appended messages always wait", async () => {
      // A trigger records the synchronous_commit in force when each row is written (a message row is written
      // to a partition of messages: the table is named without its partition).
      await db.db.execute(sql`create table commit_modes (tbl text, mode text)`);
      await db.db.execute(sql`create function log_commit_mode() returns trigger language plpgsql as $$
        begin insert into commit_modes values (regexp_replace(tg_table_name, '^messages_.*', 'messages'), current_setting('synchronous_commit')); return new; end $$`);
      await db.db.execute(sql`create trigger log_members after update on members for each row execute function log_commit_mode()`);
      await db.db.execute(sql`create trigger log_messages after insert on messages for each row execute function log_commit_mode()`);
      try {
        await store.appendBatch([item("ann", "sync1"), item("ann", "sync2")]);
        const appended = rowsOf<{ tbl: string; mode: string }>(await db.db.execute(sql`select tbl, mode from commit_modes`));
        expect(appended.map((r) => r.tbl).sort()).toEqual(["members", "messages", "messages"]);
        expect(appended.every((r) => r.mode === "on")).toBe(true);
        await db.db.execute(sql`delete from commit_modes`);
        const pulled = await store.pull("ben", { limit: 100 });
        expect(pulled.msgs.map((m) => m.body).slice(-2)).toEqual(["sync1", "sync2"]);
        const modes = rowsOf<{ tbl: string; mode: string }>(await db.db.execute(sql`select tbl, mode from commit_modes`));
        expect(modes.length).toBeGreaterThan(0);
        expect(modes.every((r) => r.tbl === "members" && r.mode === "off")).toBe(true);
        // The setting was the pull's transaction's only: the next statement commits synchronously again.
        const after = rowsOf<{ s: string }>(await db.db.execute(sql`select current_setting('synchronous_commit') as s`));
        expect(after[0]!.s).toBe("on");
      } finally {
        await db.db.execute(sql`drop trigger log_members on members`);
        await db.db.execute(sql`drop trigger log_messages on messages`);
        await db.db.execute(sql`drop function log_commit_mode`);
        await db.db.execute(sql`drop table commit_modes`);
      }
    });
  });
}
