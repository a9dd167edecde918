// The native protocol end to end: real server on port 0, real Postgres, real WebSocket clients.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { SignJWT } from "jose";
import { protocols } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let srv: TestServer;
let tok: Record<string, string> = {};
let dbUrl: string;

beforeAll(async () => {
  const { freshPgUrl } = await import("../helpers/services.ts");
  dbUrl = await freshPgUrl();
  srv = await startTestServer({ databaseUrl: dbUrl, env: { MAX_FRAME_BYTES: "4096", SEND_RATE: "1000", SEND_BURST: "1000" } });
  for (const u of ["alice", "bob", "carol", "dave"]) tok[u] = await srv.user(u, { nick: u.toUpperCase() });
});
afterAll(() => srv.stop());

const { native, msgpack } = protocols;
/** Logs a user of `beforeAll` in with its token. */
const login = (user: string) => native.login(srv, user, { token: tok[user] });

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

describe("1:1 messages", () => {
  test("ack after commit, with server id, seq and time; the online recipient gets it at once", async () => {
    const sql = postgres(dbUrl, { max: 1 });
    const a = await login("alice");
    const b = await login("bob");
    const ack = await a.request({ t: "send", to: "bob", body: { text: "hello" }, cmid: "a-1" });
    expect(ack.t).toBe("ack");
    expect(ack.msg).toMatchObject({ conv: "d:alice:bob", seq: 1, dup: false });
    expect(typeof ack.msg.id).toBe("string");
    expect(Math.abs(ack.msg.ts - Date.now())).toBeLessThan(60_000);
    // committed before the ack: visible from another connection right now
    const rows = await sql`select seq, body from messages where id = ${ack.msg.id}`;
    expect([...rows]).toEqual([{ seq: "1", body: { text: "hello" } }]);
    const push = await b.next((f) => f.t === "msg");
    expect(push.msg).toMatchObject({ id: ack.msg.id, from: "alice", conv: "d:alice:bob", seq: 1, body: { text: "hello" } });
    // the sending connection gets the ack, not an echo
    expect(a.pending().filter((f) => f.t === "msg")).toEqual([]);
    await sql.end();
    await a.close();
    await b.close();
  });

  test("a retried send returns the first ack and stores nothing twice", async () => {
    const a = await login("alice");
    const one = await a.request({ t: "send", to: "carol", body: "once", cmid: "retry-1" });
    const two = await a.request({ t: "send", to: "carol", body: "once", cmid: "retry-1" });
    expect(two.msg).toEqual({ ...one.msg, dup: true });
    const h = await a.request({ t: "history", conv: "d:alice:carol" });
    expect(h.msgs.length).toBe(1);
    await a.close();
  });

  test("the sender's other devices get the message", async () => {
    const a1 = await login("alice");
    const a2 = await login("alice");
    const ack = await a1.request({ t: "send", to: "dave", body: "multi" });
    const copy = await a2.next((f) => f.t === "msg");
    expect(copy.msg.id).toBe(ack.msg.id);
    await a1.close();
    await a2.close();
  });
});

describe("offline sync", () => {
  test("a reconnecting client gets everything after its delivered position, paged, nothing twice", async () => {
    const sender = await login("carol");
    const sent: string[] = [];
    for (let i = 0; i < 25; i++) sent.push((await sender.request({ t: "send", to: "bob", body: { i }, cmid: `off-${i}` })).msg.id);
    await sender.close();

    const b = await login("bob");
    // bob also had alice's messages from earlier tests; confirm those first
    const seen: string[] = [];
    for (;;) {
      const page = await b.request({ t: "sync", limit: 10 });
      expect(page.t).toBe("sync");
      for (const m of page.msgs) seen.push(m.id);
      const last = new Map<string, number>();
      for (const m of page.msgs) last.set(m.conv, m.seq);
      for (const [conv, seq] of last) expect((await b.request({ t: "delivered", conv, seq })).t).toBe("ok");
      if (!page.more) break;
    }
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of sent) expect(seen).toContain(id);
    await b.close();

    // reconnect: nothing left
    const again = await login("bob");
    expect((await again.request({ t: "sync" })).msgs).toEqual([]);
    // a new message while away arrives exactly once
    const c = await login("carol");
    await c.request({ t: "send", to: "bob", body: "late" });
    const p = await again.request({ t: "sync", mark: true });
    expect(p.msgs.map((m: any) => m.body)).toEqual(["late"]);
    expect((await again.request({ t: "sync" })).msgs).toEqual([]);
    await again.close();
    await c.close();
  });

  test("history pages backwards by seq", async () => {
    const b = await login("bob");
    const first = await b.request({ t: "history", conv: "d:bob:carol", limit: 10 });
    expect(first.msgs.length).toBe(10);
    expect(first.more).toBe(true);
    const seqs = first.msgs.map((m: any) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    const next = await b.request({ t: "history", conv: "d:bob:carol", limit: 10, before: seqs.at(-1) });
    expect(next.msgs[0].seq).toBe(seqs.at(-1) - 1);
    await b.close();
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
