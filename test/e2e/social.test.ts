// Friends, blacklist and follows end to end: real server, real Postgres and Redis, real WebSocket clients of
// the native and J-IM protocols.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { rowsOf } from "../../src/store/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// The same tests on both stores: Postgres and the embedded PGlite.
for (const store of ["pg", "pglite"] as const) describe(`on ${store}`, () => {
  let srv: TestServer;
  const tok: Record<string, string> = {};
  const open: Client[] = [];

  beforeAll(async () => {
    srv = await startTestServer({ store, bus: "redis", env: { SEND_RATE: "1000", SEND_BURST: "1000" } });
    for (const u of ["ann", "ben", "cat", "dan", "eve", "host1", "v1", "v2"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
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
  const stored = async (conv: string) =>
    Number(rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = ${conv}`))[0]!.n);

  describe("friends", () => {
    test("request, accept and refuse, with pushes; friendship both ways", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map(connect));
      expect(await ok(ann!, { t: "friend_request", user: "ben", note: "hi, it's Ann" })).toMatchObject({ status: "pending" });
      expect(await ben!.next((f) => f.t === "friend")).toEqual({ t: "friend", change: "request", user: { id: "ann", nick: "ANN" }, note: "hi, it's Ann" });
      expect((await ok(ben!, { t: "friend_requests" })).requests).toEqual([expect.objectContaining({ from: "ann", to: "ben", status: "pending", nick: "ANN" })]);
      // Only the recipient answers.
      expect(await cat!.request({ t: "friend_answer", user: "ann", accept: true })).toMatchObject({ t: "error", code: 4040 });
      await ok(ben!, { t: "friend_answer", user: "ann", accept: true });
      expect(await ann!.next((f) => f.t === "friend" && f.change === "accepted")).toMatchObject({ user: { id: "ben" } });
      expect((await ok(ann!, { t: "friends" })).friends.map((f: any) => f.user)).toEqual(["ben"]);
      expect((await ok(ben!, { t: "friends" })).friends.map((f: any) => f.user)).toEqual(["ann"]);
      expect(await ok(ann!, { t: "friend_request", user: "ben" })).toMatchObject({ status: "friends" });

      // Refused, then asked again: pending once more.
      await ok(cat!, { t: "friend_request", user: "ann" });
      await ok(ann!, { t: "friend_answer", user: "cat", accept: false });
      expect(await cat!.next((f) => f.t === "friend" && f.change === "refused")).toMatchObject({ user: { id: "ann" } });
      expect((await ok(cat!, { t: "friend_requests", dir: "out" })).requests[0]).toMatchObject({ to: "ann", status: "refused" });
      expect(await ok(cat!, { t: "friend_request", user: "ann" })).toMatchObject({ status: "pending" });
      // A request crossing a pending one the other way makes friends at once.
      expect(await ok(ann!, { t: "friend_request", user: "cat" })).toMatchObject({ status: "accepted" });
      expect((await ok(cat!, { t: "friends" })).friends.map((f: any) => f.user)).toEqual(["ann"]);

      await ok(ann!, { t: "friend_remark", user: "ben", remark: "Benny" });
      expect((await ok(ann!, { t: "friends" })).friends.find((f: any) => f.user === "ben").remark).toBe("Benny");
      expect(await ok(ben!, { t: "friend_remove", user: "ann" })).toMatchObject({ removed: true });
      expect(await ann!.next((f) => f.t === "friend" && f.change === "removed")).toMatchObject({ user: { id: "ben" } });
      expect((await ok(ann!, { t: "friends" })).friends.map((f: any) => f.user)).toEqual(["cat"]);
      expect(await ann!.request({ t: "friend_request", user: "ghost" })).toMatchObject({ t: "error", code: 4040 });
      expect(await ann!.request({ t: "friend_request", user: "ann" })).toMatchObject({ t: "error", code: 4002 });
    });
  });

  describe("blacklist", () => {
    test("a blocked sender is refused with 4031 over native and J-IM, nothing stored or delivered; unblock restores", async () => {
      const [dan, eve] = await Promise.all(["dan", "eve"].map(connect));
      const conv = "d:dan:eve";
      await ok(dan!, { t: "send", to: "eve", body: "before" });
      await eve!.next((f) => f.t === "msg" && f.msg.body === "before");
      await ok(eve!, { t: "block", user: "dan" });
      expect((await ok(eve!, { t: "blocks" })).users.map((u: any) => u.user)).toEqual(["dan"]);

      const refused = await dan!.request({ t: "send", to: "eve", body: "let me talk", cmid: "blk-1" });
      expect(refused).toMatchObject({ t: "error", code: 4031, error: "blocked" });
      expect(await dan!.request({ t: "send", conv, body: "via conv" })).toMatchObject({ t: "error", code: 4031 });
      expect(await dan!.request({ t: "friend_request", user: "eve" })).toMatchObject({ t: "error", code: 4031 });
      expect((await srv.api("/api/messages", { body: { from: "dan", to: "eve", body: "via api" } })).status).toBe(403);

      // J-IM, logged in with the server's JWT: cmd 11 gets its failure answer.
      const jim = await protocols.jim.login(srv, "dan", { token: tok.dan, keep: open });
      expect(await jim.request({ cmd: 11, from: "dan", to: "eve", chatType: 2, msgType: 0, content: "jim says hi" })).toMatchObject({ code: 10002 });

      expect(await stored(conv)).toBe(1);
      // eve may still write to dan: a block is one-way.
      await ok(eve!, { t: "send", to: "dan", body: "I can" });
      await dan!.next((f) => f.t === "msg" && f.msg.body === "I can");
      expect(eve!.pending().filter((f) => f.t === "msg" && f.msg.from === "dan")).toEqual([]);

      expect(await ok(eve!, { t: "unblock", user: "dan" })).toMatchObject({ unblocked: true });
      expect((await ok(dan!, { t: "send", to: "eve", body: "after", cmid: "blk-1" })).msg).toMatchObject({ seq: 3, dup: false });
      expect((await eve!.next((f) => f.t === "msg" && f.msg.from === "dan")).msg.body).toBe("after");
      expect(await stored(conv)).toBe(3);
    });
  });

  describe("follows", () => {
    test("viewers follow a host; lists and counts; over HTTP too", async () => {
      const [v1, v2] = await Promise.all(["v1", "v2"].map(connect));
      expect(await ok(v1!, { t: "follow", user: "host1" })).toMatchObject({ followed: true });
      expect(await ok(v1!, { t: "follow", user: "host1" })).toMatchObject({ followed: false });
      await ok(v2!, { t: "follow", user: "host1" });
      const f = await ok(v1!, { t: "followers", user: "host1" });
      expect(f).toMatchObject({ user: "host1", followers: 2, following: 0 });
      expect(f.users.map((u: any) => u.user)).toEqual(["v1", "v2"]);
      expect((await ok(v1!, { t: "followers", user: "host1", after: "v1" })).users.map((u: any) => u.user)).toEqual(["v2"]);
      expect(await ok(v1!, { t: "following" })).toMatchObject({ users: [expect.objectContaining({ user: "host1", nick: "HOST1" })], following: 1 });
      await ok(v2!, { t: "unfollow", user: "host1" });

      const http = await srv.api("/api/users/host1/followers");
      expect(http).toMatchObject({ status: 200, body: { followers: 1, users: [expect.objectContaining({ user: "v1" })] } });
      expect((await srv.api("/api/users/v2/follows/host1", { method: "PUT" })).body).toEqual({ followed: true });
      expect((await srv.api("/api/users/host1/followers")).body.followers).toBe(2);
    });

    test("the server API: requests, friends and blocks for a user", async () => {
      expect((await srv.api("/api/users/v1/friend-requests", { body: { to: "v2" }, key: "bad" })).status).toBe(401);
      expect((await srv.api("/api/users/v1/friend-requests", { body: { to: "v2", note: "yo" } })).body).toEqual({ status: "pending" });
      expect((await srv.api("/api/users/v2/friend-requests")).body).toEqual([expect.objectContaining({ from: "v1", note: "yo", status: "pending" })]);
      expect((await srv.api("/api/users/v2/friend-requests/v1", { body: { accept: true } })).body).toEqual({ status: "accepted" });
      expect((await srv.api("/api/users/v1/friends")).body.map((f: any) => f.user)).toEqual(["v2"]);
      expect((await srv.api("/api/users/v2/blocks/v1", { method: "PUT" })).body).toEqual({ blocked: true });
      expect((await srv.api("/api/messages", { body: { from: "v1", to: "v2", body: "x" } })).body).toMatchObject({ code: 4031 });
      expect((await srv.api("/api/users/v2/blocks")).body.map((b: any) => b.user)).toEqual(["v1"]);
      expect((await srv.api("/api/users/v2/blocks/v1", { method: "DELETE" })).body).toEqual({ unblocked: true });
      expect((await srv.api("/api/messages", { body: { from: "v1", to: "v2", body: "x" } })).status).toBe(200);
    });
  });
});
