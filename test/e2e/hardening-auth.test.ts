// Credentials end to end: token lifetimes, tokens registered through J-IM initUser, the password-login attempt
// limits (one node, and two nodes sharing Redis), and /metrics behind its key. Real servers, Postgres, Redis.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { SignJWT } from "jose";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { TestCluster, userToken, type NodeProc } from "../helpers/procs.ts";
import { freshPgUrl } from "../helpers/services.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const SECRET = new TextEncoder().encode("test-secret-test-secret-test-secret-42");
const md5 = (s: string) => createHash("md5").update(s).digest("hex");
const now = () => Math.floor(Date.now() / 1000);

/** A JWT of the test secret for `sub`, with exactly the claims given. */
async function jwt(sub: string, claims: { exp?: number; iat?: number }): Promise<string> {
  const j = new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setSubject(sub);
  if (claims.iat !== undefined) j.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) j.setExpirationTime(claims.exp);
  return j.sign(SECRET);
}

/** A J-IM handshake: the login answer's code (10007 in, 10008 refused). */
/** A J-IM login's answer code, or the close code when the connection ended first (e.g. 4001: the user was disabled
 * while its login was under way). */
async function jimLogin(wsBase: string, query: Record<string, string>): Promise<number> {
  const c = await Client.connect(`${wsBase}/jim?${new URLSearchParams(query)}`);
  const r: { code: number } = await c.next().catch(() => c.closed);
  c.ws.close();
  return r.code;
}

/** A rooms handshake with an account: "in" when logged in, else the error frame's code. */
async function roomsLogin(wsBase: string, account: string, password: string): Promise<string | number> {
  const q = { name: account, senderType: "GROUP", userId: account, roomName: "lobby", account, password };
  const c = await Client.connect(`${wsBase}/rooms?${new URLSearchParams(q)}`);
  const r = await c.next();
  c.ws.close();
  return r.messageType === "notice" ? r.action : r.code;
}

