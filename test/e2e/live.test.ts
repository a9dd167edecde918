// Live rooms end to end: real server on port 0, real Postgres and Redis (bus), real WebSocket clients.
// Stalled consumers are raw TCP WebSocket clients that stop reading (test/helpers/raw-ws.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { Crowd } from "../helpers/crowd.ts";
import { RawWs } from "../helpers/raw-ws.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { sdkLogin, type SdkUser } from "../helpers/sdk.ts";
import { ChatError } from "../../client/src/index.ts";

// BACKPRESSURE_BYTES is large enough that one filler tick (1 MB) cannot push a consumer from under the
// lag mark (half) past the hard limit: a stalled consumer then takes the resync path, not the 4100 one.
// The backpressure tests fill sockets with bodies of a few MB sent through the server API.
const ENV = { ROOM_TICK_MS: "100", BACKPRESSURE_BYTES: String(4 << 20), SEND_RATE: "1", SEND_BURST: "10", ROOM_RESYNC_MS: "60000", MAX_BODY_BYTES: String(8 << 20) };
const VIEWERS = 20;
const CROWD = 300;

let srv: TestServer;
const tok: Record<string, string> = {};

beforeAll(async () => {
  srv = await startTestServer({ bus: "redis", env: ENV });
  const names = ["host", "alice", "bob", "carol", "dave", "erin", "stall", "sentinel", ...Array.from({ length: VIEWERS }, (_, i) => `v${i}`)];
  await Promise.all(names.map(async (u) => (tok[u] = await srv.user(u, { nick: u.toUpperCase() }))));
});
afterAll(() => srv.stop());

/** A viewer through the client SDK (what an app shows). */
const sdk = (s: TestServer, user: string, token = tok[user]): Promise<SdkUser> => sdkLogin(s, user, { token });
const presence = (room: string, change: "in" | "out", user: string) => (e: { room: string; change: string; user: { id: string } }) =>
  e.room === room && e.change === change && e.user.id === user;

const connect = async (s: TestServer, user: string) => {
  const c = await Client.connect(`${s.wsUrl}/ws?token=${tok[user]}`);
  expect(await c.next()).toMatchObject({ t: "welcome", user });
  return c;
};

/** The next room tick (on `room`) whose items include one matching `pred`. */
const tick = (c: Client, room: string, pred: (it: any) => boolean) => c.next((f) => f.t === "room" && f.room === room && f.items.some(pred));
const msgItem = (id: string) => (it: any) => it.t === "msg" && it.msg.id === id;

async function dropped(s: TestServer, room: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = text.match(new RegExp(`^chat_room_dropped_total\\{room="r:${room}"\\} (\\d+)$`, "m"));
  return m ? Number(m[1]) : 0;
}

