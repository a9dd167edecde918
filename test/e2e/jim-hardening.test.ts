// J-IM edge cases: ids that are names of Object.prototype members, the login answer before any push, and
// user info (cmd 17) for a user in many groups.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { MemoryBroker, MemoryBus } from "../../src/bus/memory.ts";
import { Client } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

async function register(srv: TestServer, id: string): Promise<string> {
  const token = `t-${crypto.randomUUID().replace(/-/g, "")}`;
  const r = await srv.api("/im/vanke/initUser", { body: { senderId: id, receiverId: "", nick: `N-${id}`, avatar: "", terminal: "pc", token, type: 0 } });
  expect(r).toEqual({ status: 200, body: { code: 200, msg: "success", data: null } });
  return token;
}

async function connect(srv: TestServer, token: string): Promise<Client> {
  const c = await Client.connect(`${srv.wsUrl}/jim?token=${token}`);
  expect(await c.next()).toMatchObject({ code: 10007, command: 6 });
  return c;
}

async function ask(c: Client, frame: unknown, command: number) {
  c.send(JSON.stringify(frame));
  return c.next((f) => f && f.command === command);
}

const PROTO_NAMES = ["toString", "constructor", "__proto__", "hasOwnProperty"];

describe("ids named like Object.prototype members", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { SEND_RATE: "1000", SEND_BURST: "1000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("a user in groups toString, constructor, __proto__, hasOwnProperty pulls its offline messages and history", async () => {
    const meTok = await register(srv, "proto-me");
    const youTok = await register(srv, "proto-you");
    // Peers named like them too: offline 1:1 messages are keyed by the sender.
    const peerToks = new Map<string, string>();
    for (const p of PROTO_NAMES) peerToks.set(p, await register(srv, p));
    let me = await connect(srv, meTok);
    const you = await connect(srv, youTok);
    for (const g of PROTO_NAMES) {
      expect(await ask(me, { cmd: 7, groupId: g }, 8)).toMatchObject({ code: 10011, data: { group: g, result: 1 } });
      expect(await ask(you, { cmd: 7, groupId: g }, 8)).toMatchObject({ code: 10011 });
    }
    await me.close();
    for (const g of PROTO_NAMES) expect(await ask(you, { cmd: 11, chatType: 1, groupId: g, content: `in ${g}` }, 12)).toMatchObject({ code: 10000 });
    for (const p of PROTO_NAMES) {
      const c = await connect(srv, peerToks.get(p)!);
      expect(await ask(c, { cmd: 11, chatType: 2, to: "proto-me", content: `from ${p}` }, 12)).toMatchObject({ code: 10001 });
      await c.close();
    }

    me = await connect(srv, meTok);
    const peek = await ask(me, { cmd: 19, type: 2, userId: "proto-me" }, 20);
    expect(peek.code).toBe(10022);
    const pulled = await ask(me, { cmd: 19, type: 0, userId: "proto-me" }, 20);
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
    expect((await ask(me, { cmd: 19, type: 0, userId: "proto-me" }, 20)).data).toEqual({ friends: {}, groups: {}, userid: "proto-me" });
    // History of each group and each peer.
    for (const g of PROTO_NAMES) {
      const h = await ask(me, { cmd: 19, type: 1, userId: "proto-me", groupId: g }, 20);
      expect(h.code).toBe(10018);
      expect(Object.keys(h.data.groups)).toEqual([g]);
      expect(h.data.groups[g].map((m: any) => m.content)).toEqual([`in ${g}`]);
      const f = await ask(me, { cmd: 19, type: 1, userId: "proto-me", fromUserId: g }, 20);
      expect(Object.keys(f.data.friends)).toEqual([g]);
      expect(f.data.friends[g].map((m: any) => m.content)).toEqual([`from ${g}`]);
    }
    // The group list (cmd 17 type 0) names them all.
    const info = await ask(me, { cmd: 17, type: 0, userId: "proto-me" }, 18);
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
    const lateTok = await register(srv, "late");
    const talkTok = await register(srv, "talker");
    const talker = await connect(srv, talkTok);
    let late = await connect(srv, lateTok);
    expect(await ask(late, { cmd: 7, groupId: "g-window" }, 8)).toMatchObject({ code: 10011 });
    expect(await ask(talker, { cmd: 7, groupId: "g-window" }, 8)).toMatchObject({ code: 10011 });
    await late.close();

    // The next login of `late` is bound to its user, but its channel subscription waits for the test.
    let requested!: () => void;
    const asked = new Promise<void>((r) => (requested = r));
    let open!: () => void;
    bus.hold = { user: "late", requested, open: new Promise<void>((r) => (open = r)) };
    late = await Client.connect(`${srv.wsUrl}/jim?token=${lateTok}`);
    await asked;
    // Sent in that window: a group message and a 1:1 message, both committed and pushed before the answer.
    expect(await ask(talker, { cmd: 11, chatType: 1, groupId: "g-window", content: "in the window" }, 12)).toMatchObject({ code: 10000 });
    expect([10000, 10001]).toContain((await ask(talker, { cmd: 11, chatType: 2, to: "late", content: "direct in the window" }, 12)).code);
    open();
    expect(await late.next()).toMatchObject({ code: 10007, command: 6 });
    expect((await late.next()).data).toMatchObject({ groupId: "g-window", content: "in the window" });
    expect((await late.next()).data).toMatchObject({ to: "late", content: "direct in the window" });
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
    for (const u of ["big-me", "big-even", "big-third", "big-off"]) tok.set(u, await register(srv, u));
    const me = await connect(srv, tok.get("big-me")!);
    const even = await connect(srv, tok.get("big-even")!);
    const third = await connect(srv, tok.get("big-third")!);
    const off = await connect(srv, tok.get("big-off")!);
    const join = async (c: Client, g: string) => expect(await ask(c, { cmd: 7, groupId: g }, 8)).toMatchObject({ code: 10011 });
    for (let i = 0; i < G; i++) {
      const g = `big-${String(i).padStart(3, "0")}`;
      await join(me, g);
      if (i % 2 === 0) await join(even, g);
      if (i % 3 === 0) await join(third, g);
      if (i % 5 === 0) await join(off, g);
    }
    // Contacts with 12 messages each (the answer holds the last 10), one of them recalled.
    for (const [c, name] of [[even, "big-even"], [off, "big-off"]] as const) {
      for (let i = 0; i < 12; i++) await ask(c, { cmd: 11, chatType: 2, to: "big-me", content: `${name} ${i}`, id: `${name}.${i}.`.padEnd(32, "0") }, 12);
    }
    expect(await ask(off, { cmd: 15, id: "big-off.11.".padEnd(32, "0") }, 16)).toMatchObject({ code: 10000 });
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
    const r = await ask(me, { cmd: 17, type: 0, userId: "big-me" }, 18);
    const ms0 = performance.now() - t0;
    expect(r.code).toBe(10005);
    expect(r.data.groups).toHaveLength(G);
    for (let i = 0; i < G; i++) {
      const g = r.data.groups[i];
      expect(g.group_id).toBe(`big-${String(i).padStart(3, "0")}`);
      const want = ["big-me", ...(i % 2 === 0 ? ["big-even"] : []), ...(i % 3 === 0 ? ["big-third"] : [])].sort();
      expect(g.users.map((u: any) => u.id).sort()).toEqual(want);
      expect(g.online).toBe(want.length);
      expect(g.users.find((u: any) => u.id === "big-me")).toEqual({ avatar: "", id: "big-me", nick: "N-big-me", terminal: "pc" });
    }
    expect(r.data.friends).toEqual([{ avatar: "", group_id: "friends", name: "friends", online: 1, users: [{ avatar: "", id: "big-even", nick: "N-big-even", terminal: "pc" }] }]);

    const t2 = performance.now();
    const info = await ask(me, { cmd: 17, type: 2, userId: "big-me", extras: { pullType: 1 } }, 18);
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
