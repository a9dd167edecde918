// J-IM edge cases: ids that are names of Object.prototype members, the login answer before any push, and
// user info (cmd 17) for a user in many groups.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MemoryBroker, MemoryBus } from "../../src/bus/memory.ts";
import { Client } from "../helpers/client.ts";
import { protocols, type JimClient } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const { jim } = protocols;

const PROTO_NAMES = ["toString", "constructor", "__proto__", "hasOwnProperty"];

describe("ids named like Object.prototype members", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { SEND_RATE: "1000", SEND_BURST: "1000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("a user in groups toString, constructor, __proto__, hasOwnProperty pulls its offline messages and history", async () => {
    const meTok = await jim.register(srv, "proto-me", { nick: "N-proto-me" });
    const youTok = await jim.register(srv, "proto-you", { nick: "N-proto-you" });
    // Peers named like them too: offline 1:1 messages are keyed by the sender.
    const peerToks = new Map<string, string>();
    for (const p of PROTO_NAMES) peerToks.set(p, await jim.register(srv, p, { nick: `N-${p}` }));
    let me = await jim.login(srv, "proto-me", { token: meTok });
    const you = await jim.login(srv, "proto-you", { token: youTok });
    for (const g of PROTO_NAMES) {
      expect(await me.request({ cmd: 7, groupId: g })).toMatchObject({ code: 10011, data: { group: g, result: 1 } });
      expect(await you.request({ cmd: 7, groupId: g })).toMatchObject({ code: 10011 });
    }
    await me.close();
    for (const g of PROTO_NAMES) expect(await you.request({ cmd: 11, chatType: 1, groupId: g, content: `in ${g}` })).toMatchObject({ code: 10000 });
    for (const p of PROTO_NAMES) {
      const c = await jim.login(srv, p, { token: peerToks.get(p)! });
      expect(await c.request({ cmd: 11, chatType: 2, to: "proto-me", content: `from ${p}` })).toMatchObject({ code: 10001 });
      await c.close();
    }

    me = await jim.login(srv, "proto-me", { token: meTok });
    const peek = await me.request({ cmd: 19, type: 2, userId: "proto-me" });
    expect(peek.code).toBe(10022);
    const pulled = await me.request({ cmd: 19, type: 0, userId: "proto-me" });
    expect(pulled.code).toBe(10016);
    for (const data of [peek.data, pulled.data]) {
      expect(Object.keys(data.groups).sort()).toEqual([...PROTO_NAMES].sort());
      expect(Object.keys(data.friends).sort()).toEqual([...PROTO_NAMES].sort());
      for (const g of PROTO_NAMES) {
        expect(Object.hasOwn(data.groups, g)).toBe(true);
        expect(data.groups[g].map((m: any) => [m.groupId, m.content])).toEqual([[g, `in ${g}`]]);
        expect(data.friends[g].map((m: any) => [m.from, m.content])).toEqual([[g, `from ${g}`]]);
      }
    }
    // Pulled: nothing offline any more.
    expect((await me.request({ cmd: 19, type: 0, userId: "proto-me" })).data).toEqual({ friends: {}, groups: {}, userId: "proto-me", userid: "proto-me" });
    // History of each group and each peer.
    for (const g of PROTO_NAMES) {
      const h = await me.request({ cmd: 19, type: 1, userId: "proto-me", groupId: g });
      expect(h.code).toBe(10018);
      expect(Object.keys(h.data.groups)).toEqual([g]);
      expect(h.data.groups[g].map((m: any) => m.content)).toEqual([`in ${g}`]);
      const f = await me.request({ cmd: 19, type: 1, userId: "proto-me", fromUserId: g });
      expect(Object.keys(f.data.friends)).toEqual([g]);
      expect(f.data.friends[g].map((m: any) => m.content)).toEqual([`from ${g}`]);
    }
    // The group list (cmd 17 type 0) names them all.
    const info = await me.request({ cmd: 17, type: 0, userId: "proto-me" });
    expect(info.data.groups.map((g: any) => g.group_id).sort()).toEqual([...PROTO_NAMES].sort());
    await Promise.all([me.close(), you.close()]);
  });

  test("the native protocol answers a frame type named like an Object.prototype member with unknown_type", async () => {
    const token = await srv.user("proto-native");
    const c = await Client.native(srv.wsUrl, token, "proto-native");
    for (const t of PROTO_NAMES) {
      expect(await c.request({ t })).toMatchObject({ t: "error", error: "unknown_type" });
    }
    expect((await c.ok({ t: "ping" })).t).toBe("pong");
    await c.close();
  });
});

/** A bus on which the subscription of one user's channel waits until the test opens it. */
class GatedBus extends MemoryBus {
  hold?: { user: string; requested: () => void; open: Promise<void> };
  override async subscribe(channel: string): Promise<void> {
    const h = this.hold;
    if (h && channel.endsWith(`u:${h.user}`)) {
      this.hold = undefined;
      h.requested();
      await h.open;
    }
    return super.subscribe(channel);
  }
}

