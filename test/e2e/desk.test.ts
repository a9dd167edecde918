// The desk protocol (seed 002, docs/desk.md) end to end: real server, real Postgres and Redis, WebSocket
// clients for agents and guests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// The same tests on both stores (Postgres, the embedded PGlite) and both routing states (Redis, as in a
// cluster; in memory, the embedded default). Each server has its own Redis prefix: routing state is shared
// by every node on one prefix.
const { desk } = protocols;

const setups = [
  { store: "pg", bus: "redis" },
  { store: "pglite", bus: "memory" },
  { store: "pg", bus: "memory" },
  { store: "pglite", bus: "redis" },
] as const;
for (const { store, bus } of setups) describe(`on ${store}, routing state ${bus === "redis" ? "in Redis" : "in memory"}`, () => {
  let srv: TestServer;
  const open: Client[] = [];

  beforeAll(async () => {
    const prefix = `desk${Math.random().toString(36).slice(2, 8)}:`;
    srv = await startTestServer({ store, bus, env: { DESK_PORT: "0", SEND_RATE: "1000", SEND_BURST: "1000", REDIS_PREFIX: prefix } });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
  });

  const push = (key: number, gid?: string) => (f: any) => f.api_key === key && (gid === undefined || f.data.gid === gid);

  describe("login", () => {
    test("accepted with ix and both lists; refused with each negative code; -9999 before login", async () => {
      await desk.group(srv, "g-login");
      const token = await desk.agent(srv, "a-login", "g-login");
      const { login } = await desk.login(srv, "a-login", { agent: token, keep: open });
      expect(login.data.ix).toMatch(/^[0-9a-f]{20}$/);
      expect(login.data).toMatchObject({ is_refresh: 0, refresh_token: "", guest_list: [] });
      expect(login.data.admin_list).toEqual([expect.objectContaining({ aix: "a-login", online: 1, status: 0, load: 0 })]);

      const c = await desk.connect(srv, { keep: open });
      expect(await c.request({ api_key: 32000 })).toEqual({ api_key: 32000, data: {}, code: -9999, message: "log in first", status: "Fail" });
      expect(await c.request({ api_key: 31000, call_type: 3, token: "garbage" })).toMatchObject({ code: -31001, status: "Fail" });
      expect(await c.request({ api_key: 31000, call_type: 3, token: await desk.token(srv, "not-an-agent") })).toMatchObject({ code: -31002 });
      const dis = await desk.agent(srv, "a-disabled", "g-login");
      await srv.api("/api/desk/agents/a-disabled", { method: "PUT", body: { disabled: true } });
      expect(await c.request({ api_key: 31000, call_type: 3, token: dis })).toMatchObject({ code: -31003 });
      await desk.group(srv, "g-off");
      const off = await desk.agent(srv, "a-off", "g-off");
      await srv.api("/api/desk/groups/g-off", { method: "PUT", body: { disabled: true } });
      expect(await c.request({ api_key: 31000, call_type: 3, token: off })).toMatchObject({ code: -31004 });
      // The connection stays usable after refusals.
      c.send(JSON.stringify({ call_type: 0 }));
      expect(await c.next((f) => f.message === "pong")).toEqual({ api_key: 0, data: {}, code: 200, message: "pong", status: "Success" });
    });

    test("a token near expiry is answered with a refresh token that logs in", async () => {
      await desk.group(srv, "g-refresh");
      await desk.agent(srv, "a-refresh", "g-refresh");
      const short = await desk.token(srv, "a-refresh", 3600);
      const { login } = await desk.login(srv, "a-refresh", { agent: short, keep: open });
      expect(login.data.is_refresh).toBe(1);
      expect(login.data.refresh_token.length).toBeGreaterThan(20);
      const again = await desk.login(srv, "a-refresh", { agent: login.data.refresh_token, keep: open });
      expect(again.login.data.is_refresh).toBe(0);
    });

    test("bad frames get negative codes without dropping the connection; a disabled agent's next request gets -9999", async () => {
      await desk.group(srv, "g-bad");
      const token = await desk.agent(srv, "a-bad", "g-bad");
      const c = await desk.login(srv, "a-bad", { agent: token, keep: open });
      c.send("not json");
      expect(await c.next((f) => f.code === -10001)).toMatchObject({ api_key: null, status: "Fail" });
      expect(await c.request({ api_key: 99999 })).toMatchObject({ code: -10002 });
      expect(await c.request({ api_key: 32100, group_id: "g-bad" })).toMatchObject({ code: -32101, message: "gid not null" });
      expect(await c.request({ api_key: 32100, gid: "x" })).toMatchObject({ code: -32102, message: "group_id not null" });
      expect(await c.request({ api_key: 32200, group_id: "g-bad" })).toMatchObject({ code: -32201 });
      expect(await c.request({ api_key: 32200, gid: "x" })).toMatchObject({ code: -32202 });
      expect(await c.request({ api_key: 32300, msg: "hi" })).toMatchObject({ code: -32301 });
      expect(await c.request({ api_key: 32300, gid: "x" })).toMatchObject({ code: -32302 });
      expect(await c.request({ api_key: 32300, gid: "x", msg: "hi", file_type: 9 })).toMatchObject({ code: -32303 });
      expect(await c.request({ api_key: 32300, gid: "x", msg: "hi", file_type: 1.5 })).toMatchObject({ code: -32303 });
      expect(await c.request({ api_key: 32300, gid: "x", msg: "hi" })).toMatchObject({ code: -32304 });
      expect(await c.request({ api_key: 32400, aix: "y" })).toMatchObject({ code: -32403 });
      expect(await c.request({ api_key: 32400, gid: "x" })).toMatchObject({ code: -32404 });
      expect(await c.request({ api_key: 32500, status: 7 })).toMatchObject({ code: -32501 });
      await srv.api("/api/desk/agents/a-bad", { method: "PUT", body: { disabled: true } });
      expect(await c.request({ api_key: 32000 })).toMatchObject({ code: -9999 });
    });

    test("an agent login on a guest's connection is refused (-31005) and the connection stays a guest", async () => {
      await desk.group(srv, "g-mix");
      const token = await desk.agent(srv, "a-mix", "g-mix");
      const c = await desk.login(srv, "a-mix", { group: "g-mix", keep: open });
      expect(await c.request({ api_key: 31000, call_type: 3, token })).toMatchObject({ code: -31005, message: "this connection is logged in as a guest" });
      c.send(JSON.stringify({ call_type: 0 }));
      expect(await c.next((f) => f.message === "pong")).toMatchObject({ code: 200 });
    });
  });

  describe("guests and agents", () => {
    test("a guest waits while no agent is online, and is assigned with its messages when one logs in", async () => {
      await desk.group(srv, "g-wait");
      const token = await desk.agent(srv, "a-wait", "g-wait");
      const guest = await desk.login(srv, "guest-wait", { group: "g-wait", keep: open });
      const login = guest.login;
      expect(login.data).toMatchObject({ gid: "guest-wait", aix: null, queue_position: 1 });
      const sent = await guest.request({ api_key: 32300, msg: "anyone there?", file_type: 0 });
      expect(sent).toMatchObject({ code: 200, data: { gid: "guest-wait", message_info: { msg: "anyone there?", file_type: 0, seq: 1 } } });
      expect((await srv.api("/api/desk/groups/g-wait/state")).body).toMatchObject({ queue: ["guest-wait"] });

      const a = await desk.login(srv, "a-wait", { agent: token, keep: open });
      const arrived = await a.next(push(32401, "guest-wait"));
      expect(arrived).toMatchObject({ code: 32401, data: { guest_info: { id: "guest-wait", nick: "GUEST-WAIT" }, recs: [{ msg: "anyone there?", from: "guest-wait" }] } });
      expect(await guest.next(push(31100))).toMatchObject({ data: { gid: "guest-wait", aix: "a-wait" } });
      const list = await a.request({ api_key: 32000 });
      expect(list.data.guest_list).toEqual([expect.objectContaining({ gid: "guest-wait", online: 1, unread: 1, last_message: expect.objectContaining({ msg: "anyone there?" }) })]);

      // Both ways: the guest's messages reach the agent as 32399, the agent's reach the guest.
      await guest.request({ api_key: 32300, msg: "hello?" });
      expect((await a.next(push(32399, "guest-wait"))).data.message_info).toMatchObject({ msg: "hello?", from: "guest-wait" });
      for (let ft = 0; ft <= 6; ft++) {
        const r = await a.request({ api_key: 32300, gid: "guest-wait", msg: ft === 0 ? "hi" : { url: `https://x/${ft}` }, file_type: ft });
        expect(r).toMatchObject({ code: 200, data: { gid: "guest-wait", message_info: { file_type: ft, from: "a-wait" } } });
        expect((await guest.next(push(32399))).data.message_info).toMatchObject({ file_type: ft, from: "a-wait" });
      }
      // Read state: 32200 clears the agent's unread.
      expect((await a.request({ api_key: 32000 })).data.guest_list[0].unread).toBe(2);
      expect(await a.request({ api_key: 32200, gid: "guest-wait", group_id: "g-wait" })).toMatchObject({ code: 200, data: { gid: "guest-wait", group_id: "g-wait" } });
      expect((await a.request({ api_key: 32000 })).data.guest_list[0].unread).toBe(0);
    });

    test("an agent's message to its guest (32300) makes at most 2 store reads before its write", async () => {
      await desk.group(srv, "g-reads");
      const token = await desk.agent(srv, "a-reads", "g-reads");
      const a = await desk.login(srv, "a-reads", { agent: token, keep: open });
      const guest = await desk.login(srv, "guest-reads", { group: "g-reads", keep: open });
      await a.next(push(32401, "guest-reads"));
      await guest.next(push(31100));
      // Every call of the store's and the desk records' methods, in order, until the batch write.
      const calls: string[] = [];
      const undo: (() => void)[] = [];
      for (const target of [srv.app.store, srv.app.desk.records] as Record<string, any>[]) {
        const proto = Object.getPrototypeOf(target);
        for (const name of Object.getOwnPropertyNames(proto)) {
          if (name === "constructor" || typeof proto[name] !== "function") continue;
          const orig = target[name];
          target[name] = (...args: unknown[]) => {
            calls.push(name);
            return orig.apply(target, args);
          };
          undo.push(() => delete target[name]);
        }
      }
      try {
        const r = await a.request({ api_key: 32300, gid: "guest-reads", msg: "counted", file_type: 0 });
        expect(r).toMatchObject({ code: 200, data: { gid: "guest-reads", message_info: { msg: "counted", from: "a-reads" } } });
        expect((await guest.next(push(32399))).data.message_info).toMatchObject({ msg: "counted", from: "a-reads" });
      } finally {
        for (const u of undo) u();
      }
      const write = calls.indexOf("appendBatch");
      expect(write).toBeGreaterThan(-1);
      const reads = calls.slice(0, write);
      // On failure the reads made are shown.
      expect(reads.length <= 2 ? "at most 2 reads" : reads.join(", ")).toBe("at most 2 reads");
    });

    test("chat content is paged, newest page first, each page oldest first", async () => {
      await desk.group(srv, "g-page");
      const token = await desk.agent(srv, "a-page", "g-page");
      const a = await desk.login(srv, "a-page", { agent: token, keep: open });
      const guest = await desk.login(srv, "guest-page", { group: "g-page", keep: open });
      await a.next(push(32401, "guest-page"));
      for (let i = 1; i <= 15; i++) await guest.request({ api_key: 32300, msg: `m${i}` });
      const p1 = await a.request({ api_key: 32100, gid: "guest-page", group_id: "g-page", page_index: 1, page_size: 10 });
      expect(p1.data).toMatchObject({ gid: "guest-page", page_index: 1, page_size: 10, total: 15 });
      expect(p1.data.list.map((m: any) => m.msg)).toEqual(Array.from({ length: 10 }, (_, i) => `m${i + 6}`));
      const p2 = await a.request({ api_key: 32100, gid: "guest-page", group_id: "g-page", page_index: 2, page_size: 10 });
      expect(p2.data.list.map((m: any) => m.msg)).toEqual(["m1", "m2", "m3", "m4", "m5"]);
      expect((await a.request({ api_key: 32100, gid: "guest-page", group_id: "g-page", page_index: 3, page_size: 10 })).data.list).toEqual([]);
      // Another group's agent cannot read it.
      await desk.group(srv, "g-other");
      const stranger = await desk.login(srv, "a-stranger", { agent: await desk.agent(srv, "a-stranger", "g-other"), keep: open });
      expect(await stranger.request({ api_key: 32100, gid: "guest-page", group_id: "g-other" })).toMatchObject({ code: -32103 });
      // The guest pages its own conversation too.
      expect((await guest.request({ api_key: 32100, page_size: 2 })).data.list.map((m: any) => m.msg)).toEqual(["m14", "m15"]);
    });

    test("transfer: both pushes, the unread state moves, the guest's next message goes to the new agent", async () => {
      await desk.group(srv, "g-xfer");
      const [t1, t2] = [await desk.agent(srv, "a-x1", "g-xfer"), await desk.agent(srv, "a-x2", "g-xfer")];
      const a1 = await desk.login(srv, "a-x1", { agent: t1, keep: open });
      const guest = await desk.login(srv, "guest-x", { group: "g-xfer", keep: open });
      await a1.next(push(32401, "guest-x"));
      const a2 = await desk.login(srv, "a-x2", { agent: t2, keep: open });
      await guest.request({ api_key: 32300, msg: "I need billing" });
      await a1.next(push(32399, "guest-x"));

      const r = await a1.request({ api_key: 32400, gid: "guest-x", aix: "a-x2" });
      expect(r).toMatchObject({ code: 200, data: { gid: "guest-x", data: { from: "a-x1", to: "a-x2" }, guest_info: { id: "guest-x" }, recs: [{ msg: "I need billing" }] } });
      expect(await a2.next(push(32401, "guest-x"))).toMatchObject({ data: { from_aix: "a-x1", guest_info: { id: "guest-x" }, recs: [{ msg: "I need billing" }] } });
      expect(await a1.next(push(32402, "guest-x"))).toMatchObject({ data: { aix: "a-x2" } });
      expect(await guest.next((f) => push(31100)(f) && f.data.aix === "a-x2")).toMatchObject({ data: { gid: "guest-x" } });
      expect((await a2.request({ api_key: 32000 })).data.guest_list).toEqual([expect.objectContaining({ gid: "guest-x", unread: 1 })]);
      expect((await a1.request({ api_key: 32000 })).data.guest_list).toEqual([]);

      await guest.request({ api_key: 32300, msg: "still there?" });
      expect((await a2.next(push(32399, "guest-x"))).data.message_info.msg).toBe("still there?");
      expect(a1.pending().filter(push(32399))).toEqual([]);
      expect(await a1.request({ api_key: 32300, gid: "guest-x", msg: "me again" })).toMatchObject({ code: -32304 });
      expect(await a2.request({ api_key: 32400, gid: "guest-x", aix: "nobody" })).toMatchObject({ code: -32405 });
    });

    test("routing: least busy agent, sticky to the last one; suspend holds new guests back and resume releases the queue", async () => {
      await desk.group(srv, "g-route");
      const [t1, t2] = [await desk.agent(srv, "a-r1", "g-route"), await desk.agent(srv, "a-r2", "g-route")];
      const a1 = await desk.login(srv, "a-r1", { agent: t1, keep: open });
      const { login: g1 } = await desk.login(srv, "guest-r1", { group: "g-route", keep: open });
      expect(g1.data.aix).toBe("a-r1");
      const a2 = await desk.login(srv, "a-r2", { agent: t2, keep: open });
      const { login: g2 } = await desk.login(srv, "guest-r2", { group: "g-route", keep: open });
      expect(g2.data.aix).toBe("a-r2");
      await a2.next(push(32401, "guest-r2"));
      // guest-r1 leaves and comes back while a-r2 is idle: it goes back to a-r1 (sticky).
      const g3c = await desk.login(srv, "guest-r3", { group: "g-route", keep: open });
      expect((await g3c.request({ api_key: 32000 })).data.aix).toBe("a-r1");
      const online = await a1.request({ api_key: 33000 });
      expect(online.data.admin_list).toEqual([
        expect.objectContaining({ aix: "a-r1", status: 0, load: 2 }),
        expect.objectContaining({ aix: "a-r2", status: 0, load: 1 }),
      ]);

      // Both agents suspend: a new guest waits; a resume assigns it.
      expect(await a1.request({ api_key: 32500, status: 1 })).toMatchObject({ code: 200, data: {} });
      await a2.request({ api_key: 32500, status: 1 });
      expect((await a1.request({ api_key: 33000 })).data.admin_list.map((a: any) => a.status)).toEqual([1, 1]);
      const { login: w } = await desk.login(srv, "guest-r4", { group: "g-route", keep: open });
      expect(w.data).toMatchObject({ aix: null, queue_position: 1 });
      await a2.request({ api_key: 32500, status: 0 });
      expect(await a2.next(push(32401, "guest-r4"))).toMatchObject({ data: { guest_info: { id: "guest-r4" } } });
    });

    test("a sticky guest returns to its last agent", async () => {
      await desk.group(srv, "g-sticky");
      const [t1, t2] = [await desk.agent(srv, "a-s1", "g-sticky"), await desk.agent(srv, "a-s2", "g-sticky")];
      const a1 = await desk.login(srv, "a-s1", { agent: t1, keep: open });
      const g = await desk.login(srv, "guest-s", { group: "g-sticky", keep: open });
      await a1.next(push(32401, "guest-s"));
      await desk.login(srv, "a-s2", { agent: t2, keep: open });
      await g.close();
      // a-s2 is now less busy, but the guest's last agent a-s1 is available.
      const { login } = await desk.login(srv, "guest-s", { group: "g-sticky", keep: open });
      expect(login.data.aix).toBe("a-s1");
    });

    test("one core: the guest's conversation is a container the native protocol reads too; DESK_PORT serves any path", async () => {
      await desk.group(srv, "g-core");
      const token = await desk.agent(srv, "a-core", "g-core");
      const d = await desk.connect(srv, { url: `ws://127.0.0.1:${srv.deskPort}/`, keep: open });
      expect(await d.request({ api_key: 31000, call_type: 3, token })).toMatchObject({ code: 200 });
      const guest = await desk.login(srv, "guest-core", { group: "g-core", keep: open });
      await d.next(push(32401, "guest-core"));
      await d.request({ api_key: 32300, gid: "guest-core", msg: "from the desk" });
      const native = await Client.connect(`${srv.wsUrl}/ws?token=${await desk.token(srv, "guest-core")}`);
      open.push(native);
      await native.next((f) => f.t === "welcome");
      const h = await native.request({ t: "history", conv: "c:desk:guest-core" });
      expect(h.msgs.map((m: any) => [m.from, m.body])).toEqual([["a-core", { msg: "from the desk" }]]);
      const convs = await native.request({ t: "convs", kind: "container" });
      expect(convs.convs).toEqual([expect.objectContaining({ conv: "c:desk:guest-core", subtype: "desk", unread: 1 })]);
      expect(guest.isClosed).toBe(false);
    });
  });
});
