// The native protocol end to end: real server on port 0, real Postgres, real WebSocket clients.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { SignJWT } from "jose";
import { protocols } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { sdkLogin, type SdkUser } from "../helpers/sdk.ts";

let srv: TestServer;
let tok: Record<string, string> = {};
let dbUrl: string;

beforeAll(async () => {
  const { freshPgUrl } = await import("../helpers/services.ts");
  dbUrl = await freshPgUrl();
  srv = await startTestServer({ databaseUrl: dbUrl, env: { MAX_FRAME_BYTES: "4096", SEND_RATE: "1000", SEND_BURST: "1000" } });
  for (const u of ["alice", "bob", "carol", "dave", "erin", "fran"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
});
afterAll(() => srv.stop());

const { native, msgpack } = protocols;
/** Logs a user of `beforeAll` in with its token. */
const login = (user: string) => native.login(srv, user, { token: tok[user] });
/** The same user through the client SDK (what an app sees). */
const sdk = (user: string, o: Parameters<typeof sdkLogin>[2] = {}): Promise<SdkUser> => sdkLogin(srv, user, { token: tok[user], ...o });

describe("auth", () => {
  test("a token in the query is accepted", async () => {
    const c = await login("alice");
    await c.close();
  });

  test("a bad token in the query is refused before the upgrade", async () => {
    await expect(native.connect(srv, { token: "nope" })).rejects.toThrow();
    const res = await fetch(`${srv.url}/ws?token=nope`, { headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" } });
    expect(res.status).toBe(401);
  });

  test("a token in the first frame is accepted; frames before auth are refused", async () => {
    const c = await native.connect(srv);
    const early = await c.request({ t: "send", to: "bob", body: "x" });
    expect(early).toMatchObject({ t: "error", code: 4010, error: "unauthorized" });
    const w = await c.request({ t: "auth", token: tok.alice });
    expect(w).toMatchObject({ t: "welcome", user: "alice" });
    expect((await c.request({ t: "ping" })).t).toBe("pong");
    await c.close();
  });

  test("expired, forged and unknown-user tokens are refused and closed with 4001", async () => {
    const secret = new TextEncoder().encode("test-secret-test-secret-test-secret-42");
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setExpirationTime(now - 10).sign(secret);
    const forged = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setExpirationTime(now + 60).sign(new TextEncoder().encode("another-secret-another-secret-another"));
    const ghost = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("ghost").setExpirationTime(now + 60).sign(secret);
    for (const token of [expired, forged, ghost]) {
      const c = await native.connect(srv);
      const r = await c.request({ t: "auth", token });
      expect(r).toMatchObject({ t: "error", code: 4010 });
      expect((await c.closed).code).toBe(4001);
    }
  });

  test("the welcome is the first frame even when a push comes while the login is being bound", async () => {
    // The login's bind (user channel, presence) is held open while a message to the user is committed.
    const presence = srv.app.presence;
    const userUp = presence.userUp.bind(presence);
    const gates = new Map<string, { entered(): void; binding: Promise<void>; release(): void; gate: Promise<void> }>();
    for (const u of ["erin", "fran"]) {
      let entered!: () => void, release!: () => void;
      const binding = new Promise<void>((r) => (entered = r));
      const gate = new Promise<void>((r) => (release = r));
      gates.set(u, { entered, binding, release, gate });
    }
    presence.userUp = async (u, role) => {
      const g = gates.get(u);
      if (g) (g.entered(), await g.gate);
      return userUp(u, role);
    };
    try {
      // erin: the token in the query; fran: in the first frame.
      for (const [user, how] of [["erin", "query"], ["fran", "frame"]] as const) {
        const g = gates.get(user)!;
        const c = await native.connect(srv, how === "query" ? { token: tok[user] } : {});
        if (how === "frame") c.send({ t: "auth", id: "a1", token: tok[user] });
        await g.binding;
        expect((await srv.api("/api/messages", { body: { from: "alice", to: user, body: `early ${how}` } })).status).toBe(200);
        g.release();
        expect(await c.next()).toMatchObject({ t: "welcome", user });
        expect(await c.next()).toMatchObject({ t: "msg", msg: { body: `early ${how}` } });
        await c.close();
      }
    } finally {
      presence.userUp = userUp;
    }
  });

  test("a connection is closed with 4001 when its token expires", async () => {
    const t = await srv.api("/api/users/dave/token", { body: { ttlSec: 1 } });
    const c = await native.connect(srv, { token: t.body.token });
    expect((await c.next()).t).toBe("welcome");
    expect((await c.closed).code).toBe(4001);
  });
});

describe("frames", () => {
  test("heartbeat: ping gets pong with the request id", async () => {
    const c = await login("alice");
    const p = await c.request({ t: "ping" });
    expect(p.t).toBe("pong");
    expect(typeof p.ts).toBe("number");
    await c.close();
  });

  test("heartbeat: pings sent together each get their own id back (pongs of one millisecond are shared by id)", async () => {
    const c = await login("alice");
    const ids = [1, 1, "a", undefined, 2, "a", undefined];
    for (const id of ids) c.send(id === undefined ? '{"t":"ping"}' : `{"t":"ping","id":${JSON.stringify(id)}}`);
    let last = 0;
    for (const id of ids) {
      const p = await c.next();
      expect(p.t).toBe("pong");
      expect(p.id).toBe(id);
      expect(p.ts).toBeGreaterThanOrEqual(last);
      last = p.ts;
    }
    await c.close();
  });

  test("bad frames get error codes and the connection stays open", async () => {
    const c = await login("alice");
    c.send("not json");
    expect(await c.next()).toMatchObject({ t: "error", code: 4000, error: "bad_frame" });
    c.send("[1,2]");
    expect(await c.next()).toMatchObject({ t: "error", code: 4000 });
    expect(await c.request({ t: "teleport" })).toMatchObject({ t: "error", code: 4001, error: "unknown_type" });
    expect(await c.request({ t: "send", to: "bob" })).toMatchObject({ t: "error", code: 4002, error: "bad_request" });
    expect(await c.request({ t: "send", to: "bob", conv: "x", body: 1 })).toMatchObject({ code: 4002 });
    expect(await c.request({ t: "send", to: "nobody", body: 1 })).toMatchObject({ code: 4040, error: "not_found" });
    expect(await c.request({ t: "send", to: "alice", body: 1 })).toMatchObject({ code: 4002 });
    expect(await c.request({ t: "history", conv: "d:bob:carol" })).toMatchObject({ code: 4033, error: "not_member" });
    expect((await c.request({ t: "ping" })).t).toBe("pong");
    await c.close();
  });

  test("a frame over the size limit closes the connection with 1009; the server stays up", async () => {
    const c = await login("alice");
    c.send(JSON.stringify({ t: "send", to: "bob", body: "x".repeat(5000) }));
    expect((await c.closed).code).toBe(1009);
    const h = await fetch(`${srv.url}/healthz`);
    expect(h.status).toBe(200);
  });

  test("msgpack binary frames both ways", async () => {
    const c = await msgpack.login(srv, "carol", { token: tok["carol"] });
    const ack = await c.request({ t: "send", to: "dave", body: { n: 1 }, cmid: "mp-1" });
    expect(ack).toMatchObject({ t: "ack", msg: { conv: "d:carol:dave", seq: 1, dup: false } });
    await c.close();
  });
});

describe("1:1 messages (through the client SDK)", () => {
  test("ack after commit, with server id, seq and time; the online recipient gets it at once", async () => {
    const sql = postgres(dbUrl, { max: 1 });
    const a = await sdk("alice");
    const b = await sdk("bob");
    const ack = await a.client.send({ to: "bob" }, { text: "hello" }, { cmid: "a-1" });
    expect(ack).toMatchObject({ conv: "d:alice:bob", seq: 1, dup: false });
    expect(typeof ack.id).toBe("string");
    expect(Math.abs(ack.ts - Date.now())).toBeLessThan(60_000);
    // committed before the ack: visible from another connection right now
    const rows = await sql`select seq, body from messages where id = ${ack.id}`;
    expect([...rows]).toEqual([{ seq: "1", body: { text: "hello" } }]);
    const push = await b.next("message", (m) => m.conv === "d:alice:bob");
    expect(push).toMatchObject({ id: ack.id, from: "alice", conv: "d:alice:bob", seq: 1, body: { text: "hello" } });
    await sql.end();
    a.close();
    b.close();
  });

  test("a retried send returns the first ack and stores nothing twice", async () => {
    const a = await sdk("alice");
    const one = await a.client.send({ to: "carol" }, "once", { cmid: "retry-1" });
    const two = await a.client.send({ to: "carol" }, "once", { cmid: "retry-1" });
    expect(two).toEqual({ ...one, dup: true });
    const h = await a.request({ t: "history", conv: "d:alice:carol" });
    expect(h.msgs.length).toBe(1);
    a.close();
  });

  test("the sender's other devices get the message", async () => {
    const a1 = await sdk("alice");
    const a2 = await sdk("alice");
    const ack = await a1.client.send({ to: "dave" }, "multi");
    const copy = await a2.next("message", (m) => m.conv === "d:alice:dave");
    expect(copy.id).toBe(ack.id);
    a1.close();
    a2.close();
  });
});

describe("1:1 messages on the wire", () => {
  test("the sending connection gets the ack, not an echo of its message", async () => {
    const a = await login("alice");
    const b = await login("bob");
    const ack = await a.request({ t: "send", to: "bob", body: { text: "no echo" } });
    expect(ack.t).toBe("ack");
    expect((await b.next((f) => f.t === "msg")).msg.id).toBe(ack.msg.id);
    // A frame after the push: had the sender been echoed its message, it came before this pong.
    expect((await a.request({ t: "ping" })).t).toBe("pong");
    expect(a.pending().filter((f) => f.t === "msg")).toEqual([]);
    await a.close();
    await b.close();
  });
});

describe("offline sync (through the client SDK)", () => {
  test("a reconnecting client gets everything after its delivered position, paged, nothing twice", async () => {
    const sender = await sdk("carol");
    const sent: string[] = [];
    for (let i = 0; i < 25; i++) sent.push((await sender.client.send({ to: "bob" }, { i }, { cmid: `off-${i}` })).id);
    sender.close();

    // Pages of 10: the resume follows them to the end (bob also had alice's messages from earlier tests).
    const b = await sdk("bob", { syncPageSize: 10 });
    const seen = b.synced.map((m) => m.id);
    expect(seen.length).toBeGreaterThan(20);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of sent) expect(seen).toContain(id);
    // Each conversation in seq order.
    const carol = b.synced.filter((m) => m.conv === "d:bob:carol").map((m) => m.seq);
    expect(carol).toEqual([...carol].sort((x, y) => x - y));
    await b.client.flush();
    b.close();

    // reconnect: nothing left
    const again = await sdk("bob", { syncPageSize: 10 });
    expect(again.synced).toEqual([]);
    await again.client.flush();
    again.close();
    // a new message while away arrives exactly once
    const c = await sdk("carol");
    await c.client.send({ to: "bob" }, "late");
    const back = await sdk("bob");
    expect(back.synced.map((m) => m.body)).toEqual(["late"]);
    await back.client.flush();
    back.close();
    const last = await sdk("bob");
    expect(last.synced).toEqual([]);
    last.close();
    c.close();
  });

  test("history pages backwards by seq", async () => {
    const b = await sdk("bob");
    const first = await b.request({ t: "history", conv: "d:bob:carol", limit: 10 });
    expect(first.msgs.length).toBe(10);
    expect(first.more).toBe(true);
    const seqs = first.msgs.map((m: any) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    const next = await b.request({ t: "history", conv: "d:bob:carol", limit: 10, before: seqs.at(-1) });
    expect(next.msgs[0].seq).toBe(seqs.at(-1) - 1);
    b.close();
  });
});

describe("http", () => {
  test("server API needs the api key", async () => {
    expect((await srv.api("/api/users/alice", { key: null })).status).toBe(401);
    expect((await srv.api("/api/users/alice", { key: "wrong" })).status).toBe(401);
    const ok = await srv.api("/api/users/alice");
    expect(ok.body).toMatchObject({ id: "alice", nick: "ALICE" });
    expect((await srv.api("/api/users/nobody")).status).toBe(404);
    expect((await srv.api("/api/users", { body: { id: "bad id" } })).status).toBe(400);
  });

  test("healthz reports store and bus", async () => {
    const h = await (await fetch(`${srv.url}/healthz`)).json();
    expect(h).toMatchObject({ status: "ok", store: { driver: "postgres", ok: true }, bus: { state: "ok" } });
  });

  test("the OpenAPI document lists the server API", async () => {
    const doc = await (await fetch(`${srv.url}/openapi/json`)).json();
    expect(Object.keys(doc.paths)).toContain("/api/users");
  });
});