describe("the login answer", () => {
  let srv: TestServer;
  const bus = new GatedBus(new MemoryBroker());
  beforeAll(async () => {
    srv = await startTestServer({ bus, env: { SEND_RATE: "1000", SEND_BURST: "1000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("is the first frame: pushes sent while the login completes come right after it", async () => {
    const lateTok = await jim.register(srv, "late", { nick: "N-late" });
    const talkTok = await jim.register(srv, "talker", { nick: "N-talker" });
    const talker = await jim.login(srv, "talker", { token: talkTok });
    let late = await jim.login(srv, "late", { token: lateTok });
    expect(await late.request({ cmd: 7, groupId: "g-window" })).toMatchObject({ code: 10011 });
    expect(await talker.request({ cmd: 7, groupId: "g-window" })).toMatchObject({ code: 10011 });
    await late.close();

    // The next login of `late` is bound to its user, but its channel subscription waits for the test.
    let requested!: () => void;
    const asked = new Promise<void>((r) => (requested = r));
    let open!: () => void;
    bus.hold = { user: "late", requested, open: new Promise<void>((r) => (open = r)) };
    late = await jim.connect(srv, { token: lateTok });
    await asked;
    // Sent in that window: a group message and a 1:1 message, both committed and pushed before the answer.
    expect(await talker.request({ cmd: 11, chatType: 1, groupId: "g-window", content: "in the window" })).toMatchObject({ code: 10000 });
    expect([10000, 10001]).toContain((await talker.request({ cmd: 11, chatType: 2, to: "late", content: "direct in the window" })).code);
    open();
    expect(await late.next()).toMatchObject({ code: 10007, command: 6 });
    // (its own online notice in g-window, command 9, comes after the answer too, in any place among them)
    expect((await late.next((f) => f.command === 11)).data).toMatchObject({ groupId: "g-window", content: "in the window" });
    expect((await late.next((f) => f.command === 11)).data).toMatchObject({ to: "late", content: "direct in the window" });
    await Promise.all([late.close(), talker.close()]);
  });
});

describe("user info (cmd 17) of a user in many groups", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { SEND_RATE: "100000", SEND_BURST: "100000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("type 0 lists 150 groups with their online members, and type 2 the contacts' last messages, in a few statements", async () => {
    const G = 150;
    const tok = new Map<string, string>();
    for (const u of ["big-me", "big-even", "big-third", "big-off"]) tok.set(u, await jim.register(srv, u, { nick: `N-${u}` }));
    const me = await jim.login(srv, "big-me", { token: tok.get("big-me")! });
    const even = await jim.login(srv, "big-even", { token: tok.get("big-even")! });
    const third = await jim.login(srv, "big-third", { token: tok.get("big-third")! });
    const off = await jim.login(srv, "big-off", { token: tok.get("big-off")! });
    const join = async (c: JimClient, g: string) => expect(await c.request({ cmd: 7, groupId: g })).toMatchObject({ code: 10011 });
    for (let i = 0; i < G; i++) {
      const g = `big-${String(i).padStart(3, "0")}`;
      await join(me, g);
      if (i % 2 === 0) await join(even, g);
      if (i % 3 === 0) await join(third, g);
      if (i % 5 === 0) await join(off, g);
    }
    // Contacts with 12 messages each (the answer holds the last 10), one of them recalled.
    for (const [c, name] of [[even, "big-even"], [off, "big-off"]] as const) {
      for (let i = 0; i < 12; i++) await c.request({ cmd: 11, chatType: 2, to: "big-me", content: `${name} ${i}`, id: `${name}.${i}.`.padEnd(32, "0") });
    }
    expect(await off.request({ cmd: 15, id: "big-off.11.".padEnd(32, "0") })).toMatchObject({ code: 10000 });
    await off.close();

    // Count the per-group and per-contact lookups the answers make.
    const store = srv.app.store;
    const calls = { getUsers: 0, getConversation: 0, memberIds: 0, history: 0 };
    for (const k of ["getUsers", "getConversation", "memberIds", "history"] as const) {
      const orig = (store[k] as (...a: unknown[]) => unknown).bind(store);
      (store as any)[k] = (...a: unknown[]) => {
        calls[k]++;
        return orig(...a);
      };
    }
    const t0 = performance.now();
    const r = await me.request({ cmd: 17, type: 0, userId: "big-me" });
    const ms0 = performance.now() - t0;
    expect(r.code).toBe(10005);
    expect(r.data.groups).toHaveLength(G);
    for (let i = 0; i < G; i++) {
      const g = r.data.groups[i];
      expect(g.group_id).toBe(`big-${String(i).padStart(3, "0")}`);
      const want = ["big-me", ...(i % 2 === 0 ? ["big-even"] : []), ...(i % 3 === 0 ? ["big-third"] : [])].sort();
      expect(g.users.map((u: any) => u.id).sort()).toEqual(want);
      expect(g.online).toBe(want.length);
      expect(g.users.find((u: any) => u.id === "big-me")).toEqual({ avatar: "", id: "big-me", nick: "N-big-me", terminal: "pc", userId: "big-me" });
    }
    const evenU = { avatar: "", id: "big-even", nick: "N-big-even", terminal: "pc", userId: "big-even" };
    expect(r.data.friends).toEqual([{ avatar: "", groupId: "friends", group_id: "friends", name: "friends", online: 1, users: [evenU] }]);

    const t2 = performance.now();
    const info = await me.request({ cmd: 17, type: 2, userId: "big-me", extras: { pullType: 1 } });
    const ms2 = performance.now() - t2;
    const byId = new Map<string, any>(info.data.friends.map((f: any) => [f.userId, f]));
    expect(byId.get("big-even").historyMessage.map((m: any) => m.content)).toEqual([11, 10, 9, 8, 7, 6, 5, 4, 3, 2].map((i) => `big-even ${i}`));
    // the recalled one is left out of the last ten
    expect(byId.get("big-off").historyMessage.map((m: any) => m.content)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2].map((i) => `big-off ${i}`));
    console.log(`cmd 17 for ${G} groups: type 0 ${ms0.toFixed(1)} ms, type 2 ${ms2.toFixed(1)} ms; lookups ${JSON.stringify(calls)}`);
    // One user lookup for all groups (and the user itself), no per-group or per-contact statements.
    expect(calls).toEqual({ getUsers: 1, getConversation: 0, memberIds: 0, history: 0 });
    await Promise.all([me.close(), even.close(), third.close()]);
  }, 120_000);
});