describe("client tokens", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { TOKEN_MAX_TTL_SEC: "3600", METRICS_KEY: "metrics-key-0123456789" } });
    await srv.user("tina");
  });
  afterAll(() => srv.stop());

  test("a JWT without exp, or living longer than TOKEN_MAX_TTL_SEC, is refused by every login", async () => {
    const t = now();
    const bad = [await jwt("tina", {}), await jwt("tina", { iat: t }), await jwt("tina", { iat: t, exp: t + 7200 }), await jwt("tina", { exp: t + 7200 }), await jwt("tina", { iat: t - 7200, exp: t + 60 })];
    for (const token of bad) {
      const c = await Client.connect(`${srv.wsUrl}/ws`);
      expect(await c.request({ t: "auth", token })).toMatchObject({ t: "error", code: 4010, error: "unauthorized" });
      expect((await c.closed).code).toBe(4001);
      expect(await jimLogin(srv.wsUrl, { token })).toBe(10008);
    }
    const good = await jwt("tina", { iat: t, exp: t + 1800 });
    expect(await jimLogin(srv.wsUrl, { token: good })).toBe(10007);
    const c = await Client.connect(`${srv.wsUrl}/ws`);
    expect(await c.request({ t: "auth", token: good })).toMatchObject({ t: "welcome", user: "tina" });
    c.ws.close();
  });

  test("the server issues tokens up to TOKEN_MAX_TTL_SEC and refuses longer ones with 400", async () => {
    const long = await srv.api("/api/users/tina/token", { body: { ttlSec: 3601 } });
    expect(long).toMatchObject({ status: 400, body: { code: 4002, error: "bad_request" } });
    expect(long.body.message).toContain("TOKEN_MAX_TTL_SEC");
    const max = await srv.api("/api/users/tina/token", { body: { ttlSec: 3600 } });
    expect(max.status).toBe(200);
    await Client.native(srv.wsUrl, max.body.token, "tina").then((c) => c.ws.close());
  });

  test("an oversized token in an auth frame is a bad token: 4010, then close 4001", async () => {
    const c = await Client.connect(`${srv.wsUrl}/ws`);
    expect(await c.request({ t: "auth", token: "x".repeat(5000) })).toMatchObject({ t: "error", code: 4010, error: "unauthorized" });
    expect((await c.closed).code).toBe(4001);
  });

  test("with METRICS_KEY, /metrics needs it as a bearer token", async () => {
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${srv.url}/metrics`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const ok = await fetch(`${srv.url}/metrics`, { headers: { authorization: "Bearer metrics-key-0123456789" } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("chat_connections");
  });
});

describe("tokens registered through J-IM initUser", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(() => srv.stop());

  test("a registration proved by a JWT ends with the JWT; an expired JWT registers and renews nothing", async () => {
    await srv.user("shorty");
    // At least a second of life left whenever within the second it is made (`now()` rounds down): with `+ 1`, a
    // token made late in a second was already expired when the next one began.
    const exp = now() + 2;
    const token = await jwt("shorty", { iat: now(), exp });
    const init = (key?: null) => srv.api("/im/vanke/initUser", { body: { senderId: "shorty", token, type: 0 }, key });
    expect((await init(null)).status).toBe(200);
    expect(await jimLogin(srv.wsUrl, { token })).toBe(10007);
    // The JWT's own life is the subject here: wait until it is over.
    await Bun.sleep(exp * 1000 - Date.now() + 50);
    expect(await jimLogin(srv.wsUrl, { token })).toBe(10008);
    expect((await init(null)).status).toBe(401); // cannot renew itself
    expect(await jimLogin(srv.wsUrl, { token })).toBe(10008);
    const info = await srv.api("/im/vanke/chatInfo", { body: { to: "shorty", from: "x", token }, key: null });
    expect(info.status).toBe(401);
    const rooms = await Client.connect(`${srv.wsUrl}/rooms?${new URLSearchParams({ name: "s", userId: "shorty", roomName: "r", token })}`);
    expect(await rooms.next()).toMatchObject({ messageType: "error", code: 4010 });
    // an expired JWT of ours is nothing, even to the server key (which registers opaque tokens for 7 days)
    expect((await init()).status).toBe(401);
    expect(await jimLogin(srv.wsUrl, { token })).toBe(10008);
  });

  test("a registered token proving itself keeps its end: a client never extends its own registration", async () => {
    await srv.user("opaque");
    const body = { senderId: "opaque", token: "opaque-app-token-1", type: 0 };
    expect((await srv.api("/im/vanke/initUser", { body })).status).toBe(200); // with the key: 7 days
    const sql = (await import("postgres")).default(srv.app.cfg.databaseUrl!, { max: 1 });
    const hash = createHash("sha256").update(body.token).digest("hex");
    const end = async () => (await sql`select expires_at from app_tokens where hash = ${hash}`)[0]!.expires_at.getTime() as number;
    await sql`update app_tokens set expires_at = now() + interval '1 hour' where hash = ${hash}`;
    const before = await end();
    expect((await srv.api("/im/vanke/initUser", { body, key: null })).status).toBe(200);
    expect(await end()).toBe(before);
    await sql.end();
  });
});

describe("a JWT registered for 7 days before these rules", () => {
  test("does not log in past its own exp", async () => {
    const srv = await startTestServer();
    try {
      await srv.user("legacy");
      const token = await jwt("legacy", { iat: now() - 120, exp: now() - 60 });
      const sql = (await import("postgres")).default(srv.app.cfg.databaseUrl!, { max: 1 });
      const hash = createHash("sha256").update(token).digest("hex");
      await sql`insert into app_tokens (hash, user_id, expires_at) values (${hash}, 'legacy', now() + interval '7 days')`;
      await sql.end();
      expect(await jimLogin(srv.wsUrl, { token })).toBe(10008);
      expect((await srv.api("/im/vanke/chatInfo", { body: { to: "legacy", from: "x", token }, key: null })).status).toBe(401);
    } finally {
      await srv.stop();
    }
  });
});

describe("password-login attempt limits", () => {
  const limits = { LOGIN_MAX_PER_ACCOUNT_ADDRESS: "5", LOGIN_MAX_PER_ACCOUNT: "50", LOGIN_MAX_PER_ADDRESS: "100", LOGIN_WINDOW_SEC: "900" };
  // Listening on "::" a client reaches the server from two addresses: 127.0.0.1 (IPv4-mapped) and ::1.
  const v6 = (srv: TestServer) => `ws://[::1]:${srv.port}`;

  async function accounts(srv: TestServer, id: string) {
    expect((await srv.api("/api/users", { body: { id, password: `pw-${id}` } })).status).toBe(200);
    const r = await srv.api(`/api/rooms-protocol/accounts/default/${id}`, { method: "PUT", body: { user: id, password: `pw-${id}` } });
    expect(r.status).toBe(200);
  }

  /**
   * 40 wrong passwords at once from 127.0.0.1 on `wrongOn` nodes; the right one is sent while they are in flight
   * (as soon as the first answer is back) and is refused; from ::1 the owner still logs in.
   */
  async function burst(wrongOn: TestServer[], rightOn: TestServer, other: TestServer, login: (base: string, pw: string) => Promise<string | number>, right: string, wrong: string, refused: string | number, ok: string | number) {
    const wrongs = Array.from({ length: 40 }, (_, i) => login(wrongOn[i % wrongOn.length]!.wsUrl, wrong));
    await Promise.race(wrongs);
    expect(await login(rightOn.wsUrl, right)).toBe(refused);
    expect(new Set(await Promise.all(wrongs))).toEqual(new Set([refused]));
    // still locked for the guessing address, open for the owner elsewhere
    expect(await login(rightOn.wsUrl, right)).toBe(refused);
    expect(await login(v6(other), right)).toBe(ok);
  }

  describe("one node", () => {
    let srv: TestServer;
    beforeAll(async () => {
      srv = await startTestServer({ env: { HOST: "::", ...limits } });
      await accounts(srv, "jpw");
      await accounts(srv, "rpw");
    });
    afterAll(() => srv.stop());

    test("J-IM username/password: a concurrent burst of 40 wrong guesses and the right one does not log in", async () => {
      const login = (base: string, password: string) => jimLogin(base, { username: "jpw", password });
      await burst([srv], srv, srv, login, "pw-jpw", "wrong", 10008, 10007);
    });

    test("rooms accounts: the same", async () => {
      const login = (base: string, password: string) => roomsLogin(base, "rpw", password);
      await burst([srv], srv, srv, login, md5("pw-rpw"), md5("wrong"), 4010, "in");
    });
  });

  describe("two nodes sharing Redis", () => {
    let a: TestServer;
    let b: TestServer;
    beforeAll(async () => {
      const databaseUrl = await freshPgUrl();
      const env = { HOST: "::", REDIS_PREFIX: `t${process.pid}${Date.now().toString(36)}:`, ...limits };
      a = await startTestServer({ databaseUrl, bus: "redis", env });
      b = await startTestServer({ databaseUrl, bus: "redis", env });
      await accounts(a, "cjpw");
      await accounts(a, "crpw");
    }, 30_000);
    afterAll(async () => {
      await a.stop();
      await b.stop();
    });

    test("J-IM: a burst spread over both nodes meets one limit", async () => {
      const login = (base: string, password: string) => jimLogin(base, { username: "cjpw", password });
      await burst([a, b], b, a, login, "pw-cjpw", "wrong", 10008, 10007);
    });

    test("rooms: the same", async () => {
      const login = (base: string, password: string) => roomsLogin(base, "crpw", password);
      await burst([a, b], a, b, login, md5("pw-crpw"), md5("wrong"), 4010, "in");
    });
  });
});