// What a viewer sees goes through the client SDK (its room events: roomPresence, danmaku, roomMessage, recall);
// the stalled consumers below are raw sockets (the wire under backpressure).
describe("joining and leaving", () => {
  test("in/out notices carry names and the online count; the API reads the same count", async () => {
    const a = await sdk(srv, "alice");
    const b = await sdk(srv, "bob");
    const ja = await a.client.joinRoom("io");
    expect(ja).toMatchObject({ t: "join_room", room: "io", conv: "r:io", online: 1, lastSeq: 0, slowModeSec: 0, mutedUntil: null });
    await a.next("roomPresence", presence("io", "in", "alice"));

    const jb = await b.client.joinRoom("io");
    expect(jb.online).toBe(2);
    const seen = await a.next("roomPresence", presence("io", "in", "bob"));
    expect(seen.online).toBe(2);
    expect(seen.user).toEqual({ id: "bob", nick: "BOB" });
    expect((await srv.api("/api/rooms/io")).body).toMatchObject({ room: "io", conv: "r:io", online: 2 });

    const left = await b.client.leaveRoom("io");
    expect(left).toMatchObject({ t: "leave_room", room: "io", left: true, online: 1 });
    expect((await a.next("roomPresence", presence("io", "out", "bob"))).online).toBe(1);
    expect((await b.client.leaveRoom("io")).left).toBe(false);

    // A connection that closes leaves its rooms.
    const c = await sdk(srv, "carol");
    await c.client.joinRoom("io");
    await a.next("roomPresence", presence("io", "in", "carol"));
    c.close();
    const out = await a.next("roomPresence", presence("io", "out", "carol"));
    expect(out.online).toBe(1);
    expect((await srv.api("/api/rooms/io")).body.online).toBe(1);
    a.close();
    b.close();
  });

  test("bad room ids and sends to a room not joined are refused; the connection stays up", async () => {
    const a = await sdk(srv, "alice");
    expect(await a.refused({ t: "join_room", room: "no spaces" })).toMatchObject({ code: 4002 });
    expect(await a.fails(a.client.roomSend("elsewhere", "hi"))).toMatchObject({ code: 4033 });
    expect(await a.refused({ t: "room_send", room: "io", class: "loud", body: "hi" })).toMatchObject({ code: 4002 });
    await a.client.joinRoom("io");
    const long = await a.fails(a.client.roomSend("io", "z".repeat(3000)));
    expect(long).toMatchObject({ code: 4002 });
    expect(long.message).toContain("2048");
    expect((await a.request({ t: "ping" })).t).toBe("pong");
    expect(a.client.connected).toBe(true);
    a.close();
  });
});

describe("room messages", () => {
  test("several danmaku sent together arrive in order, in frames of the room's ticks; droppable ones are not stored", async () => {
    const a = await sdk(srv, "alice");
    const b = await sdk(srv, "bob");
    await a.client.joinRoom("burst");
    await b.client.joinRoom("burst");
    await a.next("roomPresence", presence("burst", "in", "bob"));
    // Sent back to back, without waiting for acks. A quiet room sends at once, so they may come in more than
    // one frame (how ticks coalesce is tested in test/unit/room-ticks.test.ts).
    const acks = await Promise.all([0, 1, 2, 3, 4].map((i) => b.client.roomSend("burst", { text: `666 #${i}` }, { kind: "danmaku" })));
    for (const ack of acks) {
      expect(typeof ack.id).toBe("string");
      expect(ack.seq).toBeUndefined();
    }
    const items: any[] = [];
    while (!items.some((m) => m.id === acks[4]!.id)) items.push((await a.next("danmaku", (e) => e.room === "burst")).msg);
    expect(items.map((m: any) => m.body.text)).toEqual(["666 #0", "666 #1", "666 #2", "666 #3", "666 #4"]);
    expect(items[0]).toMatchObject({ from: "bob", kind: "danmaku", class: "droppable", conv: "r:burst" });
    const hist = await a.request({ t: "history", conv: "r:burst" });
    expect(hist.msgs).toEqual([]);
    a.close();
    b.close();
  });

  test("a gift is committed before its ack, pushed with its seq, and readable from history by seq", async () => {
    const a = await sdk(srv, "alice");
    const b = await sdk(srv, "bob");
    await a.client.joinRoom("gifts");
    await b.client.joinRoom("gifts");
    const ack = await b.client.roomSend("gifts", { gid: 8, num: 3 }, { kind: "gift", must: true, cmid: "g-1" });
    expect(ack).toMatchObject({ conv: "r:gifts", seq: 1, dup: false });
    const got = await a.next("roomMessage", (e) => e.msg.id === ack.id);
    expect(got.msg).toMatchObject({ seq: 1, class: "must", kind: "gift", body: { gid: 8, num: 3 }, from: "bob" });
    const again = await b.client.roomSend("gifts", { gid: 8, num: 3 }, { kind: "gift", must: true, cmid: "g-1" });
    expect(again).toMatchObject({ id: ack.id, seq: 1, dup: true });
    // A viewer who is not in the room may still read its stored messages (a live room is public).
    const c = await sdk(srv, "carol");
    const hist = await c.request({ t: "history", conv: "r:gifts", after: 0 });
    expect(hist.msgs.map((m: any) => [m.seq, m.kind, m.from])).toEqual([[1, "gift", "bob"]]);
    expect((await srv.api("/api/rooms/gifts")).body.lastSeq).toBe(1);
    // Its sender recalls it: the room's viewers are told on a tick, and history hides it.
    expect(await b.request({ t: "recall", msg: ack.id })).toMatchObject({ t: "recalled", conv: "r:gifts", seq: 1 });
    expect(await a.next("recall", (e) => e.conv === "r:gifts")).toEqual({ conv: "r:gifts", msg: ack.id, seq: 1, from: "bob" });
    expect((await c.request({ t: "history", conv: "r:gifts", after: 0 })).msgs[0]).toMatchObject({ seq: 1, body: null, recalled: true });
    for (const x of [a, b, c]) x.close();
  });

  test("the server API publishes both classes; a must-deliver publish is stored once per cmid", async () => {
    const a = await sdk(srv, "alice");
    await a.client.joinRoom("stage");
    const d = await srv.api("/api/rooms/stage/messages", { body: { from: "host", kind: "danmaku", body: { text: "welcome" } } });
    expect(d.status).toBe(200);
    expect(d.body.seq).toBeUndefined();
    expect((await a.next("danmaku", (e) => e.msg.id === d.body.id)).msg.class).toBe("droppable");
    const g = await srv.api("/api/rooms/stage/messages", { body: { from: "host", class: "must", kind: "paid", body: { amount: 30 }, cmid: "pay-7" } });
    expect(g.body).toMatchObject({ conv: "r:stage", seq: 1, dup: false });
    await a.next("roomMessage", (e) => e.msg.id === g.body.id);
    const g2 = await srv.api("/api/rooms/stage/messages", { body: { from: "host", class: "must", kind: "paid", body: { amount: 30 }, cmid: "pay-7" } });
    expect(g2.body).toMatchObject({ id: g.body.id, dup: true });
    const page = await srv.api("/api/rooms/stage/messages?after=0");
    expect(page.body.msgs.map((m: any) => m.id)).toEqual([g.body.id]);
    expect((await srv.api("/api/rooms/stage/messages", { body: { from: "nobody", body: 1 } })).status).toBe(404);
    expect((await srv.api("/api/rooms/stage/messages", { body: { from: "host", class: "loud", body: 1 } })).status).toBe(400);
    expect((await srv.api("/api/rooms/stage/messages", { body: { from: "host", body: 1 }, key: "wrong" })).status).toBe(401);
    a.close();
  });
});

