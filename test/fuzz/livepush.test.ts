// Fuzz of the livepush protocol (docs/livepush.md): mutated requests to each endpoint (query strings, form and
// JSON bodies, wrong types, NUL and control characters, huge numbers, junk bodies) are each answered HTTP 200 in
// the app's envelope with a documented `result`, never an HTTP error or an internal error; the server stays up
// and serves a normal client afterwards. Long run: FUZZ_FRAMES=5000 FUZZ_SEED=123 npm test -- test/fuzz/livepush
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Livepush } from "../helpers/livepush.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const N = Number(process.env.FUZZ_FRAMES ?? 300);
let seed = Number(process.env.FUZZ_SEED ?? Date.now() % 100000);
const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;

let srv: TestServer;
const tok: Record<string, string> = {};

beforeAll(async () => {
  srv = await startTestServer({ store: "pglite", env: { SEND_RATE: "100000", SEND_BURST: "100000", LIVEPUSH_POLL_SEC: "1" } });
  for (const u of ["fz1", "fz2"]) tok[u] = await srv.user(u, { role: u === "fz2" ? "host" : "user" });
});
afterAll(() => srv.stop());

const PATHS = ["/app/im/user_conn.php", "/app/mailbox/send_message.php", "/app/im/auto_reply.php", "/app/im/show_auto.php"];
const KEYS = ["uid", "token", "to_uid", "content", "content_type", "audio_time", "charge_photo", "is_hello", "cmid", "ack", "on", "greeting", "replies", "lines", "__proto__", "constructor", ""];

function value(): unknown {
  return pick<() => unknown>([
    () => "fz1",
    () => "fz2",
    () => tok.fz1,
    () => tok.fz2,
    () => "",
    () => "\u0000",
    () => "a\u0000b",
    () => "x".repeat(Math.floor(rnd() * 6000)),
    () => 1e300,
    () => -1,
    () => 1.5,
    () => 7,
    () => 0,
    () => null,
    () => true,
    () => ["fz2", 1],
    () => ({ a: { b: [1] } }),
    () => "fz1,fz2,,fz2",
    () => JSON.stringify(["line", 1]),
    () => "😀\ud800",
  ])();
}

function request(): { path: string; init: RequestInit; query: string } {
  const params: Record<string, unknown> = {};
  if (rnd() < 0.8) params.uid = pick(["fz1", "fz2"]);
  if (rnd() < 0.8) params.token = params.uid === "fz2" ? tok.fz2 : tok.fz1;
  for (let i = Math.floor(rnd() * 6); i > 0; i--) params[pick(KEYS)] = value();
  const path = pick(PATHS);
  const how = pick(["query", "form", "json", "junk"]);
  const str = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  if (how === "query") return { path, query: new URLSearchParams(Object.entries(params).map(([k, v]) => [k, str(v)])).toString(), init: { method: pick(["GET", "POST"]) } };
  if (how === "form")
    return { path, query: "", init: { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(Object.entries(params).map(([k, v]) => [k, str(v)])).toString() } };
  if (how === "json") return { path, query: "", init: { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(params) } };
  return { path, query: "", init: { method: "POST", headers: { "content-type": pick(["application/json", "text/plain", "multipart/form-data"]) }, body: pick(["{", "[]", "null", "%%%", "\u0000", "a=b&&&=", "[1,2]"]) } };
}

test(`${N} mutated requests are each answered in the envelope with a documented result (seed ${seed})`, async () => {
  const bad: string[] = [];
  for (let i = 0; i < N; i += 30) {
    await Promise.all(
      Array.from({ length: Math.min(30, N - i) }, async () => {
        const r = request();
        const res = await fetch(`${srv.url}${r.path}${r.query ? `?${r.query}` : ""}`, r.init);
        const text = await res.text();
        let body: any;
        try {
          body = JSON.parse(text);
        } catch {}
        if (res.status !== 200 || body?.code !== 200 || ![1, 2, 3, 4, 5, 6, 7].includes(body?.data?.result)) bad.push(`${r.path} ${r.init.method} ${res.status} ${text.slice(0, 200)}`);
      }),
    );
  }
  expect(bad).toEqual([]);
  // Still serving.
  const a = new Livepush(srv.url, "fz1", tok.fz1!);
  expect((await a.send({ to_uid: "fz2", content: "after the fuzz" })).data.result).toBe(1);
  expect((await new Livepush(srv.url, "fz2", tok.fz2!).msgs()).some((m) => m.content === "after the fuzz")).toBe(true);
}, 120_000);