describe("a user disabled on one node, across a cluster (2 processes over Redis)", () => {
  const cluster = new TestCluster();
  beforeAll(() => cluster.start(2, "uc"), 60_000);
  afterAll(() => cluster.stop());

  /** `p`, or a failure once `ms` have passed. */
  const within = <T>(p: Promise<T>, ms: number, what: string) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms))]);

  test("its connections on the other node end at once, and every protocol there refuses its logins and sends to it", async () => {
    const [a, b] = cluster.nodes as [NodeProc, NodeProc];
    const tok = await userToken(a, "gone");
    const bobTok = await userToken(a, "bob");
    expect((await a.api("/api/desk/groups/g1", { name: "g1" }, "PUT")).status).toBe(200);
    const roomsUrl = `${b.wsUrl}/rooms?${new URLSearchParams({ name: "G", userId: "gone", roomName: "lobby", token: tok })}`;
    const deskLogin = { api_key: 31000, call_type: 1, token: tok, group_id: "g1" };

    // logged in on node B with every protocol (node B now holds the user as active)
    const native = await Client.native(b.wsUrl, tok, "gone");
    const jim = await protocols.jim.connect(b, { token: tok });
    expect((await jim.next()).code).toBe(10007);
    const rooms = await Client.connect(roomsUrl);
    expect(await rooms.next()).toMatchObject({ messageType: "notice", action: "in" });
    const desk = await protocols.desk.connect(b);
    expect(await desk.request(deskLogin)).toMatchObject({ code: 200 });
    const bob = await Client.native(b.wsUrl, bobTok, "bob");
    cluster.clients.push(native, jim, rooms, desk, bob);
    expect(await bob.request({ t: "send", to: "gone", body: "hi" })).toMatchObject({ t: "ack" });

    expect((await a.api("/api/users", { id: "gone", disabled: true })).status).toBe(200);
    for (const c of [native, jim, rooms, desk]) expect((await within(c.closed, 1000, "close")).code).toBe(4001);

    await expect(Client.native(b.wsUrl, tok, "gone")).rejects.toThrow();
    expect(await jimLogin(b.wsUrl, { token: tok })).toBe(10008);
    const r = await Client.connect(roomsUrl);
    expect(await r.next()).toMatchObject({ messageType: "error", code: 4010 });
    const d = await protocols.desk.connect(b, { keep: cluster.clients });
    expect((await d.request(deskLogin)).code).toBeLessThan(0);
    expect(await bob.request({ t: "send", to: "gone", body: "still there?" })).toMatchObject({ t: "error", error: "not_found" });
  });

  test("a node that had the user cached refuses its next login at once (no connection open there)", async () => {
    const [a, b] = cluster.nodes as [NodeProc, NodeProc];
    const tok = await userToken(a, "gone2");
    (await Client.native(b.wsUrl, tok, "gone2")).ws.close();
    expect(await jimLogin(b.wsUrl, { token: tok })).toBe(10007);
    expect((await a.api("/api/users", { id: "gone2", disabled: true })).status).toBe(200);
    // The invalidation travels over Redis; a login attempt is a real request each time, for at most a second.
    const deadline = Date.now() + 1000;
    let code = await jimLogin(b.wsUrl, { token: tok });
    while (code !== 10008 && Date.now() < deadline) code = await jimLogin(b.wsUrl, { token: tok });
    expect(code).toBe(10008);
    await expect(Client.native(b.wsUrl, tok, "gone2")).rejects.toThrow();
  });
});