describe("a room across two nodes", () => {
  test("danmaku and gifts sent on one node reach viewers on another through the Redis bus", async () => {
    const { freshPgUrl } = await import("../helpers/services.ts");
    const databaseUrl = await freshPgUrl();
    const n1 = await startTestServer({ bus: "redis", databaseUrl, env: { ...ENV, NODE_ID: "live-n1" } });
    const n2 = await startTestServer({ bus: "redis", databaseUrl, env: { ...ENV, NODE_ID: "live-n2" } });
    try {
      const a = await sdk(n1, "alice", await n1.user("alice"));
      const b = await sdk(n2, "bob", await n1.user("bob"));
      await a.client.joinRoom("wide");
      await b.client.joinRoom("wide");
      // bob's "in" is ticked on node 2 and crosses to node 1.
      await a.next("roomPresence", presence("wide", "in", "bob"));
      const d = await a.client.roomSend("wide", { text: "hi from n1" }, { kind: "danmaku" });
      const g = await a.client.roomSend("wide", { gid: 1 }, { kind: "gift", must: true });
      // Sent back to back, they share a tick; the gift is committed first, so it may come a tick later.
      expect((await b.next("danmaku", (e) => e.msg.id === d.id)).msg).toMatchObject({ class: "droppable", body: { text: "hi from n1" } });
      expect((await b.next("roomMessage", (e) => e.msg.id === g.id)).msg).toMatchObject({ seq: 1, class: "must", from: "alice" });
      a.close();
      b.close();
    } finally {
      await n1.stop();
      await n2.stop();
    }
  }, 20_000);
});

