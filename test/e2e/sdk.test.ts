// The client SDK (client/) against the real server: acked sends, resume after reconnects (each message once, in
// seq order per conversation), token callbacks (4001), live rooms across a 4100 close, msgpack, and a server
// process killed under a client sending at a steady rate.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { pack, unpack } from "msgpackr";
import { ChatClient, ChatError, type ChatClientOptions, type Message, type RoomMessage } from "../../client/src/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { startNode, userToken, type NodeProc } from "../helpers/procs.ts";
import { freshPgUrl } from "../helpers/services.ts";

/** Resolves once `pred()` holds, checked after each event `ev` of the client. */
function when<T>(c: ChatClient, ev: "message" | "roomMessage" | "resumed" | "disconnected" | "stopped", pred: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const now = pred();
    if (now) return resolve(now);
    const t = setTimeout(() => (off(), reject(new Error(`timed out waiting on ${ev}`))), timeoutMs);
    const off = c.on(ev, () => {
      const v = pred();
      if (v) (clearTimeout(t), off(), resolve(v));
    });
  });
}

describe("SDK on an in-process server", () => {
  let srv: TestServer;
  const clients: ChatClient[] = [];
  const client = (user: string, o: Partial<ChatClientOptions> = {}) => {
    const c = new ChatClient({ url: `${srv.wsUrl}/ws`, token: () => srv.user(user), backoffMinMs: 20, backoffMaxMs: 200, ...o });
    clients.push(c);
    return c;
  };
  /** `<p>-alice` and `<p>-bob` connected, bob's messages collected in `got`, alice's first message ({i: 1}) delivered. */
  const chatting = async (p: string) => {
    const alice = client(`${p}-alice`);
    const bob = client(`${p}-bob`);
    const got: Message[] = [];
    bob.on("message", (m) => got.push(m));
    await Promise.all([alice.connect(), bob.connect()]);
    await alice.send({ to: `${p}-bob` }, { i: 1 });
    await when(bob, "message", () => got.length === 1);
    return { alice, bob, got };
  };
  beforeAll(async () => {
    srv = await startTestServer({ env: { SEND_RATE: "10000", SEND_BURST: "10000" } });
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv.stop();
  });

  test("acked sends; messages sent while the peer was away come once, in order, then live pushes follow", async () => {
    await srv.user("s-bob");
    const alice = client("s-alice");
    await alice.connect();
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(await alice.send({ to: "s-bob" }, { i }));
    expect(acks.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    const bob = client("s-bob");
    const got: Message[] = [];
    bob.on("message", (m) => got.push(m));
    await bob.connect();
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    await alice.send({ to: "s-bob" }, { i: 6 });
    await when(bob, "message", () => got.length === 6);
    expect(got.map((m) => (m.body as any).i)).toEqual([1, 2, 3, 4, 5, 6]);
    // A rejected send rejects with the server's error.
    const err = await alice.send({ to: "nobody-here" }, {}).catch((e) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect(err.code).toBe(4040);
  });

  test("a dropped connection reconnects (4100 with backoff, 4200 at once) and resumes: nothing missed, nothing twice, a gap filled from history", async () => {
    const { alice, bob, got } = await chatting("r");
    // The server closes bob's connection; alice sends meanwhile.
    const next = () => new Promise<{ code: number; reconnectInMs?: number }>((r) => { const off = bob.on("disconnected", (e) => (off(), r(e))); });
    let closed = next();
    for (const s of srv.app.hub.sessionsOf("r-bob") ?? []) s.ws.close(4100, "test");
    // 4100: with backoff (jittered, between half and all of the first 20 ms step).
    expect(await closed).toMatchObject({ code: 4100 });
    expect((await closed).reconnectInMs).toBeGreaterThanOrEqual(10);
    const sends = [2, 3, 4].map((i) => alice.send({ to: "r-bob" }, { i }));
    await Promise.all(sends);
    await when(bob, "message", () => got.length === 4);
    // 4200 (the node is going away): at once. The resume waited for is the one after this close (the one before
    // may still be finishing: got.length reached 4 inside it).
    closed = next();
    for (const s of srv.app.hub.sessionsOf("r-bob") ?? []) s.ws.close(4200, "test");
    expect(await closed).toMatchObject({ code: 4200, reconnectInMs: 0 });
    await new Promise<void>((r) => { const off = bob.on("resumed", () => (off(), r())); });
    // A message bob's other device sent in between shows up as a seq jump: filled from history, in order.
    const bobPhone = client("r-bob");
    await bobPhone.connect();
    await bobPhone.send({ to: "r-alice" }, { i: 5, from: "phone" });
    await alice.send({ to: "r-bob" }, { i: 6 });
    await when(bob, "message", () => got.length === 6);
    expect(got.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(got.map((m) => m.id)).size).toBe(6);
  });

  test("a resume whose sync jumps over a message of the user's other device fills it from history, in order", async () => {
    const { alice, bob, got } = await chatting("j");
    await bob.flush();
    const positions = bob.positions();
    bob.close();
    // While bob's desktop is away his phone writes 2 (then goes away too, confirming nothing) and alice 3: the
    // desktop's sync holds only 3, what others wrote.
    const phone = client("j-bob");
    await phone.connect();
    await phone.send({ to: "j-alice" }, { i: 2, from: "phone" });
    phone.close();
    await alice.send({ to: "j-bob" }, { i: 3 });
    const desktop = client("j-bob", { positions });
    desktop.on("message", (m) => got.push(m));
    await desktop.connect();
    expect(got.map((m) => [m.seq, m.from])).toEqual([[1, "j-alice"], [2, "j-bob"], [3, "j-alice"]]);
  });

  test("a gap notice (pushes missed while the cluster bus was away) makes the client sync what it missed", async () => {
    const alice = client("g-alice");
    const bob = client("g-bob");
    const got: Message[] = [];
    bob.on("message", (m) => got.push(m));
    await Promise.all([alice.connect(), bob.connect()]);
    // The push of this message is lost (as when Redis was away): the message is committed, nobody is told.
    const hub = srv.app.hub;
    const dispatch = hub.dispatch;
    hub.dispatch = () => {};
    try {
      await alice.send({ to: "g-bob" }, { lost: 1 });
    } finally {
      hub.dispatch = dispatch;
    }
    hub.busRecovered();
    await when(bob, "message", () => got.length === 1);
    expect(got[0]).toMatchObject({ seq: 1, from: "g-alice", body: { lost: 1 } });
  });

  test("the token callback is called again after a 4001 close (expired token) and the client goes on", async () => {
    let calls = 0;
    const c = client("t-carol", {
      // The first token expires in 2 s; the server closes with 4001 then.
      token: async () => {
        calls++;
        await srv.user("t-carol");
        const r = await srv.api("/api/users/t-carol/token", { body: calls === 1 ? { ttlSec: 2 } : {} });
        return r.body.token;
      },
      refreshBeforeExpSec: -60,
    });
    await c.connect();
    const closed = when(c, "disconnected", () => true);
    const back = new Promise<void>((r) => c.on("resumed", (e) => e.reconnect && r()));
    await closed;
    await back;
    expect(calls).toBe(2);
    const ack = await c.send({ to: "s-alice" }, { after: "refresh" });
    expect(ack.seq).toBeGreaterThan(0);
  }, 15_000);

  test("the token callback is called before exp and the new token extends the open connection (no 4001)", async () => {
    let calls = 0;
    let refreshed!: () => void;
    const second = new Promise<void>((r) => (refreshed = r));
    const c = client("rf-dave", {
      token: async () => {
        calls++;
        await srv.user("rf-dave");
        const r = await srv.api("/api/users/rf-dave/token", { body: calls === 1 ? { ttlSec: 3 } : {} });
        if (calls === 2) setTimeout(refreshed, 0);
        return r.body.token;
      },
      refreshBeforeExpSec: 2,
    });
    const t0 = Date.now();
    await c.connect();
    let closed = 0;
    c.on("disconnected", () => closed++);
    await second;
    // Past the first token's exp (+ the server's second of slack): the connection is still the same one.
    await Bun.sleep(Math.max(0, t0 + 4500 - Date.now())); // an observation window, not a synchronisation
    expect(closed).toBe(0);
    expect(calls).toBe(2);
    expect((await c.send({ to: "s-alice" }, { still: "here" })).seq).toBeGreaterThan(0);
  }, 15_000);

  test("a static token refused stops the client (no reconnect loop)", async () => {
    const c = client("x", { token: "not-a-token" });
    const err = await c.connect().catch((e) => e);
    expect(err).toBeInstanceOf(ChatError);
    expect(err.code).toBe(4001);
  });

  test("live rooms over msgpack: danmaku, must-deliver messages once and in order across a 4100 close, rejoined", async () => {
    const host = client("l-host", { msgpack: { pack, unpack } });
    const viewer = client("l-viewer", { msgpack: { pack, unpack } });
    await Promise.all([host.connect(), viewer.connect()]);
    await host.joinRoom("sdk-live");
    await viewer.joinRoom("sdk-live");
    const must: RoomMessage[] = [];
    const danmaku: RoomMessage[] = [];
    viewer.on("roomMessage", (e) => must.push(e.msg));
    viewer.on("danmaku", (e) => danmaku.push(e.msg));
    await host.roomSend("sdk-live", { text: "666" });
    await host.roomSend("sdk-live", { gift: 1 }, { kind: "gift", must: true });
    await when(viewer, "roomMessage", () => must.length === 1);
    for (const s of srv.app.hub.sessionsOf("l-viewer") ?? []) s.ws.close(4100, "test");
    for (let g = 2; g <= 4; g++) await host.roomSend("sdk-live", { gift: g }, { kind: "gift", must: true });
    await when(viewer, "roomMessage", () => must.length === 4);
    expect(must.map((m) => (m.body as any).gift)).toEqual([1, 2, 3, 4]);
    expect(must.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(danmaku.length).toBeLessThanOrEqual(1);
    // After the reconnect the viewer is back in the room: a new gift comes live.
    await host.roomSend("sdk-live", { gift: 5 }, { kind: "gift", must: true });
    await when(viewer, "roomMessage", () => must.length === 5);
  });
});

describe("SDK: the server process is killed under a client sending at a steady rate", () => {
  let node: NodeProc;
  let dbUrl: string;
  const env = () => ({ DATABASE_URL: dbUrl, SEND_RATE: "10000", SEND_BURST: "10000" });
  beforeAll(async () => {
    dbUrl = await freshPgUrl();
    node = await startNode(env());
  }, 30_000);
  afterAll(async () => {
    node.proc.kill("SIGKILL");
    await node.proc.exited;
  });

  test("after a restart every acked message is delivered once, in order, and every send is eventually acked", async () => {
    const [ta, tb] = [await userToken(node, "k-alice"), await userToken(node, "k-bob")];
    const opts = { url: `${node.wsUrl}/ws`, backoffMinMs: 50, backoffMaxMs: 400, requestTimeoutMs: 3000 };
    const alice = new ChatClient({ ...opts, token: ta });
    const bob = new ChatClient({ ...opts, token: tb });
    const got: Message[] = [];
    bob.on("message", (m) => got.push(m));
    await Promise.all([alice.connect(), bob.connect()]);

    let reconnects = 0;
    alice.on("resumed", (e) => void (e.reconnect && reconnects++));
    const N = 300;
    const sends: Promise<{ seq?: number; dup: boolean }>[] = [];
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < N; i++) {
      sends.push(alice.send({ to: "k-bob" }, { i }, { cmid: `k${i}` }));
      if (i === 100) {
        node.proc.kill("SIGKILL");
        await node.proc.exited;
      }
      // Down for 100 sends (about a second), then back on the same port.
      if (i === 200) restarted = startNode({ ...env(), PORT: String(node.port) }).then((n) => void (node = n));
      await Bun.sleep(5); // the sending rate (not a synchronisation)
    }
    await restarted;
    const acks = await Promise.all(sends);
    expect(acks.length).toBe(N);
    expect(reconnects).toBe(1);
    // One message per send: the sends resent after the restart were answered with their first ack.
    expect(new Set(acks.map((a) => a.seq)).size).toBe(N);
    await when(bob, "message", () => got.length >= N, 30_000);
    expect(got.length).toBe(N);
    expect(got.map((m) => m.seq)).toEqual(Array.from({ length: N }, (_, k) => k + 1));
    expect(new Set(got.map((m) => (m.body as any).i)).size).toBe(N);
    alice.close();
    bob.close();
  }, 60_000);
});
