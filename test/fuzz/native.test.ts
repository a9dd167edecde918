// Fuzz of the native protocol (/ws, docs/protocol.md), JSON and msgpack: mutations of every documented frame
// type. Every request is answered (its reply or an error, carrying its `id` when it had one), the connection
// stays open except where documented (a refused `auth`: 4001; a frame over MAX_FRAME_BYTES: 1009), no internal
// error, the server process stays up, and a normal client is served afterwards.
// Long run: FUZZ_FRAMES=100000 FUZZ_SEED=123 npm test -- test/fuzz
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { pack, unpack } from "msgpackr";
import { Client } from "../helpers/client.ts";
import type { NodeProc } from "../helpers/procs.ts";
import { Conn } from "./lib/conn.ts";
import { fuzz, report, type Protocol } from "./lib/harness.ts";
import { mutateJson, mutateMsgpack, type Mutator, type Wire } from "./lib/mutate.ts";
import { fuzzSettings } from "./lib/prng.ts";
import { CI_FRAMES, fuzzTarget, MAX_FRAME_BYTES, tokensFor, WORKERS } from "./lib/target.ts";

let node: NodeProc;
let tokens: Map<string, string>;
const { seed, frames, waitMs } = fuzzSettings(CI_FRAMES);

const USERS = ["fz0", "fz1", "fz2", "fz3", "fz4", "fz5", "fz6", "fz7", "bob", "carol"];
/** Push frames: never a reply. */
const PUSHES = new Set(["msg", "receipt", "receipts", "recall", "member", "friend", "room", "resync", "gap", "welcome"]);

function mutator(): Mutator {
  const t = (u: string) => tokens.get(u)!;
  const seeds: Record<string, unknown>[] = [
    { t: "ping", id: 7 },
    { t: "auth", id: 1, token: t("fz0") },
    { t: "send", id: 2, to: "bob", kind: "text", body: { text: "hi" }, cmid: "c1" },
    { t: "send", id: 3, conv: "g:team", body: { text: "hi all" } },
    { t: "send", id: 3, conv: "d:bob:fz0", body: "x", cmid: "c2" },
    { t: "sync", id: 3, limit: 100 },
    { t: "sync", id: 3, conv: "d:bob:fz0", limit: 10, after: { conv: "d:bob:fz0", seq: 1 }, mark: true },
    { t: "delivered", id: 4, conv: "d:bob:fz0", seq: 4 },
    { t: "read", id: 5, conv: "g:team", seq: 1 },
    { t: "receipts", id: 8, conv: "g:team", from: 1, to: 2 },
    { t: "readers", id: 9, conv: "g:team", seq: 2 },
    { t: "history", id: 6, conv: "d:bob:fz0", limit: 50, before: 120 },
    { t: "history", id: 6, conv: "r:live1", after: 0, from: 0, to: 1795360809407, desc: true },
    { t: "convs", id: 10, kind: "group", since: 1795190400000, awaiting: true, limit: 100, empty: true, before: 1795360809407 },
    { t: "recall", id: 11, msg: "382913151110717440" },
    { t: "recall", id: 12, cmid: "c1" },
    { t: "group_create", id: 1, kind: "user", name: "Team", members: ["bob"], attributes: { area: "elm" } },
    { t: "group_info", id: 2, group: "team" },
    { t: "group_members", id: 3, group: "team" },
    { t: "group_join", id: 4, group: "cats" },
    { t: "group_leave", id: 5, group: "cats" },
    { t: "group_add", id: 6, group: "team", users: ["carol"] },
    { t: "group_remove", id: 7, group: "team", user: "carol" },
    { t: "group_role", id: 8, group: "team", user: "bob", role: "admin" },
    { t: "group_mute", id: 9, group: "team", user: "carol", seconds: 600 },
    { t: "group_update", id: 10, group: "team", name: "Core team", avatar: "", attributes: {} },
    { t: "group_dissolve", id: 11, group: "cats" },
    { t: "group_discover", id: 12, kind: "neighbourhood", area: "elm" },
    { t: "join_room", id: 1, room: "live1" },
    { t: "leave_room", id: 2, room: "live1" },
    { t: "room_send", id: 3, room: "live1", kind: "danmaku", body: { text: "666" } },
    { t: "room_send", id: 4, room: "live1", class: "must", kind: "gift", body: { gid: 8, num: 3 }, cmid: "g1" },
    { t: "friend_request", id: 1, user: "bob", note: "hi" },
    { t: "friend_answer", id: 2, user: "bob", accept: true },
    { t: "friend_requests", id: 3, dir: "in", status: "pending" },
    { t: "friends", id: 4 },
    { t: "friend_remark", id: 5, user: "bob", remark: "Bobby" },
    { t: "friend_remove", id: 6, user: "bob" },
    { t: "block", id: 7, user: "carol" },
    { t: "unblock", id: 8, user: "carol" },
    { t: "blocks", id: 9 },
    { t: "follow", id: 10, user: "bob" },
    { t: "unfollow", id: 11, user: "bob" },
    { t: "followers", id: 12, user: "bob", limit: 100, after: "fz1" },
    { t: "following", id: 13 },
  ];
  const types = [...new Set(seeds.map((s) => s.t as string))];
  return {
    seeds,
    keys: ["t", "id", "to", "conv", "kind", "body", "cmid", "limit", "after", "mark", "seq", "before", "from", "group", "users", "user", "room", "class", "token", "members", "attributes", "role", "seconds", "msg"],
    values: [...USERS, ...types, "g:team", "d:bob:fz0", "d:fz0:fz1", "r:live1", "team", "cats", "live1", "must", "droppable", "user", "interest", "service", "owner", "admin", t("fz1"), "not.a.jwt", 1, 500, 501],
    typeKeys: ["t", "id"],
  };
}

