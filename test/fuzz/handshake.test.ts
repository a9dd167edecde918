// Fuzz of the WebSocket handshakes: the connect parameters of every protocol (native `token`/`format`, J-IM
// `token` or `username`/`password`, rooms' query string, desk's bare path) and the Authorization header, valid
// and mutated. Every upgrade is refused with a status below 500 or accepted; an accepted connection then gets
// its protocol's first frame or a documented close (native: none; J-IM: 10008 then 4001; rooms: an error frame
// then 4001 or 1008); the server logs no error and stays up.
// Long run: FUZZ_FRAMES=100000 FUZZ_SEED=123 npm test -- test/fuzz
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { NodeProc } from "../helpers/procs.ts";
import { RawWs } from "../helpers/raw-ws.ts";
import { HOSTILE_TEXT, NASTY_STRINGS, nastyValue } from "./lib/mutate.ts";
import { fuzzSettings, Rng } from "./lib/prng.ts";
import { CI_FRAMES, fuzzTarget, tokensFor } from "./lib/target.ts";

let node: NodeProc;
let tokens: Map<string, string>;
const { seed, frames, waitMs } = fuzzSettings(CI_FRAMES);
const handshakes = Math.max(50, Math.floor(frames / 5));
const USERS = ["hs0", "hs1"];
const MD5_SECRET = new Bun.CryptoHasher("md5").update("secret").digest("hex");

const PARAMS: Record<string, string[]> = {
  "/ws": ["token", "format"],
  "/jim": ["token", "username", "password", "TOKEN", "user_name"],
  "/rooms": ["name", "senderType", "userId", "roomName", "icon", "containerId", "targetId", "clientType", "account", "password", "token"],
  "/desk": ["x"],
};
/** Documented closes right after the handshake, per path. */
const CLOSES: Record<string, number[]> = { "/ws": [], "/jim": [4001], "/rooms": [4001, 1008], "/desk": [] };

function text(v: unknown): string {
  try {
    return String(v);
  } catch {
    return JSON.stringify(v) ?? "";
  }
}

function handshake(r: Rng): { path: string; query: URLSearchParams; auth?: string } {
  const path = r.pick(Object.keys(PARAMS));
  const q = new URLSearchParams();
  const good: Record<string, string> = {
    token: tokens.get(r.pick(USERS))!,
    format: "json", // msgpack frames are binary: the raw client here reads text frames only
    username: "hs0",
    password: r.chance(0.5) ? "secret" : MD5_SECRET,
    name: "Li Lei",
    senderType: "GROUP",
    userId: r.pick(USERS),
    roomName: r.pick(["room-88", "hs0", "hs1"]),
    icon: "http://x/u.png",
    containerId: "hs1",
    targetId: "order-1",
    clientType: "default",
    account: "hs0",
  };
  for (const k of PARAMS[path]!) {
    if (r.chance(0.4)) continue;
    const v = r.chance(0.5) ? (good[k] ?? "x") : r.chance(0.5) ? r.pick(HOSTILE_TEXT) : text(nastyValue(r, [...USERS, ...NASTY_STRINGS])).slice(0, 3000);
    q.set(k, v.toWellFormed());
  }
  if (r.chance(0.1)) q.set(r.pick(["__proto__", "constructor", "toString"]), "1");
  const auth = r.chance(0.15) ? r.pick([`Bearer ${tokens.get("hs0")}`, "Bearer x.y.z", "Bearer ", `apikey x`]) : undefined;
  return { path, query: q, auth };
}

beforeAll(async () => {
  node = await fuzzTarget("handshake");
  tokens = await tokensFor(node, USERS);
  expect((await node.api("/api/users", { id: "hs0", password: "secret" })).status).toBe(200);
  expect((await node.api("/api/rooms-protocol/accounts/default/hs0", { user: "hs0", password: "secret" }, "PUT")).status).toBe(200);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`WebSocket handshake fuzz (seed ${seed}, ${handshakes} handshakes)`, () => {
  test("every upgrade is refused below 500 or accepted, then answered or closed as documented; no error logged", async () => {
    const rng = new Rng(seed).fork("handshake");
    const all = Array.from({ length: handshakes }, () => handshake(rng));
    const failures: string[] = [];
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    let logSeen = node.log.all.length;
    let next = 0;
    async function worker() {
      while (next < all.length && failures.length < Number(process.env.FUZZ_MAX_FAILURES ?? 25) && node.proc.exitCode === null) {
        const k = next++;
        const h = all[k]!;
        const what = `#${k} ${h.path}?${h.query}`.slice(0, 600) + (h.auth ? ` Authorization: ${h.auth.slice(0, 30)}` : "");
        let x: RawWs;
        try {
          x = await RawWs.connect(`${node.wsUrl}${h.path}?${h.query}`, h.auth ? { authorization: h.auth } : undefined);
        } catch (e) {
          const status = Number(String((e as Error).message).match(/^HTTP\/1\.1 (\d+)/)?.[1]);
          count(`HTTP ${status || (e as Error).message.slice(0, 40)}`);
          if (!(status >= 400 && status < 500)) failures.push(`${what}: upgrade answered ${String((e as Error).message).split("\r\n")[0]}`);
          continue;
        }
        // The first frame, or a close. A connection that may say nothing until asked (desk; native without a
        // token; rooms in a container not open yet) is asked something that is always answered.
        if (h.path === "/desk") x.send({ call_type: 0 });
        if (h.path === "/ws") x.send({ t: "ping", id: 1 });
        if (h.path === "/rooms") x.send(["not an object"]);
        const first = await Promise.race([x.next(() => true, waitMs).then((f) => ({ f }), () => ({ f: undefined })), x.closed.then((c) => ({ c }))]);
        await Bun.sleep(0);
        const closed = await Promise.race([x.closed, Bun.sleep(20).then(() => undefined)]);
        if ("c" in first || closed) {
          const code = ("c" in first ? first.c : closed!).code;
          count(`${h.path} closed ${code}`);
          if (!CLOSES[h.path]!.includes(code)) failures.push(`${what}: closed ${code} after ${JSON.stringify(x.pending()).slice(0, 200)}`);
        } else if (first.f === undefined) {
          failures.push(`${what}: no first frame within ${waitMs} ms`);
        } else count(`${h.path} open`);
        x.close();
        const errs = node.log.all.slice(logSeen).filter((l) => / error \[/.test(l));
        logSeen = node.log.all.length;
        for (const l of errs) failures.push(`${what}: the server logged ${l.slice(0, 300)}`);
      }
    }
    await Promise.all(Array.from({ length: 4 }, worker));
    console.log(`fuzz handshake: seed ${seed}, ${next}/${handshakes} handshakes; ${JSON.stringify(Object.fromEntries(outcomes))}`);
    if (failures.length) console.error(`fuzz handshake FAILED (replay: FUZZ_SEED=${seed} FUZZ_FRAMES=${frames} npm test -- test/fuzz/handshake)\n  ${failures.join("\n  ")}`);
    expect(node.proc.exitCode).toBeNull();
    expect(failures).toEqual([]);
  }, Math.max(60_000, handshakes * 100));
});
