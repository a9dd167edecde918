// Inputs the fuzz suite (test/fuzz) found answered with an internal error or an HTTP 500, each pinned here as a
// plain test: a clear error in the client's protocol, or the documented success.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

for (const store of ["pg", "pglite"] as const)
  describe(`on ${store}`, () => {
    let srv: TestServer;
    let alice: Client;
    let bin: Client;
    beforeAll(async () => {
      srv = await startTestServer({ store });
      const [a] = await Promise.all([srv.user("alice"), srv.user("bob")]);
      alice = await Client.native(srv.wsUrl, a, "alice");
      bin = await Client.connect(`${srv.wsUrl}/ws?format=msgpack&token=${a}`, { binary: true });
      expect(await bin.next()).toMatchObject({ t: "welcome", user: "alice" });
    }, 30_000);
    afterAll(async () => {
      alice.ws.close();
      bin.ws.close();
      await srv.stop();
    });

    test("a body of JSON null is a message like any other (it was a failed insert: 5000)", async () => {
      const ack = await alice.ok({ t: "send", to: "bob", body: null, cmid: "null-body" });
      const h = await alice.ok({ t: "history", conv: ack.msg.conv });
      expect(h.msgs.map((m: any) => [m.id, m.body])).toEqual([[ack.msg.id, null]]);
    });

    test("times no Date can hold are bad requests (they were a RangeError: 5000)", async () => {
      expect(await alice.request({ t: "convs", before: 1e300 })).toMatchObject({ t: "error", code: 4002 });
      expect(await alice.request({ t: "convs", since: -9007199254740992 })).toMatchObject({ t: "error", code: 4002 });
      const ack = await alice.ok({ t: "send", to: "bob", body: "x" });
      expect(await alice.request({ t: "history", conv: ack.msg.conv, from: 1e300 })).toMatchObject({ t: "error", code: 4002 });
    });

    test("ids the store cannot look up (a NUL, a lone surrogate) are bad requests in every read (they were 5000)", async () => {
      expect(await alice.request({ t: "delivered", conv: "\u0000", seq: 4 })).toMatchObject({ t: "error", code: 4002 });
      expect(await alice.request({ t: "read", conv: "d:\ud800", seq: 1 })).toMatchObject({ t: "error", code: 4002 });
      expect(await alice.request({ t: "history", conv: "g:a\u0000b" })).toMatchObject({ t: "error", code: 4002 });
      expect(await alice.request({ t: "unblock", user: "a\u0000b" })).toMatchObject({ t: "error", code: 4002 });
    });

    test("a msgpack BigInt in a droppable room message is a bad request (it was a failed JSON encode: 5000)", async () => {
      expect(await bin.request({ t: "join_room", room: "bigint" })).toMatchObject({ t: "join_room", room: "bigint" });
      expect(await bin.request({ t: "room_send", room: "bigint", body: { n: 2n ** 60n } })).toMatchObject({ t: "error", code: 4002 });
      expect(await bin.request({ t: "room_send", room: "bigint", body: { n: 1 } })).toMatchObject({ t: "ack", msg: { conv: "r:bigint", dup: false } });
    });

    test("an empty PUT of an existing desk agent returns it unchanged (it was an empty UPDATE: 500)", async () => {
      expect((await srv.api("/api/desk/groups/fz", { method: "PUT", body: { name: "fz" } })).status).toBe(200);
      await srv.user("agent-fz");
      const made = await srv.api("/api/desk/agents/agent-fz", { method: "PUT", body: { group: "fz", capacity: 3 } });
      expect(made.status).toBe(200);
      const again = await srv.api("/api/desk/agents/agent-fz", { method: "PUT", body: {} });
      expect(again).toEqual({ status: 200, body: made.body });
    });

    test("a schema failure whose value cannot be printed is a 400 (it was a TypeError in the validator: 500)", async () => {
      const r = await fetch(`${srv.url}/im/vanke/getReceiver`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ senderId: "host", token: { toString: "aaa" }, type: 1 }),
      });
      expect(r.status).toBe(400);
      expect((await r.json()).code).toBe(4002);
    });

    test("a handshake whose account the store cannot look up is a 400, not a 500", async () => {
      const q = new URLSearchParams({ userId: "hs0", roomName: "hs0", clientType: "default", account: "a\u0000b", password: "5ebe2294ecd0e0f08eab7690d2a6ee69" });
      const r = await fetch(`${srv.url}/rooms?${q}`, {
        headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
      });
      expect(r.status).toBe(400);
      expect((await r.json()).code).toBe(4002);
    });
  });