/** What the server decodes from this frame (the same decoders as the server's). */
function decode(w: Wire): unknown {
  try {
    return "text" in w ? JSON.parse(w.text) : unpack(w.binary);
  } catch {
    return undefined;
  }
}

/** The reply's id is the request's (msgpack cannot carry a lone surrogate: it comes back as replacement characters). */
const sameId = (a: unknown, b: unknown) =>
  a === b ||
  (typeof a === "string" && typeof b === "string" && (unpack(pack(a)) === b || unpack(pack(b)) === a)) ||
  (typeof a === "number" && typeof b === "number" && Number.isNaN(a) && Number.isNaN(b));

/** `anonymous`: connections without a token (what anyone may send before authenticating). */
function protocol(format: "json" | "msgpack", anonymous = false): Protocol {
  const m = mutator();
  return {
    name: `native/${format}${anonymous ? "/anonymous" : ""}`,
    async connect(i) {
      if (anonymous) return Conn.open(`${node.wsUrl}/ws${format === "msgpack" ? "?format=msgpack" : ""}`);
      const user = `fz${(format === "json" ? 0 : 4) + i}`;
      const c = await Conn.open(`${node.wsUrl}/ws?token=${tokens.get(user)}${format === "msgpack" ? "&format=msgpack" : ""}`);
      const w = await c.wait((f) => f.t === "welcome", 5000);
      if (!("frame" in w)) throw new Error(`no welcome for ${user}: ${JSON.stringify(w)}`);
      return c;
    },
    generate: (r) => (format === "msgpack" && r.chance(0.8) ? mutateMsgpack(r, m) : mutateJson(r, m)),
    answer(w) {
      const f = decode(w) as any;
      const obj = typeof f === "object" && f !== null && !Array.isArray(f);
      const id = obj ? f.id : undefined;
      if (typeof id === "string" || typeof id === "number") return (x) => x != null && sameId(x.id, id);
      const t = obj ? f.t : undefined;
      // Without an id the reply is the next frame that is not a push (a refused `auth` gets its error, a
      // good one a welcome).
      return (x) => x != null && x.id === undefined && (!PUSHES.has(x.t) || x.t === t || (x.t === "welcome" && t === "auth"));
    },
    closeAfter(w, answer) {
      const f = decode(w) as any;
      if (f?.t === "auth" && (answer === undefined || answer?.code === 4010)) return [4001];
      return undefined;
    },
    fault: (f) => (f?.t === "error" && f.code === 5000 ? "internal error (5000)" : undefined),
  };
}

async function healthy(): Promise<void> {
  const c = await Client.native(node.wsUrl, tokens.get("carol")!, "carol");
  const ack = await c.ok({ t: "send", to: "bob", body: { text: "after the fuzz" }, cmid: `after-${Date.now()}` });
  expect(ack.msg.conv).toBe("d:bob:carol");
  expect((await c.ok({ t: "ping" })).t).toBe("pong");
  await c.close();
}

beforeAll(async () => {
  node = await fuzzTarget("native");
  tokens = await tokensFor(node, USERS);
  expect((await node.api("/api/groups", { id: "team", kind: "interest", owner: "bob", name: "Team", members: USERS })).status).toBe(200);
  expect((await node.api("/api/rooms/live1", { name: "Live" }, "PUT")).status).toBe(200);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`native protocol fuzz (seed ${seed}, ${frames} frames per format)`, () => {
  for (const format of ["json", "msgpack"] as const) {
    test(`${format}: every mutated request is answered in-protocol, no unexpected close, no internal error, the process stays up`, async () => {
      const r = await fuzz(protocol(format), { seed, frames, waitMs, workers: WORKERS, maxFrameBytes: MAX_FRAME_BYTES, proc: node.proc, log: node.log.all });
      report(`native/${format}`, seed, frames, r, node.log.all);
      expect(node.proc.exitCode).toBeNull();
      expect(r.failures).toEqual([]);
      await healthy();
    }, Math.max(60_000, frames * 40));
  }

  test("unauthenticated connections: every mutated frame is answered (4010 until a good auth), no unexpected close", async () => {
    const n = Math.ceil(frames / 3);
    const r = await fuzz(protocol("json", true), { seed, frames: n, waitMs, workers: WORKERS, maxFrameBytes: MAX_FRAME_BYTES, proc: node.proc, log: node.log.all });
    report("native/json/anonymous", seed, n, r);
    expect(node.proc.exitCode).toBeNull();
    expect(r.failures).toEqual([]);
    await healthy();
  }, Math.max(60_000, frames * 20));

  test("a frame over MAX_FRAME_BYTES closes with 1009; the server serves the next client", async () => {
    for (const data of ["x".repeat(MAX_FRAME_BYTES + 1), pack({ t: "send", to: "bob", body: "y".repeat(MAX_FRAME_BYTES) })]) {
      const c = await Conn.open(`${node.wsUrl}/ws?token=${tokens.get("fz0")}`);
      c.send(typeof data === "string" ? { text: data } : { binary: data });
      expect(await c.closed(5000)).toBe(1009);
    }
    await healthy();
  });
});
