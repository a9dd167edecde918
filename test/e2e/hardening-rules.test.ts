// Rules that hostile or careless clients probe: creating a conversation that exists, text Postgres cannot
// store, frame types that name Object.prototype members, error codes of racing desk transfers, the
// blacklist in desk conversations, and client message ids reused across conversations. Real server, real
// Postgres and Redis, WebSocket clients of each protocol.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { pack } from "msgpackr";
import { sql } from "drizzle-orm";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { rowsOf } from "../../src/store/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

for (const store of ["pg", "pglite"] as const) describe(`on ${store}`, () => {
  let srv: TestServer;
  const tok: Record<string, string> = {};
  const open: Client[] = [];

  beforeAll(async () => {
    srv = await startTestServer({ store, bus: "redis", env: { SEND_RATE: "1000", SEND_BURST: "1000", REDIS_PREFIX: `hr${Math.random().toString(36).slice(2, 8)}:` } });
    for (const u of ["ann", "ben", "cat", "dan", "eve"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
  });

  async function connect(user: string, binary = false): Promise<Client> {
    const c = binary ? await Client.connect(`${srv.wsUrl}/ws?format=msgpack&token=${tok[user]}`, { binary: true }) : await Client.native(srv.wsUrl, tok[user]!, user);
    if (binary) expect(await c.next()).toMatchObject({ t: "welcome", user });
    open.push(c);
    return c;
  }
  const stored = async (conv: string) =>
    Number(rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = ${conv}`))[0]!.n);

  describe("creating a conversation that exists adds nobody", () => {
    test("group_create with an existing id: 4090, and the caller can neither read, post, remove nor dissolve", async () => {
      const [ann, ben, eve] = await Promise.all(["ann", "ben", "eve"].map((u) => connect(u)));
      const { group } = await ann!.ok({ t: "group_create", group: "priv-1", kind: "user", name: "Private", members: ["ben"] });
      await ann!.ok({ t: "send", conv: group.conv, body: "secret" });

      expect(await eve!.request({ t: "group_create", group: "priv-1", kind: "user" })).toMatchObject({ t: "error", code: 4090, error: "conflict" });
      expect(await eve!.request({ t: "history", conv: group.conv })).toMatchObject({ t: "error", code: 4033 });
      expect(await eve!.request({ t: "send", conv: group.conv, body: "mine now" })).toMatchObject({ t: "error", code: 4033 });
      expect(await eve!.request({ t: "group_remove", group: "priv-1", user: "ben" })).toMatchObject({ t: "error", code: 4033 });
      expect(await eve!.request({ t: "group_dissolve", group: "priv-1" })).toMatchObject({ t: "error", code: 4033 });
      // The same through the server API.
      expect((await srv.api("/api/groups", { body: { id: "priv-1", owner: "eve", kind: "user" } })).status).toBe(409);

      const members = await ann!.ok({ t: "group_members", group: "priv-1" });
      expect(members.members.map((m: any) => [m.user, m.role])).toEqual([
        ["ann", "owner"],
        ["ben", "member"],
      ]);
      expect((await ben!.ok({ t: "group_info", group: "priv-1" })).group).toMatchObject({ owner: "ann", members: 2 });
    });

    test("a J-IM join of an existing private group is refused and adds nobody", async () => {
      const ann = await connect("ann");
      await ann.ok({ t: "group_create", group: "priv-2", kind: "user" });
      const jim = await protocols.jim.login(srv, "dan", { token: tok.dan, keep: open });
      expect(await jim.request({ cmd: 7, groupId: "priv-2" })).toMatchObject({ code: 10012, data: { result: 0 } });
      expect((await ann.ok({ t: "group_members", group: "priv-2" })).members.map((m: any) => m.user)).toEqual(["ann"]);
      // A join that creates an interest group makes its caller the owner; the next joiner is a member.
      expect(await jim.request({ cmd: 7, groupId: "open-2" })).toMatchObject({ code: 10011 });
      await ann.ok({ t: "group_join", group: "open-2" });
      expect((await ann.ok({ t: "group_members", group: "open-2" })).members.map((m: any) => [m.user, m.role])).toEqual([
        ["dan", "owner"],
        ["ann", "member"],
      ]);
    });
  });

  describe("frame types are looked up as own names only", () => {
    test("Object.prototype names and non-string types get 4001 unknown_type, over JSON and msgpack", async () => {
      const c = await connect("cat");
      for (const t of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
        c.send(JSON.stringify({ t, id: `u-${t}` }));
        expect(await c.next((f) => f.id === `u-${t}`)).toMatchObject({ t: "error", code: 4001, error: "unknown_type" });
      }
      c.send('{"t":"__proto__","id":"u-raw"}');
      expect(await c.next((f) => f.id === "u-raw")).toMatchObject({ t: "error", code: 4001 });

      const m = await connect("cat", true);
      for (const [i, t] of [5n, 2n ** 60n, 7, true, null, ["send"], { a: 1 }].entries()) {
        m.send(pack({ t, id: `b-${i}` }));
        expect(await m.next((f) => f.id === `b-${i}`)).toMatchObject({ t: "error", code: 4001, error: "unknown_type" });
      }
      m.send(pack({ t: "toString", id: "b-str" }));
      expect(await m.next((f) => f.id === "b-str")).toMatchObject({ t: "error", code: 4001 });
      expect(await m.request({ t: "ping" })).toMatchObject({ t: "pong" });
    });
  });

  describe("text Postgres cannot store is a bad request before the writer", () => {
    test("native: NUL and lone surrogates anywhere in the body, in keys, in cmid: 4002; the next send succeeds", async () => {
      const [ann, ben] = await Promise.all(["ann", "ben"].map((u) => connect(u)));
      const conv = "d:ann:ben";
      const before = await stored(conv);
      const bad: Record<string, unknown>[] = [
        { body: "a\u0000b" },
        { body: { deep: [{ x: "ok" }, { y: "\u0000" }] } },
        { body: { ["k\u0000"]: 1 } },
        { body: "\ud800" },
        { body: { z: ["x\udc00y"] } },
        { body: "ok", cmid: "c\u0000" },
        { body: "ok", cmid: "c\ud83d" },
      ];
      for (const b of bad) {
        expect(await ann!.request({ t: "send", to: "ben", ...b })).toMatchObject({ t: "error", code: 4002, error: "bad_request" });
      }
      const ack = await ann!.ok({ t: "send", to: "ben", body: "fine 😀", cmid: "after-bad" });
      expect(ack.msg).toMatchObject({ conv, dup: false });
      expect((await ben!.next((f) => f.t === "msg" && f.msg.cmid === "after-bad")).msg.body).toBe("fine 😀");
      expect(await stored(conv)).toBe(before + 1);
      // A group's name and attributes too.
      expect(await ann!.request({ t: "group_create", kind: "user", name: "a\u0000" })).toMatchObject({ t: "error", code: 4002 });
      expect(await ann!.request({ t: "group_create", kind: "user", attributes: { a: "\udfff" } })).toMatchObject({ t: "error", code: 4002 });
    });

    test("server API: a profile, a desk group or agent with such text is a 400 bad_request, not a 500", async () => {
      for (const [path, method, body] of [
        ["/api/users", "POST", { id: "nul-user", nick: "a\u0000" }],
        ["/api/users", "POST", { id: "nul-user", attributes: { ["k\ud800"]: 1 } }],
        ["/api/desk/groups/nul%00group", "PUT", { name: "x" }],
        ["/api/desk/groups/nul-group", "PUT", { name: "\udc00" }],
        ["/api/desk/agents/ann", "PUT", { group: "g\u0000" }],
      ] as const) {
        const r = await srv.api(path, { method, body });
        expect([path, r.status, r.body?.error]).toEqual([path, 400, "bad_request"]);
      }
    });

    test("msgpack: an int64 body beyond 2^53 is a bad request, not a failed batch", async () => {
      const m = await connect("ann", true);
      expect(await m.request({ t: "send", to: "ben", body: { n: 2n ** 60n } })).toMatchObject({ t: "error", code: 4002 });
      expect((await m.ok({ t: "send", to: "ben", body: { n: 2 ** 52 } })).msg).toMatchObject({ dup: false });
    });

    test("J-IM: a NUL in the content gets the chat failure answer; the next chat succeeds", async () => {
      const jim = await protocols.jim.login(srv, "cat", { token: tok.cat, keep: open });
      const chat = (content: unknown) => jim.request({ cmd: 11, from: "cat", to: "dan", chatType: 2, msgType: 0, content });
      const before = await stored("d:cat:dan");
      expect(await chat("nul\u0000here")).toMatchObject({ code: 10002 });
      expect(await chat("lone \ud800")).toMatchObject({ code: 10002 });
      expect([10000, 10001]).toContain((await chat("fine")).code);
      expect(await stored("d:cat:dan")).toBe(before + 1);
    });
  });

  describe("client message ids name a retry within one conversation", () => {
    test("a cmid reused in another conversation is a new message; a retry in the same one is a dup", async () => {
      const [ann, ben, cat] = await Promise.all(["ann", "ben", "cat"].map((u) => connect(u)));
      const first = (await ann!.ok({ t: "send", to: "ben", body: "to ben", cmid: "same-1" })).msg;
      await ben!.next((f) => f.t === "msg" && f.msg.cmid === "same-1");
      const other = (await ann!.ok({ t: "send", to: "cat", body: "to cat", cmid: "same-1" })).msg;
      expect(other).toMatchObject({ conv: "d:ann:cat", dup: false });
      expect(other.id).not.toBe(first.id);
      expect((await cat!.next((f) => f.t === "msg" && f.msg.cmid === "same-1")).msg).toMatchObject({ body: "to cat", from: "ann" });
      const retry = (await ann!.ok({ t: "send", to: "cat", body: "to cat", cmid: "same-1" })).msg;
      expect(retry).toMatchObject({ id: other.id, conv: "d:ann:cat", dup: true });
      // A recall by cmid takes the newest message with it.
      expect(await ann!.ok({ t: "recall", cmid: "same-1" })).toMatchObject({ conv: "d:ann:cat", msg: other.id });
    });

    test("a send to a blocker that reuses a cmid gets the blocked error, not another message's ack", async () => {
      const [ann, eve] = await Promise.all(["ann", "eve"].map((u) => connect(u)));
      await ann!.ok({ t: "send", to: "ben", body: "x", cmid: "reuse-b" });
      await eve!.ok({ t: "block", user: "ann" });
      const before = await stored("d:ann:eve");
      expect(await ann!.request({ t: "send", to: "eve", body: "hi", cmid: "reuse-b" })).toMatchObject({ t: "error", code: 4031, error: "blocked" });
      expect(await stored("d:ann:eve")).toBe(before);
      await eve!.ok({ t: "unblock", user: "ann" });
    });
  });

  describe("desk", () => {
    const push = (key: number, gid?: string) => (f: any) => f.api_key === key && (gid === undefined || f.data.gid === gid);

    test("a transfer whose guest was handed over under it (the core's `forbidden`) answers -32406", async () => {
      expect((await srv.api("/api/desk/groups/hr-race", { method: "PUT", body: { name: "race" } })).status).toBe(200);
      const [t1, t2] = [await protocols.desk.agent(srv, "hr-a1", "hr-race"), await protocols.desk.agent(srv, "hr-a2", "hr-race")];
      const a1 = await protocols.desk.login(srv, "hr-a1", { agent: t1, keep: open });
      const guest = await protocols.desk.login(srv, "hr-g1", { group: "hr-race", keep: open });
      await a1.next(push(32401, "hr-g1"));
      expect(await guest.next(push(31100))).toMatchObject({ data: { aix: "hr-a1" } });
      await protocols.desk.login(srv, "hr-a2", { agent: t2, keep: open });
      // The losing side of a race, made deterministic: another transfer moves the guest after the request
      // arrived and before the core checks whose guest it is.
      const desk = srv.app.desk;
      const transfer = desk.transfer;
      desk.transfer = async (from, gid, to) => {
        await srv.app.store.db.execute(sql`update conversations set owner_id = 'hr-a2' where id = ${`c:desk:${gid}`}`);
        return transfer.call(desk, from, gid, to);
      };
      try {
        expect(await a1.request({ api_key: 32400, gid: "hr-g1", aix: "hr-a2" })).toMatchObject({ code: -32406, status: "Fail" });
      } finally {
        desk.transfer = transfer;
      }
    });

    test("a guest blocked by the agent serving it is refused (-32305), nothing stored; the agent still writes", async () => {
      expect((await srv.api("/api/desk/groups/hr-blk", { method: "PUT", body: { name: "blk" } })).status).toBe(200);
      const ta = await protocols.desk.agent(srv, "hr-ab", "hr-blk");
      const a = await protocols.desk.login(srv, "hr-ab", { agent: ta, keep: open });
      const guest = await protocols.desk.login(srv, "hr-gb", { group: "hr-blk", keep: open });
      await a.next(push(32401, "hr-gb"));
      expect(await guest.request({ api_key: 32300, msg: "first" })).toMatchObject({ code: 200 });
      await a.next(push(32399, "hr-gb"));

      // The agent blocks the guest (as a user of the native protocol: one blacklist for every protocol).
      const native = await Client.native(srv.wsUrl, ta, "hr-ab");
      open.push(native);
      await native.ok({ t: "block", user: "hr-gb" });
      const before = await stored("c:desk:hr-gb");
      expect(await guest.request({ api_key: 32300, msg: "let me in" })).toMatchObject({ code: -32305, status: "Fail" });
      expect(await stored("c:desk:hr-gb")).toBe(before);
      expect(a.pending().filter(push(32399, "hr-gb"))).toEqual([]);
      // One-way: the agent still writes to the guest.
      expect(await a.request({ api_key: 32300, gid: "hr-gb", msg: "we are closed" })).toMatchObject({ code: 200 });
      expect((await guest.next(push(32399))).data.message_info.msg).toBe("we are closed");
      await native.ok({ t: "unblock", user: "hr-gb" });
      expect(await guest.request({ api_key: 32300, msg: "thanks" })).toMatchObject({ code: 200 });
    });
  });
});