describe("flood control", () => {
  test("the token bucket covers room sends (4290 with retryAfterMs)", async () => {
    const a = await sdk(srv, "dave");
    await a.client.joinRoom("flood");
    const replies = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => a.client.roomSend("flood", i)));
    const refused = replies.filter((r) => r.status === "rejected").map((r) => (r as PromiseRejectedResult).reason);
    // A burst of 10, less the one token of the SDK's resume (its `sync` is a read: READ_COST).
    expect(replies.filter((r) => r.status === "fulfilled").length).toBeGreaterThanOrEqual(9);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(refused[0]).toBeInstanceOf(ChatError);
    expect(refused[0]).toMatchObject({ code: 4290, error: "rate_limited" });
    expect(refused[0].retryAfterMs).toBeGreaterThan(0);
    a.close();
  });

  test("slow mode refuses a second message within the period (4291); the owner is exempt", async () => {
    const put = await srv.api("/api/rooms/slow", { method: "PUT", body: { slowModeSec: 30, owner: "host" } });
    expect(put.body).toMatchObject({ room: "slow", slowModeSec: 30, owner: "host" });
    const a = await sdk(srv, "erin");
    const h = await sdk(srv, "host");
    expect((await a.client.joinRoom("slow")).slowModeSec).toBe(30);
    await h.client.joinRoom("slow");
    expect((await a.client.roomSend("slow", "first")).id).toBeDefined();
    const second = await a.fails(a.client.roomSend("slow", "second"));
    expect(second).toMatchObject({ code: 4291, error: "slow_mode" });
    expect(second.retryAfterMs).toBeGreaterThan(25_000);
    expect(second.retryAfterMs).toBeLessThanOrEqual(30_000);
    // Gifts from a client count too; the host is exempt.
    expect((await a.fails(a.client.roomSend("slow", "gift", { must: true }))).code).toBe(4291);
    expect((await h.client.roomSend("slow", "1")).id).toBeDefined();
    expect((await h.client.roomSend("slow", "2")).id).toBeDefined();
    // Turning it off applies at once on this node.
    await srv.api("/api/rooms/slow", { method: "PUT", body: { slowModeSec: 0 } });
    expect((await a.client.roomSend("slow", "third")).id).toBeDefined();
    a.close();
    h.close();
  });

  test("a timed mute refuses the user's sends (4032), tells the user, and can be lifted", async () => {
    const a = await sdk(srv, "carol");
    await a.client.joinRoom("mod");
    const m = await srv.api("/api/rooms/mod/mutes/carol", { method: "PUT", body: { seconds: 600 } });
    expect(m.status).toBe(200);
    expect(m.body.mutedUntil).toBeGreaterThan(Date.now() + 590_000);
    const note = await a.next("member", (e) => e.change === "mute");
    expect(note).toMatchObject({ conv: "r:mod", user: { id: "carol", nick: "CAROL" }, mutedUntil: m.body.mutedUntil });
    const refused = await a.fails(a.client.roomSend("mod", "hello?"));
    expect(refused).toMatchObject({ code: 4032, error: "muted" });
    expect(refused.retryAfterMs).toBeGreaterThan(590_000);
    expect((await srv.api("/api/rooms/mod/mutes")).body).toEqual([{ user: "carol", mutedUntil: m.body.mutedUntil }]);
    // The server API is not muted on the user's behalf: a backend publish goes through.
    expect((await srv.api("/api/rooms/mod/messages", { body: { from: "carol", body: "via backend" } })).status).toBe(200);
    expect((await a.client.joinRoom("mod")).mutedUntil).toBe(m.body.mutedUntil);
    const un = await srv.api("/api/rooms/mod/mutes/carol", { method: "DELETE" });
    expect(un.body).toEqual({ room: "mod", user: "carol", mutedUntil: null });
    expect((await a.client.roomSend("mod", "back")).id).toBeDefined();
    expect((await srv.api("/api/rooms/nowhere/mutes/carol", { method: "PUT", body: { seconds: 5 } })).status).toBe(404);
    a.close();
  });
});

