// Groups, conversation lists, receipts, recall and the messaging server API, end to end: real server,
// real Postgres and Redis, real WebSocket clients.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { Client } from "../helpers/client.ts";
import { rowsOf } from "../../src/store/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { sdkLogin, type SdkUser } from "../helpers/sdk.ts";
import type { Message } from "../../client/src/index.ts";

// The same tests on both stores: Postgres and the embedded PGlite.
for (const store of ["pg", "pglite"] as const) describe(`on ${store}`, () => {
  let srv: TestServer;
  const tok: Record<string, string> = {};
  const open: { close(): void }[] = [];

  beforeAll(async () => {
    srv = await startTestServer({
      store,
      bus: "redis",
      env: { SEND_RATE: "1000", SEND_BURST: "1000", RECEIPT_DEBOUNCE_MS: "20", RECALL_WINDOW_SEC: "60" },
    });
    for (const u of ["ann", "ben", "cat", "dan", "eve", "fay"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await srv.stop();
  });

  async function connect(user: string): Promise<Client> {
    const c = await Client.native(srv.wsUrl, tok[user]!, user);
    open.push(c);
    return c;
  }
  /** The user through the client SDK: what an app sees (messages once each, in order; notices as events). */
  const users = (names: string[]) => Promise.all(names.map((u) => sdkLogin(srv, u, { token: tok[u]!, keep: apps })));
  // An SDK client confirms delivery by itself: none outlives its test (the raw tests drive the cursors by hand).
  const apps: SdkUser[] = [];
  afterEach(async () => {
    // Their confirmations are stored (and the receipts they make sent) before the next test's connections open.
    const done = apps.splice(0);
    try {
      await Promise.all(done.map((a) => a.client.flush()));
    } finally {
      for (const a of done) a.close();
    }
  });
  const isMessage = (conv: string, body?: unknown) => (m: Message) => m.conv === conv && (body === undefined || m.body === body);

  const ok = (c: Client, frame: Record<string, unknown>) => c.ok(frame);
  const isMsg = (conv: string, body?: unknown) => (f: any) => f.t === "msg" && f.msg.conv === conv && (body === undefined || f.msg.body === body);
  const stored = async (conv: string) =>
    Number(rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = ${conv}`))[0]!.n);

  describe("groups of each kind", () => {
    test("user group: private, members added by the owner; a send reaches every member and only them", async () => {
      const [ann, ben, cat, dan] = await users(["ann", "ben", "cat", "dan"]);
      const { group } = await ann!.request({ t: "group_create", kind: "user", name: "Friends", members: ["ben"] });
      expect(group).toMatchObject({ kind: "user", name: "Friends", owner: "ann", members: 2, conv: `g:${group.id}` });
      expect(await ben!.next("member", (e) => e.change === "join")).toMatchObject({ conv: group.conv, user: { id: "ben" }, by: "ann" });

      expect(await dan!.refused({ t: "group_join", group: group.id })).toMatchObject({ code: 4030 });
      expect(await dan!.fails(dan!.client.send({ conv: group.conv }, "let me in"))).toMatchObject({ code: 4033 });
      expect(await ben!.refused({ t: "group_add", group: group.id, users: ["cat"] })).toMatchObject({ code: 4030 });
      expect(await ann!.request({ t: "group_add", group: group.id, users: ["cat", "nobody"] })).toMatchObject({ added: ["cat"] });

      const ack = await ben!.client.send({ conv: group.conv }, "hi all", { cmid: "g-1" });
      expect(ack).toMatchObject({ conv: group.conv, seq: 1, dup: false });
      for (const c of [ann!, cat!]) expect(await c.next("message", isMessage(group.conv))).toMatchObject({ from: "ben", body: "hi all", seq: 1 });
      // A new member starts at the present: earlier messages are history, not unread (its app's resume gets none).
      await ann!.request({ t: "group_add", group: group.id, users: ["dan"] });
      const [dan2] = await users(["dan"]);
      expect(dan2!.synced.filter(isMessage(group.conv))).toEqual([]);
      expect((await dan2!.request({ t: "history", conv: group.conv })).msgs.map((m: any) => m.body)).toEqual(["hi all"]);
      expect(dan!.pending("message").filter(isMessage(group.conv))).toEqual([]);
    });

    test("interest group: anyone joins by id; members are told", async () => {
      const [ann, eve] = await users(["ann", "eve"]);
      const { group } = await ann!.request({ t: "group_create", group: "cats", kind: "interest", name: "Cats" });
      await eve!.request({ t: "group_join", group: "cats" });
      expect(await ann!.next("member", (e) => e.conv === "g:cats")).toMatchObject({ change: "join", user: { id: "eve", nick: "EVE" } });
      expect((await eve!.request({ t: "group_info", group: "cats" })).group).toMatchObject({ id: "cats", kind: "interest", members: 2 });
      expect(await ann!.refused({ t: "group_create", group: "cats", kind: "interest" })).toMatchObject({ code: 4090 });
      expect(group.id).toBe("cats");
    });

    test("neighbourhood group: needs an area and is found by it", async () => {
      const [fay] = await users(["fay"]);
      expect(await fay!.refused({ t: "group_create", kind: "neighbourhood", name: "Elm St" })).toMatchObject({ code: 4002 });
      const { group } = await fay!.request({ t: "group_create", kind: "neighbourhood", name: "Elm St", attributes: { area: "elm" } });
      await fay!.request({ t: "group_create", kind: "neighbourhood", name: "Oak St", attributes: { area: "oak" } });
      const found = await fay!.request({ t: "group_discover", kind: "neighbourhood", area: "elm" });
      expect(found.groups.map((g: any) => g.id)).toEqual([group.id]);
    });

    test("service group: followers join and receive; only the owner and admins post", async () => {
      const [ann, ben, cat] = await users(["ann", "ben", "cat"]);
      await ann!.request({ t: "group_create", group: "news", kind: "service", name: "News" });
      await ben!.request({ t: "group_join", group: "news" });
      await cat!.request({ t: "group_join", group: "news" });
      expect(await ben!.fails(ben!.client.send({ conv: "g:news" }, "spam"))).toMatchObject({ code: 4030 });
      await ann!.request({ t: "group_role", group: "news", user: "ben", role: "admin" });
      await ben!.client.send({ conv: "g:news" }, "edition 1");
      expect(await cat!.next("message", isMessage("g:news"))).toMatchObject({ from: "ben", body: "edition 1" });
      expect(await stored("g:news")).toBe(1);
    });
  });

  describe("roles and mutes", () => {
    test("admins mute members for a time; a muted send is refused with 4032 and not stored; the owner hands over", async () => {
      const [ann, ben, cat] = await users(["ann", "ben", "cat"]);
      const { group } = await ann!.request({ t: "group_create", kind: "user", members: ["ben", "cat"] });
      await ann!.request({ t: "group_role", group: group.id, user: "ben", role: "admin" });
      expect(await cat!.refused({ t: "group_mute", group: group.id, user: "ben", seconds: 60 })).toMatchObject({ code: 4030 });
      const muted = await ben!.request({ t: "group_mute", group: group.id, user: "cat", seconds: 60 });
      expect(muted.mutedUntil).toBeGreaterThan(Date.now());
      expect(await cat!.next("member", (e) => e.change === "mute")).toMatchObject({ user: { id: "cat" }, by: "ben" });
      const refused = await cat!.fails(cat!.client.send({ conv: group.conv }, "can I talk"));
      expect(refused).toMatchObject({ code: 4032, error: "muted" });
      expect(refused.retryAfterMs).toBeGreaterThan(50_000);
      expect(await stored(group.conv)).toBe(0);
      // An admin cannot mute or remove another admin; the owner can.
      expect(await cat!.refused({ t: "group_remove", group: group.id, user: "ben" })).toMatchObject({ code: 4030 });
      await ben!.request({ t: "group_mute", group: group.id, user: "cat", seconds: 0 });
      await cat!.client.send({ conv: group.conv }, "thanks");
      // Handing ownership over makes the old owner an admin.
      await ann!.request({ t: "group_role", group: group.id, user: "cat", role: "owner" });
      const roles = Object.fromEntries((await ben!.request({ t: "group_members", group: group.id })).members.map((m: any) => [m.user, m.role]));
      expect(roles).toEqual({ ann: "admin", ben: "admin", cat: "owner" });
      expect(await cat!.request({ t: "group_remove", group: group.id, user: "ann" })).toMatchObject({ removed: true });
      expect(await ann!.next("member", (e) => e.change === "leave")).toMatchObject({ user: { id: "ann" }, by: "cat" });
    });

    test("an owner who leaves hands ownership to the longest-standing member", async () => {
      const [dan, eve] = await users(["dan", "eve"]);
      const { group } = await dan!.request({ t: "group_create", kind: "interest" });
      await eve!.request({ t: "group_join", group: group.id });
      expect(await dan!.request({ t: "group_leave", group: group.id })).toMatchObject({ left: true });
      expect((await eve!.request({ t: "group_info", group: group.id })).group).toMatchObject({ owner: "eve", members: 1 });
    });
  });

  describe("unread, receipts and the conversation list", () => {
    test("unread counts follow sends and reads across two devices of one user", async () => {
      const [ann, eve1, eve2] = await users(["ann", "eve", "eve"]);
      const { group } = await ann!.request({ t: "group_create", kind: "user", members: ["eve"] });
      for (let i = 1; i <= 3; i++) await ann!.client.send({ to: "eve" }, `d${i}`);
      for (let i = 1; i <= 2; i++) await ann!.client.send({ conv: group.conv }, `g${i}`);
      const dm = "d:ann:eve";
      const list = async (c: SdkUser) => Object.fromEntries((await c.request({ t: "convs" })).convs.map((r: any) => [r.conv, r]));
      let rows = await list(eve2!);
      expect(rows[dm]).toMatchObject({ kind: "direct", name: "ANN", unread: 3, awaiting: true, last: { body: "d3", seq: 3 } });
      expect(rows[group.conv]).toMatchObject({ kind: "group", subtype: "user", unread: 2, awaiting: true });

      // Device 1 reads the 1:1 up to 2: device 2 is told, and counts follow on both. (Both devices' SDKs confirm
      // delivery by themselves: those receipts may come too.)
      await eve1!.request({ t: "read", conv: dm, seq: 2 });
      expect(await eve2!.next("receipt", (e) => e.conv === dm && e.field === "read")).toMatchObject({ user: "eve", field: "read", seq: 2 });
      rows = await list(eve2!);
      expect(rows[dm].unread).toBe(1);
      // Device 2 replies in the 1:1: no longer awaiting; ann's list shows her own unread as 1 (eve's reply).
      await eve2!.client.send({ to: "ann" }, "hey");
      await eve2!.request({ t: "read", conv: group.conv, seq: 2 });
      rows = await list(eve1!);
      expect(rows[dm]).toMatchObject({ unread: 1, awaiting: false, last: { body: "hey", from: "eve" } });
      expect(rows[group.conv]).toMatchObject({ unread: 0, awaiting: true });
      const annRows = await list(ann!);
      expect(annRows[dm]).toMatchObject({ unread: 1, awaiting: true });
      // A read never moves back; a late read of 1 leaves 2.
      expect(await eve1!.request({ t: "read", conv: dm, seq: 1 })).toMatchObject({ seq: 2 });
      // Filters: only groups; only those awaiting a reply; contacted since a time in the future is none.
      expect((await eve1!.request({ t: "convs", kind: "group" })).convs.map((r: any) => r.conv)).toEqual([group.conv]);
      expect((await eve1!.request({ t: "convs", awaiting: true })).convs.map((r: any) => r.conv)).toEqual([group.conv]);
      expect((await eve1!.request({ t: "convs", since: Date.now() + 60_000 })).convs).toEqual([]);
    });

    // Receipts are driven here by hand with the cursor commands (`delivered`, `read`) on raw connections: the SDK
    // confirms delivery by itself, and the counts below are exact.
    test("direct receipts reach the sender at once; group receipts come as debounced counts", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      const a = await ok(ann!, { t: "send", to: "ben", body: "read me" });
      await ok(ben!, { t: "delivered", conv: a.msg.conv, seq: a.msg.seq });
      expect(await ann!.next((f) => f.t === "receipt" && f.conv === a.msg.conv && f.field === "delivered")).toMatchObject({ conv: a.msg.conv, user: "ben", seq: a.msg.seq });
      await ok(ben!, { t: "read", conv: a.msg.conv, seq: a.msg.seq });
      expect(await ann!.next((f) => f.t === "receipt" && f.conv === a.msg.conv && f.field === "read")).toMatchObject({ user: "ben", seq: a.msg.seq });
      // A user cannot set another's cursor or touch a conversation it is not in.
      expect(await cat!.request({ t: "read", conv: a.msg.conv, seq: 1 })).toMatchObject({ t: "error", code: 4033 });

      const { group } = await ok(ann!, { t: "group_create", kind: "user", members: ["ben", "cat"] });
      const m1 = await ok(ann!, { t: "send", conv: group.conv, body: "one" });
      const m2 = await ok(ann!, { t: "send", conv: group.conv, body: "two" });
      await ok(ben!, { t: "read", conv: group.conv, seq: m2.msg.seq });
      await ok(cat!, { t: "delivered", conv: group.conv, seq: m1.msg.seq });
      // Counts for both messages arrive; wait until they reflect both confirmations.
      const want = [
        { seq: 1, delivered: 2, read: 1 },
        { seq: 2, delivered: 1, read: 1 },
      ];
      let r = await ann!.next((f) => f.t === "receipts" && f.conv === group.conv);
      while (JSON.stringify(r.counts) !== JSON.stringify(want)) r = await ann!.next((f) => f.t === "receipts" && f.conv === group.conv);
      expect(r.counts).toEqual(want);
      expect(ben!.pending().filter((f) => f.t === "receipts")).toEqual([]);
      expect((await ok(ann!, { t: "receipts", conv: group.conv, from: 1, to: 2 })).counts).toEqual(want);
      expect((await ok(ann!, { t: "readers", conv: group.conv, seq: 2 })).users).toEqual(["ben"]);
      expect(await ben!.request({ t: "readers", conv: group.conv, seq: 2 })).toMatchObject({ t: "error", code: 4040 });
    });

    test("a retried send with the same client id is stored once and answered with the first ack", async () => {
      const [ann, ben] = await users(["ann", "ben"]);
      const { group } = await ann!.request({ t: "group_create", kind: "user", members: ["ben"] });
      const first = await ann!.client.send({ conv: group.conv }, "once", { cmid: "retry-me" });
      const again = await ann!.client.send({ conv: group.conv }, "once", { cmid: "retry-me" });
      expect(again).toMatchObject({ id: first.id, seq: first.seq, dup: true });
      expect(await stored(group.conv)).toBe(1);
      await ben!.next("message", isMessage(group.conv, "once"));
      // A later message comes next: the retry made no second push (the SDK would have handed it over, seq 2).
      await ann!.client.send({ conv: group.conv }, "after");
      expect(await ben!.next("message", isMessage(group.conv))).toMatchObject({ seq: 2, body: "after" });
      expect(ben!.pending("message").filter(isMessage(group.conv))).toEqual([]);
    });

    // The sync frame's own options (per conversation, peek or mark) on a raw connection: the SDK always peeks all.
    test("history by seq and time range; offline pull per conversation or all, peek or mark", async () => {
      const [ann, fay] = await Promise.all(["ann", "fay"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", kind: "user", members: ["fay"] });
      const acks: any[] = [];
      for (let i = 1; i <= 5; i++) acks.push((await ok(ann!, { t: "send", conv: group.conv, body: `h${i}` })).msg);
      await ok(ann!, { t: "send", to: "fay", body: "dm" });
      const bodies = (r: any) => r.msgs.map((m: any) => m.body);
      expect(bodies(await ok(fay!, { t: "history", conv: group.conv, before: 4, limit: 2 }))).toEqual(["h3", "h2"]);
      expect(bodies(await ok(fay!, { t: "history", conv: group.conv, after: 3 }))).toEqual(["h4", "h5"]);
      const range = await ok(fay!, { t: "history", conv: group.conv, from: acks[1].ts, to: acks[3].ts, desc: false });
      expect(bodies(range)).toEqual(["h2", "h3", "h4"].filter((_, i) => acks[i + 1].ts >= acks[1].ts));
      expect(await fay!.request({ t: "history", conv: "d:ann:ben" })).toMatchObject({ t: "error", code: 4033 });
      // Peek does not move the cursor; pull-and-mark does, per conversation.
      expect(bodies(await ok(fay!, { t: "sync", conv: group.conv, limit: 2 }))).toEqual(["h1", "h2"]);
      expect(bodies(await ok(fay!, { t: "sync", conv: group.conv, limit: 2, mark: true }))).toEqual(["h1", "h2"]);
      expect(bodies(await ok(fay!, { t: "sync", conv: group.conv }))).toEqual(["h3", "h4", "h5"]);
      // Everything at once, across conversations.
      const all = await ok(fay!, { t: "sync", mark: true });
      expect(all.msgs.map((m: any) => `${m.conv}:${m.body}`).sort()).toEqual(["d:ann:fay:dm", `${group.conv}:h3`, `${group.conv}:h4`, `${group.conv}:h5`].sort());
      expect((await ok(fay!, { t: "sync" })).msgs).toEqual([]);
    });
  });

  describe("recall", () => {
    test("a recall is visible to every member and hides the body from history and lists", async () => {
      const [ann, ben, cat] = await users(["ann", "ben", "cat"]);
      const { group } = await ann!.request({ t: "group_create", kind: "user", members: ["ben", "cat"] });
      const sent = await ben!.client.send({ conv: group.conv }, "oops", { cmid: "oops-1" });
      expect(await ann!.refused({ t: "recall", msg: sent.id })).toMatchObject({ code: 4040 });
      expect(await ben!.request({ t: "recall", cmid: "oops-1" })).toMatchObject({ t: "recalled", msg: sent.id, seq: 1 });
      for (const c of [ann!, cat!]) expect(await c.next("recall")).toMatchObject({ conv: group.conv, msg: sent.id, from: "ben" });
      expect((await cat!.request({ t: "history", conv: group.conv })).msgs[0]).toMatchObject({ seq: 1, body: null, recalled: true });
      const row = (await cat!.request({ t: "convs" })).convs.find((r: any) => r.conv === group.conv);
      expect(row).toMatchObject({ unread: 0, last: { recalled: true, body: null } });
    });
  });

  describe("server API", () => {
    test("groups, members, mutes, publishing and lists over HTTP", async () => {
      const [ben, cat] = await users(["ben", "cat"]);
      expect((await srv.api("/api/groups", { body: { kind: "user", owner: "ann" }, key: "wrong" })).status).toBe(401);
      const g = await srv.api("/api/groups", { body: { id: "team", kind: "user", owner: "ann", name: "Team", members: ["ben"] } });
      expect(g).toMatchObject({ status: 200, body: { id: "team", conv: "g:team", kind: "user", members: 2 } });
      expect((await srv.api("/api/groups", { body: { id: "team", kind: "user", owner: "ann" } })).status).toBe(409);
      expect((await srv.api("/api/groups", { body: { kind: "nope", owner: "ann" } })).status).toBe(400);
      expect(await srv.api("/api/groups/team/members", { body: { users: ["cat"] } })).toMatchObject({ status: 200, body: { added: ["cat"] } });
      expect(await cat!.next("member", (e) => e.conv === "g:team")).toMatchObject({ change: "join", by: null });

      const pub = await srv.api("/api/messages", { body: { from: "ann", conv: "g:team", body: { text: "welcome" }, cmid: "w1" } });
      expect(pub).toMatchObject({ status: 200, body: { conv: "g:team", seq: 1, dup: false } });
      expect((await srv.api("/api/messages", { body: { from: "ann", conv: "g:team", body: { text: "welcome" }, cmid: "w1" } })).body).toMatchObject({ id: pub.body.id, dup: true });
      for (const c of [ben!, cat!]) expect((await c.next("message", isMessage("g:team"))).body).toEqual({ text: "welcome" });
      const dm = await srv.api("/api/messages", { body: { from: "ann", to: "cat", body: "psst" } });
      expect(dm.body).toMatchObject({ conv: "d:ann:cat" });
      expect((await cat!.next("message", isMessage("d:ann:cat"))).body).toBe("psst");
      expect((await srv.api("/api/messages", { body: { from: "ghost", to: "cat", body: "x" } })).status).toBe(404);

      expect((await srv.api("/api/groups/team/members/cat", { method: "PUT", body: { muteSec: 30 } })).body.mutedUntil).toBeGreaterThan(Date.now());
      expect(await cat!.fails(cat!.client.send({ conv: "g:team" }, "hello?"))).toMatchObject({ code: 4032 });
      const members = (await srv.api("/api/groups/team/members")).body;
      expect(members.find((m: any) => m.user === "cat").mutedUntil).toBeGreaterThan(Date.now());

      const list = await srv.api("/api/users/cat/conversations?kind=group");
      expect(list.body.every((r: any) => r.kind === "group")).toBe(true);
      expect(list.body[0]).toMatchObject({ conv: "g:team", unread: 1, name: "Team", last: { body: { text: "welcome" } } });
      const hist = await srv.api("/api/conversations/g:team/messages?user=ben");
      expect(hist.body.msgs.map((m: any) => m.seq)).toEqual([1]);
      expect((await srv.api("/api/conversations/g:team/messages?user=dan")).status).toBe(403);

      expect((await srv.api("/api/groups/team", { method: "DELETE" })).body).toEqual({ ok: true });
      expect(await ben!.next("member", (e) => e.change === "dissolve")).toMatchObject({ conv: "g:team" });
      expect(await ben!.fails(ben!.client.send({ conv: "g:team" }, "anyone?"))).toMatchObject({ code: 4030 });
      expect((await srv.api("/api/groups/team")).body).toMatchObject({ closed: true });
      const doc = await (await fetch(`${srv.url}/openapi/json`)).json();
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/groups", "/api/messages", "/api/users/{id}/conversations"]));
    });
  });
});
