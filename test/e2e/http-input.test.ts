// HTTP input hardening: authentication comes before parsing, bodies are limited before they are read, and
// bad input is a 400 with a JSON message on every route family (never a 500).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { API_KEY, startTestServer, type TestServer } from "../helpers/server.ts";

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer({ env: { MAX_BODY_BYTES: "65536" } });
  await srv.user("ann");
  await srv.user("ben");
  expect((await srv.api("/api/groups", { body: { id: "g1", kind: "user", owner: "ann", members: ["ben"] } })).status).toBe(200);
  expect((await srv.api("/api/desk/groups/dg", { method: "PUT", body: { name: "dg" } })).status).toBe(200);
}, 30_000);
afterAll(() => srv.stop());

/** A raw request: `body` is sent as is (a string), with the API key unless `key` is null. */
async function raw(method: string, path: string, body?: string, key: string | null = API_KEY) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers.authorization = `apikey ${key}`;
  const res = await fetch(srv.url + path, { method, headers, body });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

describe("authentication before parsing", () => {
  const cases: [string, string, string][] = [
    ["POST", "/api/users", '{"id": 5}'],
    ["POST", "/api/users", "{not json"],
    ["POST", "/api/messages", '{"from": []}'],
    ["PUT", "/api/desk/agents/ann", '{"capacity": "x"}'],
    ["PUT", "/api/rooms/r1", '{"slowModeSec": -1}'],
    ["POST", "/api/groups", "[]"],
    ["GET", "/api/users/ann/conversations?limit=abc", ""],
  ];
  for (const [method, path, body] of cases) {
    test(`${method} ${path} ${body} without a key: 401, not 400`, async () => {
      const r = await raw(method, path, body || undefined, null);
      expect(r.status).toBe(401);
      expect(r.json).toMatchObject({ code: 4010, error: "unauthorized" });
      const wrong = await raw(method, path, body || undefined, "wrong-key");
      expect(wrong.status).toBe(401);
    });
  }
});

describe("body limit", () => {
  test("a Content-Length over the limit gets 413 at once, without the body being read", async () => {
    const sock = await new Promise<import("bun").Socket>((resolve, reject) => {
      let got = "";
      let done: (s: string) => void;
      const answered = new Promise<string>((r) => (done = r));
      Bun.connect({
        hostname: "127.0.0.1",
        port: srv.port,
        socket: {
          open(s) {
            (s as any).answered = answered;
            resolve(s);
          },
          data(_s, d) {
            got += d.toString();
            if (got.includes("\r\n\r\n")) done(got);
          },
          error(_s, e) {
            reject(e);
          },
        },
      });
    });
    // 100 MB announced, a few bytes sent: the answer comes without the rest.
    sock.write(`POST /api/users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{"id":`);
    const head: string = await (sock as any).answered;
    expect(head.split("\r\n")[0]).toContain("413");
    sock.end();
  });

  test("an unauthenticated Content-Length over the limit gets 413 as well (nothing is read)", async () => {
    const r = await raw("POST", "/api/users", JSON.stringify({ id: "big", nick: "x".repeat(70_000) }), null);
    expect(r.status).toBe(413);
  });

  test("a chunked body over the limit gets 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
    let n = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (n++ < 8) c.enqueue(chunk);
        else c.close();
      },
    });
    const res = await fetch(srv.url + "/api/users", { method: "POST", headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" }, body });
    expect(res.status).toBe(413);
  });

  test("a chunked body under the limit is served", async () => {
    const text = JSON.stringify({ id: "chunky", nick: "C" });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(text.slice(0, 5)));
        c.enqueue(new TextEncoder().encode(text.slice(5)));
        c.close();
      },
    });
    const res = await fetch(srv.url + "/api/users", { method: "POST", headers: { authorization: `apikey ${API_KEY}`, "content-type": "application/json" }, body });
    expect(res.status).toBe(200);
    expect((await res.json()).id).toBe("chunky");
  });
});

describe("bad input is a 400 with a message, on every route family", () => {
  const NUL = "%00";
  const cases: [string, string, unknown?][] = [
    // users
    ["GET", `/api/users/a${NUL}b`],
    ["POST", `/api/users/a${NUL}b/token`, {}],
    ["POST", "/api/users", { id: "a\u0000b" }],
    // messaging
    ["POST", "/api/messages", { from: "ann\u0000", to: "ben", body: "x" }],
    ["POST", "/api/messages", { from: "ann", to: "ben\u0000", body: "x" }],
    ["POST", "/api/messages", { from: "ann", conv: "g:g1\u0000", body: "x" }],
    ["GET", "/api/users/ann/conversations?since=1e300"],
    ["GET", "/api/users/ann/conversations?before=10.5"],
    ["GET", "/api/users/ann/conversations?limit=-5"],
    ["GET", `/api/users/ann${NUL}/conversations`],
    ["GET", "/api/conversations/d:ann:ben/messages?user=ann&before=10.5"],
    ["GET", "/api/conversations/d:ann:ben/messages?user=ann&from=1e300"],
    ["GET", `/api/conversations/d:ann:ben/messages?user=ann${NUL}`],
    ["GET", `/api/conversations/d:ann${NUL}:ben/messages?user=ann`],
    // groups
    ["GET", `/api/groups/g1${NUL}`],
    ["PATCH", "/api/groups/g1", {}],
    ["PATCH", `/api/groups/g1${NUL}`, { name: "x" }],
    ["POST", "/api/groups/g1/members", { users: ["a\u0000"] }],
    ["DELETE", `/api/groups/g1/members/ben${NUL}`],
    ["PUT", `/api/groups/g1/members/ben${NUL}`, { role: "admin" }],
    ["GET", "/api/groups?kind=user&limit=1e300"],
    // live rooms
    ["GET", `/api/rooms/r${NUL}`],
    ["GET", "/api/rooms/r1/messages?before=10.5"],
    ["GET", "/api/rooms/r1/messages?after=1e300"],
    // social
    ["GET", `/api/users/ann${NUL}/friends`],
    ["POST", "/api/users/ann/friend-requests", { to: "ben\u0000" }],
    ["PUT", `/api/users/ann/blocks/ben${NUL}`],
    ["PUT", `/api/users/ann/follows/ben${NUL}`],
    ["GET", "/api/users/ann/followers?limit=10.5"],
    ["GET", `/api/users/ann/followers?after=a${NUL}`],
    // desk
    ["PUT", "/api/desk/agents/ann", { group: "dg", capacity: "" }],
    ["PUT", "/api/desk/agents/ann", { group: "dg\u0000" }],
    ["GET", `/api/desk/groups/dg${NUL}/state`],
    ["GET", `/api/desk/agents?group=dg${NUL}`],
    // rooms protocol
    ["GET", `/api/rooms-protocol/containers/c${NUL}`],
    ["PUT", `/api/rooms-protocol/accounts/default/a${NUL}`, { user: "ann", password: "x" }],
    // presence
    ["GET", "/api/presence/roles/host/sample?n=1e300"],
    // J-IM
    ["POST", "/im/vanke/chatInfo", { to: "ann\u0000", from: "ben" }],
    ["POST", "/im/vanke/initUser", { senderId: "a\u0000", token: "t" }],
  ];
  for (const [method, path, body] of cases) {
    test(`${method} ${path} ${body === undefined ? "" : JSON.stringify(body)}`, async () => {
      const r = await raw(method, path, body === undefined ? undefined : JSON.stringify(body));
      expect(r.status).toBe(400);
      expect(typeof (r.json?.message ?? r.json?.msg)).toBe("string");
    });
  }
});