/**
 * Fills a paused consumer's socket through a side room until the hub takes it out of that room's topic
 * (the room's drop counter moves). Each step is awaited on a healthy sentinel in the same room.
 */
async function stall(s: TestServer, side: string, sentinel: Client): Promise<number> {
  const filler = "x".repeat(1 << 20);
  for (let step = 1; step <= 40; step++) {
    const r = await s.api(`/api/rooms/${side}/messages`, { body: { from: "host", kind: "filler", body: filler } });
    await tick(sentinel, side, msgItem(r.body.id));
    if ((await dropped(s, side)) > 0) return step;
  }
  throw new Error("the paused consumer never came under backpressure");
}

describe("a stalled consumer in a room of a few hundred", () => {
  test("does not hold the others back and is told to resync for the gift it missed", async () => {
    const urls = Array.from({ length: CROWD }, (_, i) => `${srv.wsUrl}/ws?token=${tok[`v${i % VIEWERS}`]}`);
    const crowd = await Crowd.open(urls);
    await crowd.all((f) => f.t === "welcome");
    const joins = await crowd.requestAll({ t: "join_room", room: "big" });
    expect(joins.every((j) => j.t === "join_room")).toBe(true);
    expect(Math.max(...joins.map((j) => j.online))).toBe(CROWD);

    const sentinel = await connect(srv, "sentinel");
    await sentinel.request({ t: "join_room", room: "side" });
    const x = await RawWs.connect(`${srv.wsUrl}/ws?token=${tok.stall}`);
    await x.next((f) => f.t === "welcome");
    x.send({ t: "join_room", id: 1, room: "big" });
    x.send({ t: "join_room", id: 2, room: "side" });
    await x.next((f) => f.id === 1);
    await x.next((f) => f.id === 2);
    await crowd.all((f) => f.t === "room" && f.items.some((it: any) => it.t === "in" && it.user.id === "stall"));

    // Baseline: a gift reaches the whole crowd.
    let t0 = performance.now();
    const g0 = await srv.api("/api/rooms/big/messages", { body: { from: "host", class: "must", kind: "gift", body: { n: 0 } } });
    await crowd.all((f) => f.t === "room" && f.items.some(msgItem(g0.body.id)));
    const baselineMs = performance.now() - t0;

    x.pause();
    const steps = await stall(srv, "side", sentinel);
    const bigDropsBefore = await dropped(srv, "big");

    // The room goes on: danmaku and a gift while one of its consumers reads nothing.
    t0 = performance.now();
    const sent = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => srv.api("/api/rooms/big/messages", { body: { from: "host", kind: "danmaku", body: { text: `d${i}` } } })),
    );
    const gift = await srv.api("/api/rooms/big/messages", { body: { from: "host", class: "must", kind: "gift", body: { n: 1 } } });
    await crowd.all((f) => f.t === "room" && f.items.some(msgItem(gift.body.id)));
    const stalledMs = performance.now() - t0;
    for (const d of sent) await crowd.all((f) => f.t === "room" && f.items.some(msgItem(d.body.id)));
    console.log(`room of ${CROWD + 2}: gift to all in ${baselineMs.toFixed(0)} ms before the stall, ${stalledMs.toFixed(0)} ms during it (stalled after ${steps} MB)`);
    expect(stalledMs).toBeLessThan(5000);

    // Nobody in the crowd was skipped, told to resync or closed.
    expect(crowd.frames.every((fs) => !fs.some((f) => f.t === "resync"))).toBe(true);
    expect(crowd.sockets.every((ws) => ws.readyState === WebSocket.OPEN)).toBe(true);
    // The stalled consumer's skipped danmaku are counted on the room.
    expect((await dropped(srv, "big")) - bigDropsBefore).toBeGreaterThanOrEqual(5);

    // Reading again, it drains, then learns where to resync from and fetches the gift by seq.
    x.resume();
    const rs = await x.next((f) => f.t === "resync" && f.room === "big", 20_000);
    expect(rs).toMatchObject({ conv: "r:big", after: gift.body.seq - 1 });
    expect(rs.dropped).toBeGreaterThanOrEqual(5);
    expect(x.pending().some((f) => f.t === "room" && f.items.some(msgItem(gift.body.id)))).toBe(false);
    x.send({ t: "history", id: 3, conv: "r:big", after: rs.after });
    const h = await x.next((f) => f.id === 3);
    expect(h.msgs.map((m: any) => m.id)).toEqual([gift.body.id]);

    // And it is back in the room's topic.
    const later = await srv.api("/api/rooms/big/messages", { body: { from: "host", kind: "danmaku", body: { text: "back" } } });
    await x.next((f) => f.t === "room" && f.items.some(msgItem(later.body.id)));

    x.close();
    sentinel.close();
    crowd.close();
  }, 60_000);
});

