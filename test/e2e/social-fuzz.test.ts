// Mutated requests to every social interface: each is answered in the protocol's format (`datas` or
// `error_code`), never with a 500, and the server stays up. A fixed seed: a failure is reproducible.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { API_KEY, startTestServer, type TestServer } from "../helpers/server.ts";

const BASE = "/anlife/v1.0/chat";
const PATHS = [
  "user/getUserList",
  "message/sendMessage",
  "message/sendGroupMessage",
  "message/updateMessageReceiveStatus",
  "message/updateMessageReadStatus",
  "message/getOfflineMessage",
  "user/addUserToBlacklist",
  "user/delUserFromBlacklist",
  "user/getUserBlacklist",
  "user/isInBlacklist",
  "user/addFriendApply",
  "user/getFriendApplyList",
  "user/agreeFriendApply",
  "user/refuseFriendApply",
  "user/deleteFriend",
  "cms/sendMessage",
  "cms/getServiceMsg",
];
const PARAMS = ["to_uid", "send_type", "group_type", "message", "msg_id", "status", "belong_id", "search_type", "page", "page_size", "comment", "relation_apply_id", "service_id", "user_id", "msg_type", "cmid", "uid"];
const VALUES: unknown[] = [
  "",
  "0",
  "-1",
  "1e300",
  "9".repeat(40),
  "\u0000",
  "a\u0000b",
  "\ud800",
  "__proto__",
  "constructor",
  "1,2,,3",
  ",".repeat(200),
  "x".repeat(5000),
  1.5,
  -5,
  1e300,
  null,
  true,
  [],
  [1, 2],
  {},
  { __proto__: { x: 1 } },
  { msg_type: 1, body: { text: "\u0000" } },
  { msg_type: "2", body: { id: "../../etc", format: "x y", width: -1 } },
  { msg_type: 3, body: { title: { toString: 1 } } },
  '{"msg_type":1,"body":{"text":"ok"}}',
  '{"msg_type":1,"body":"text"}',
  "101",
  "102",
  "g1",
];

let seed = 20261206;
const rnd = (n: number) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const pick = <T>(a: T[]) => a[rnd(a.length)]!;

let srv: TestServer;
let token = "";

beforeAll(async () => {
  srv = await startTestServer({ store: "pglite", env: { SEND_RATE: "100000", SEND_BURST: "100000" } });
  token = await srv.user("101", { nick: "a" });
  await srv.user("102", { nick: "b" });
  await srv.user("900", { role: "service" });
  await srv.api("/api/groups", { body: { id: "g1", kind: "interest", owner: "101", members: ["102"] } });
});
afterAll(() => srv.stop());

test("600 mutated requests: each answered in the protocol's format, none a 500", async () => {
  for (let i = 0; i < 600; i++) {
    const path = pick(PATHS);
    const params: Record<string, unknown> = {};
    for (let k = rnd(5) + 1; k > 0; k--) params[pick(PARAMS)] = pick(VALUES);
    const json = rnd(2) === 0;
    const headers: Record<string, string> = { authorization: path.startsWith("cms/") ? `apikey ${API_KEY}` : `Bearer ${token}` };
    let body: string;
    if (json) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(params);
    } else {
      headers["content-type"] = "application/x-www-form-urlencoded";
      body = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v) ?? ""])).toString();
    }
    const res = await fetch(`${srv.url}${BASE}/${path}`, { method: "POST", headers, body });
    const text = await res.text();
    const where = `${path} ${body.slice(0, 300)} → ${res.status} ${text.slice(0, 300)}`;
    expect(res.status, where).toBe(200);
    const a = JSON.parse(text);
    expect("datas" in a || typeof a.error_code === "string", where).toBe(true);
  }
  // Raw bodies that are not what their content type says.
  for (const [type, body] of [
    ["application/json", "{"],
    ["application/json", "[1,2]"],
    ["application/json", "null"],
    ["multipart/form-data; boundary=x", "--x\r\nbroken"],
    ["text/plain", "\u0000\u0001"],
  ]) {
    const res = await fetch(`${srv.url}${BASE}/message/sendMessage`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": type! }, body });
    expect(res.status).toBe(200);
    expect((await res.json()).error_code).toBe("10000");
  }
  expect((await fetch(`${srv.url}/healthz`)).status).toBe(200);
});
