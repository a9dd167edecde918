// Groups, conversation lists, receipts, recall and the messaging server API, end to end: real server,
// real Postgres and Redis, real WebSocket clients.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { Client } from "../helpers/client.ts";
import { rowsOf } from "../../src/store/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// The same tests on both stores: Postgres and the embedded PGlite.
for (const store of ["pg", "pglite"] as const) describe(`on ${store}`, () => {
  let srv: TestServer;
  const tok: Record<string, string> = {};
  const open: Client[] = [];

  beforeAll(async () => {
    srv = await startTestServer({
      store,
      bus: "redis",
      env: { SEND_RATE: "1000", SEND_BURST: "1000", RECEIPT_DEBOUNCE_MS: "20", RECALL_WINDOW_SEC: "60" },
    });
    for (const u of ["ann", "ben", "cat", "dan", "eve", "fay"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
  });
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
  });

  async function connect(user: string): Promise<Client> {
    const c = await Client.native(srv.wsUrl, tok[user]!, user);
    open.push(c);
    return c;
  }

  const ok = (c: Client, frame: Record<string, unknown>) => c.ok(frame);
  const isMsg = (conv: string, body?: unknown) => (f: any) => f.t === "msg" && f.msg.conv === conv && (body === undefined || f.msg.body === body);
  const stored = async (conv: string) =>
    Number(rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = ${conv}`))[0]!.n);

  describe("groups of each kind", () => {
    test("user group: private, members added by the owner; a send reaches every member and only them", async () => {
      const [ann, ben, cat, dan] = await Promise.all(["ann", "ben", "cat", "dan"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", kind: "user", name: "Friends", members: ["ben"] });
      expect(group).toMatchObject({ kind: "user", name: "Friends", owner: "ann", members: 2, conv: `g:${group.id}` });
      expect(await ben!.next((f) => f.t === "member" && f.change === "join")).toMatchObject({ conv: group.conv, user: { id: "ben" }, by: "ann" });

      expect(await dan!.request({ t: "group_join", group: group.id })).toMatchObject({ t: "error", code: 4030 });
      expect(await dan!.request({ t: "send", conv: group.conv, body: "let me in" })).toMatchObject({ t: "error", code: 4033 });
      expect(await ben!.request({ t: "group_add", group: group.id, users: ["cat"] })).toMatchObject({ t: "error", code: 4030 });
      expect(await ok(ann!, { t: "group_add", group: group.id, users: ["cat", "nobody"] })).toMatchObject({ added: ["cat"] });

      const ack = await ok(ben!, { t: "send", conv: group.conv, body: "hi all", cmid: "g-1" });
      expect(ack.msg).toMatchObject({ conv: group.conv, seq: 1, dup: false });
      for (const c of [ann!, cat!]) expect((await c.next(isMsg(group.conv))).msg).toMatchObject({ from: "ben", body: "hi all", seq: 1 });
      // A new member starts at the present: earlier messages are history, not unread.
      await ok(ann!, { t: "group_add", group: group.id, users: ["dan"] });
      expect(await ok(dan!, { t: "sync", conv: group.conv })).toMatchObject({ msgs: [] });
      expect((await ok(dan!, { t: "history", conv: group.conv })).msgs.map((m: any) => m.body)).toEqual(["hi all"]);
      expect(dan!.pending().filter(isMsg(group.conv))).toEqual([]);
    });

    test("interest group: anyone joins by id; members are told", async () => {
      const [ann, eve] = await Promise.all(["ann", "eve"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", group: "cats", kind: "interest", name: "Cats" });
      await ok(eve!, { t: "group_join", group: "cats" });
      expect(await ann!.next((f) => f.t === "member" && f.conv === "g:cats")).toMatchObject({ change: "join", user: { id: "eve", nick: "EVE" } });
      expect((await ok(eve!, { t: "group_info", group: "cats" })).group).toMatchObject({ id: "cats", kind: "interest", members: 2 });
      expect(await ann!.request({ t: "group_create", group: "cats", kind: "interest" })).toMatchObject({ t: "error", code: 4090 });
      expect(group.id).toBe("cats");
    });

    test("neighbourhood group: needs an area and is found by it", async () => {
      const fay = await connect("fay");
      expect(await fay.request({ t: "group_create", kind: "neighbourhood", name: "Elm St" })).toMatchObject({ t: "error", code: 4002 });
      const { group } = await ok(fay, { t: "group_create", kind: "neighbourhood", name: "Elm St", attributes: { area: "elm" } });
      await ok(fay, { t: "group_create", kind: "neighbourhood", name: "Oak St", attributes: { area: "oak" } });
      const found = await ok(fay, { t: "group_discover", kind: "neighbourhood", area: "elm" });
      expect(found.groups.map((g: any) => g.id)).toEqual([group.id]);
    });

    test("service group: followers join and receive; only the owner and admins post", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      await ok(ann!, { t: "group_create", group: "news", kind: "service", name: "News" });
      await ok(ben!, { t: "group_join", group: "news" });
      await ok(cat!, { t: "group_join", group: "news" });
      expect(await ben!.request({ t: "send", conv: "g:news", body: "spam" })).toMatchObject({ t: "error", code: 4030 });
      await ok(ann!, { t: "group_role", group: "news", user: "ben", role: "admin" });
      await ok(ben!, { t: "send", conv: "g:news", body: "edition 1" });
      expect((await cat!.next(isMsg("g:news"))).msg).toMatchObject({ from: "ben", body: "edition 1" });
      expect(await stored("g:news")).toBe(1);
    });
  });

  describe("roles and mutes", () => {
    test("admins mute members for a time; a muted send is refused with 4032 and not stored; the owner hands over", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", kind: "user", members: ["ben", "cat"] });
      await ok(ann!, { t: "group_role", group: group.id, user: "ben", role: "admin" });
      expect(await cat!.request({ t: "group_mute", group: group.id, user: "ben", seconds: 60 })).toMatchObject({ t: "error", code: 4030 });
      const muted = await ok(ben!, { t: "group_mute", group: group.id, user: "cat", seconds: 60 });
      expect(muted.mutedUntil).toBeGreaterThan(Date.now());
      expect(await cat!.next((f) => f.t === "member" && f.change === "mute")).toMatchObject({ user: { id: "cat" }, by: "ben" });
      const refused = await cat!.request({ t: "send", conv: group.conv, body: "can I talk" });
      expect(refused).toMatchObject({ t: "error", code: 4032, error: "muted" });
      expect(refused.retryAfterMs).toBeGreaterThan(50_000);
      expect(await stored(group.conv)).toBe(0);
      // An admin cannot mute or remove another admin; the owner can.
      expect(await cat!.request({ t: "group_remove", group: group.id, user: "ben" })).toMatchObject({ t: "error", code: 4030 });
      await ok(ben!, { t: "group_mute", group: group.id, user: "cat", seconds: 0 });
      await ok(cat!, { t: "send", conv: group.conv, body: "thanks" });
      // Handing ownership over makes the old owner an admin.
      await ok(ann!, { t: "group_role", group: group.id, user: "cat", role: "owner" });
      const roles = Object.fromEntries((await ok(ben!, { t: "group_members", group: group.id })).members.map((m: any) => [m.user, m.role]));
      expect(roles).toEqual({ ann: "admin", ben: "admin", cat: "owner" });
      expect(await ok(cat!, { t: "group_remove", group: group.id, user: "ann" })).toMatchObject({ removed: true });
      expect(await ann!.next((f) => f.t === "member" && f.change === "leave")).toMatchObject({ user: { id: "ann" }, by: "cat" });
    });

    test("an owner who leaves hands ownership to the longest-standing member", async () => {
      const [dan, eve] = await Promise.all(["dan", "eve"].map(connect));
      const { group } = await ok(dan!, { t: "group_create", kind: "interest" });
      await ok(eve!, { t: "group_join", group: group.id });
      expect(await ok(dan!, { t: "group_leave", group: group.id })).toMatchObject({ left: true });
      expect((await ok(eve!, { t: "group_info", group: group.id })).group).toMatchObject({ owner: "eve", members: 1 });
    });
  });

  describe("unread, receipts and the conversation list", () => {
    test("unread counts follow sends and reads across two devices of one user", async () => {
      const ann = await connect("ann");
      const [eve1, eve2] = [await connect("eve"), await connect("eve")];
      const { group } = await ok(ann, { t: "group_create", kind: "user", members: ["eve"] });
      for (let i = 1; i <= 3; i++) await ok(ann, { t: "send", to: "eve", body: `d${i}` });
      for (let i = 1; i <= 2; i++) await ok(ann, { t: "send", conv: group.conv, body: `g${i}` });
      const dm = "d:ann:eve";
      const list = async (c: Client) => Object.fromEntries((await ok(c, { t: "convs" })).convs.map((r: any) => [r.conv, r]));
      let rows = await list(eve2);
      expect(rows[dm]).toMatchObject({ kind: "direct", name: "ANN", unread: 3, awaiting: true, last: { body: "d3", seq: 3 } });
      expect(rows[group.conv]).toMatchObject({ kind: "group", subtype: "user", unread: 2, awaiting: true });

      // Device 1 reads the 1:1 up to 2: device 2 is told, and counts follow on both.
      await ok(eve1, { t: "read", conv: dm, seq: 2 });
      expect(await eve2.next((f) => f.t === "receipt" && f.conv === dm)).toMatchObject({ user: "eve", field: "read", seq: 2 });
      rows = await list(eve2);
      expect(rows[dm].unread).toBe(1);
      // Device 2 replies in the 1:1: no longer awaiting; ann's list shows her own unread as 1 (eve's reply).
      await ok(eve2, { t: "send", to: "ann", body: "hey" });
      await ok(eve2, { t: "read", conv: group.conv, seq: 2 });
      rows = await list(eve1);
      expect(rows[dm]).toMatchObject({ unread: 1, awaiting: false, last: { body: "hey", from: "eve" } });
      expect(rows[group.conv]).toMatchObject({ unread: 0, awaiting: true });
      const annRows = await list(ann);
      expect(annRows[dm]).toMatchObject({ unread: 1, awaiting: true });
      // A read never moves back; a late read of 1 leaves 2.
      expect(await ok(eve1, { t: "read", conv: dm, seq: 1 })).toMatchObject({ seq: 2 });
      // Filters: only groups; only those awaiting a reply; contacted since a time in the future is none.
      expect((await ok(eve1, { t: "convs", kind: "group" })).convs.map((r: any) => r.conv)).toEqual([group.conv]);
      expect((await ok(eve1, { t: "convs", awaiting: true })).convs.map((r: any) => r.conv)).toEqual([group.conv]);
      expect((await ok(eve1, { t: "convs", since: Date.now() + 60_000 })).convs).toEqual([]);
    });

    test("direct receipts reach the sender at once; group receipts come as debounced counts", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      const a = await ok(ann!, { t: "send", to: "ben", body: "read me" });
      await ok(ben!, { t: "delivered", conv: a.msg.conv, seq: a.msg.seq });
      expect(await ann!.next((f) => f.t === "receipt" && f.field === "delivered")).toMatchObject({ conv: a.msg.conv, user: "ben", seq: a.msg.seq });
      await ok(ben!, { t: "read", conv: a.msg.conv, seq: a.msg.seq });
      expect(await ann!.next((f) => f.t === "receipt" && f.field === "read")).toMatchObject({ user: "ben", seq: a.msg.seq });
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
      const [ann, ben] = await Promise.all(["ann", "ben"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", kind: "user", members: ["ben"] });
      const first = await ok(ann!, { t: "send", conv: group.conv, body: "once", cmid: "retry-me" });
      const again = await ok(ann!, { t: "send", conv: group.conv, body: "once", cmid: "retry-me" });
      expect(again.msg).toMatchObject({ id: first.msg.id, seq: first.msg.seq, dup: true });
      expect(await stored(group.conv)).toBe(1);
      await ben!.next(isMsg(group.conv, "once"));
      expect(ben!.pending().filter(isMsg(group.conv))).toEqual([]);
    });

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
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      const { group } = await ok(ann!, { t: "group_create", kind: "user", members: ["ben", "cat"] });
      const sent = await ok(ben!, { t: "send", conv: group.conv, body: "oops", cmid: "oops-1" });
      expect(await ann!.request({ t: "recall", msg: sent.msg.id })).toMatchObject({ t: "error", code: 4040 });
      expect(await ok(ben!, { t: "recall", cmid: "oops-1" })).toMatchObject({ t: "recalled", msg: sent.msg.id, seq: 1 });
      for (const c of [ann!, cat!]) expect(await c.next((f) => f.t === "recall")).toMatchObject({ conv: group.conv, msg: sent.msg.id, from: "ben" });
      expect((await ok(cat!, { t: "history", conv: group.conv })).msgs[0]).toMatchObject({ seq: 1, body: null, recalled: true });
      const row = (await ok(cat!, { t: "convs" })).convs.find((r: any) => r.conv === group.conv);
      expect(row).toMatchObject({ unread: 0, last: { recalled: true, body: null } });
    });
  });

  describe("server API", () => {
    test("groups, members, mutes, publishing and lists over HTTP", async () => {
      const [ben, cat] = await Promise.all(["ben", "cat"].map(connect));
      expect((await srv.api("/api/groups", { body: { kind: "user", owner: "ann" }, key: "wrong" })).status).toBe(401);
      const g = await srv.api("/api/groups", { body: { id: "team", kind: "user", owner: "ann", name: "Team", members: ["ben"] } });
      expect(g).toMatchObject({ status: 200, body: { id: "team", conv: "g:team", kind: "user", members: 2 } });
      expect((await srv.api("/api/groups", { body: { id: "team", kind: "user", owner: "ann" } })).status).toBe(409);
      expect((await srv.api("/api/groups", { body: { kind: "nope", owner: "ann" } })).status).toBe(400);
      expect(await srv.api("/api/groups/team/members", { body: { users: ["cat"] } })).toMatchObject({ status: 200, body: { added: ["cat"] } });
      expect(await cat!.next((f) => f.t === "member" && f.conv === "g:team")).toMatchObject({ change: "join", by: null });

      const pub = await srv.api("/api/messages", { body: { from: "ann", conv: "g:team", body: { text: "welcome" }, cmid: "w1" } });
      expect(pub).toMatchObject({ status: 200, body: { conv: "g:team", seq: 1, dup: false } });
      expect((await srv.api("/api/messages", { body: { from: "ann", conv: "g:team", body: { text: "welcome" }, cmid: "w1" } })).body).toMatchObject({ id: pub.body.id, dup: true });
      for (const c of [ben!, cat!]) expect((await c.next(isMsg("g:team"))).msg.body).toEqual({ text: "welcome" });
      const dm = await srv.api("/api/messages", { body: { from: "ann", to: "cat", body: "psst" } });
      expect(dm.body).toMatchObject({ conv: "d:ann:cat" });
      expect((await cat!.next(isMsg("d:ann:cat"))).msg.body).toBe("psst");
      expect((await srv.api("/api/messages", { body: { from: "ghost", to: "cat", body: "x" } })).status).toBe(404);

      expect((await srv.api("/api/groups/team/members/cat", { method: "PUT", body: { muteSec: 30 } })).body.mutedUntil).toBeGreaterThan(Date.now());
      expect(await cat!.request({ t: "send", conv: "g:team", body: "hello?" })).toMatchObject({ t: "error", code: 4032 });
      const members = (await srv.api("/api/groups/team/members")).body;
      expect(members.find((m: any) => m.user === "cat").mutedUntil).toBeGreaterThan(Date.now());

      const list = await srv.api("/api/users/cat/conversations?kind=group");
      expect(list.body.every((r: any) => r.kind === "group")).toBe(true);
      expect(list.body[0]).toMatchObject({ conv: "g:team", unread: 1, name: "Team", last: { body: { text: "welcome" } } });
      const hist = await srv.api("/api/conversations/g:team/messages?user=ben");
      expect(hist.body.msgs.map((m: any) => m.seq)).toEqual([1]);
      expect((await srv.api("/api/conversations/g:team/messages?user=dan")).status).toBe(403);

      expect((await srv.api("/api/groups/team", { method: "DELETE" })).body).toEqual({ ok: true });
      expect(await ben!.next((f) => f.t === "member" && f.change === "dissolve")).toMatchObject({ conv: "g:team" });
      expect(await ben!.request({ t: "send", conv: "g:team", body: "anyone?" })).toMatchObject({ t: "error", code: 4030 });
      expect((await srv.api("/api/groups/team")).body).toMatchObject({ closed: true });
      const doc = await (await fetch(`${srv.url}/openapi/json`)).json();
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/api/groups", "/api/messages", "/api/users/{id}/conversations"]));
    });
  });
});