describe("a consumer that stays stalled", () => {
  let s2: TestServer;
  const t2: Record<string, string> = {};
  beforeAll(async () => {
    s2 = await startTestServer({ bus: "redis", env: { ...ENV, ROOM_TICK_MS: "20", ROOM_RESYNC_MS: "300" } });
    for (const u of ["host", "stall", "stall2", "sentinel"]) t2[u] = await s2.user(u);
  });
  afterAll(() => s2.stop());

  /** A raw consumer in `rooms` and a sentinel in the same rooms; the consumer is paused and its socket filled. */
  async function stalled(user: string, rooms: string[]) {
    const sentinel = await Client.connect(`${s2.wsUrl}/ws?token=${t2.sentinel}`);
    await sentinel.next((f) => f.t === "welcome");
    const x = await RawWs.connect(`${s2.wsUrl}/ws?token=${t2[user]}`);
    await x.next((f) => f.t === "welcome");
    for (const [i, room] of rooms.entries()) {
      await sentinel.request({ t: "join_room", room });
      x.send({ t: "join_room", id: i, room });
      await x.next((f) => f.id === i);
    }
    x.pause();
    await stall(s2, rooms[0]!, sentinel);
    return { x, sentinel };
  }

  test("is closed with 4100 once it owes a gift and does not catch up within ROOM_RESYNC_MS", async () => {
    const { x, sentinel } = await stalled("stall", ["side", "big"]);
    const gift = await s2.api("/api/rooms/big/messages", { body: { from: "host", class: "must", kind: "gift", body: { n: 1 } } });
    await tick(sentinel, "big", msgItem(gift.body.id));
    // The server gives up on it: the room sees it go.
    await tick(sentinel, "big", (it) => it.t === "out" && it.user.id === "stall");
    x.resume();
    expect((await x.closed).code).toBe(4100);
    expect(x.pending().some((f) => f.t === "resync")).toBe(false);
    sentinel.close();
  }, 30_000);

  test("a 1:1 push its full socket cannot take closes it with 4100; the message waits in sync", async () => {
    const { x, sentinel } = await stalled("stall2", ["side2"]);
    // Under backpressure but still taking frames: the first push is queued, the one after it cannot be.
    const big = "y".repeat(3 << 20);
    const first = await s2.api("/api/messages", { body: { from: "host", to: "stall2", body: big } });
    const second = await s2.api("/api/messages", { body: { from: "host", to: "stall2", body: "after the full queue" } });
    expect(second.status).toBe(200);
    x.resume();
    expect((await x.closed).code).toBe(4100);
    // The user's app, connecting again, gets both through its resume (the SDK's sync).
    const again = await sdkLogin(s2, "stall2", { token: t2.stall2 });
    expect(again.synced.filter((m) => m.conv === first.body.conv).map((m) => m.id)).toEqual([first.body.id, second.body.id]);
    again.close();
    sentinel.close();
  }, 30_000);
});
