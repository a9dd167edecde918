// Fuzz of the desk protocol (/desk, docs/desk.md): mutations of every documented request, from agents and
// guests. Every frame is answered with its `api_key` envelope (pushes aside), the connection stays open (the
// protocol has no close but a frame over MAX_FRAME_BYTES: 1009), no internal error, the process stays up, and a
// normal client is served afterwards.
// Long run: FUZZ_FRAMES=100000 FUZZ_SEED=123 npm test -- test/fuzz
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { NodeProc } from "../helpers/procs.ts";
import { Conn } from "./lib/conn.ts";
import { fuzz, report, type Protocol } from "./lib/harness.ts";
import { mutateJson, type Mutator } from "./lib/mutate.ts";
import { fuzzSettings } from "./lib/prng.ts";
import { CI_FRAMES, fuzzTarget, MAX_FRAME_BYTES, tokensFor, WORKERS } from "./lib/target.ts";

let node: NodeProc;
let tokens: Map<string, string>;
const { seed, frames, waitMs } = fuzzSettings(CI_FRAMES);
/** Worker i: even = an agent of group sales, odd = a guest. */
const who = (i: number) => (i % 2 === 0 ? `ag${i}` : `gu${i}`);
const AGENTS = ["ag0", "ag2", "ag4", "ag6", "amy"];
const GUESTS = ["gu1", "gu3", "gu5", "gu7", "gx"];
const PUSH = new Set([32399, 32401, 32402, 31100]);

function mutator(): Mutator {
  const seeds: Record<string, unknown>[] = [
    { call_type: 0 },
    { api_key: 31000, call_type: 3, token: "$TOKEN" },
    { api_key: 31000, call_type: 1, token: "$TOKEN", group_id: "sales" },
    { api_key: 32000 },
    { api_key: 32100, gid: "gu1", group_id: "sales", page_index: 1, page_size: 10 },
    { api_key: 32100, page_index: 2, page_size: 100 },
    { api_key: 32200, gid: "gu1", group_id: "sales" },
    { api_key: 32200 },
    { api_key: 32300, gid: "gu1", msg: "How can I help?", file_type: 0 },
    { api_key: 32300, msg: "hello", file_type: 0 },
    { api_key: 32300, gid: "gu3", msg: { url: "https://x" }, file_type: 6 },
    { api_key: 32400, gid: "gu1", aix: "ag2" },
    { api_key: 32500, status: 1 },
    { api_key: 32500, status: 0 },
    { api_key: 33000 },
  ];
  return {
    seeds,
    keys: ["api_key", "call_type", "token", "group_id", "gid", "page_index", "page_size", "msg", "file_type", "aix", "status"],
    values: [...AGENTS, ...GUESTS, "sales", "closed", "$TOKEN", 0, 1, 3, 6, 7, 31000, 32000, 32100, 32200, 32300, 32400, 32500, 33000, "32300", -9999],
    typeKeys: ["api_key", "call_type"],
  };
}

async function login(c: Conn, i: number): Promise<void> {
  const u = who(i);
  c.send({ text: JSON.stringify({ api_key: 31000, call_type: u.startsWith("ag") ? 3 : 1, token: tokens.get(u), group_id: "sales" }) });
  const w = await c.wait((f) => f.api_key === 31000, 5000);
  if (!("frame" in w) || w.frame.code !== 200) throw new Error(`no login for ${u}: ${JSON.stringify(w)}`);
}

function protocol(): Protocol {
  const m = mutator();
  return {
    name: "desk",
    async connect(i) {
      const c = await Conn.open(`${node.wsUrl}/desk`);
      await login(c, i);
      return c;
    },
    generate: (r) => mutateJson(r, m),
    prepare: (w, i) => ("text" in w ? { text: w.text.replaceAll("$TOKEN", tokens.get(who(i))!) } : w),
    answer: () => (f) => f != null && !(PUSH.has(f.code) && f.code === f.api_key),
    fault: (f) => (f?.code === -10005 && /internal/.test(f.message) ? "internal error (-10005)" : undefined),
  };
}

beforeAll(async () => {
  node = await fuzzTarget("desk");
  tokens = await tokensFor(node, [...AGENTS, ...GUESTS]);
  expect((await node.api("/api/desk/groups/sales", { name: "Sales" }, "PUT")).status).toBe(200);
  expect((await node.api("/api/desk/groups/closed", { name: "Closed", disabled: true }, "PUT")).status).toBe(200);
  for (const a of AGENTS) expect((await node.api(`/api/desk/agents/${a}`, { group: "sales", capacity: 5 }, "PUT")).status).toBe(200);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`desk protocol fuzz (seed ${seed}, ${frames} frames)`, () => {
  test("every mutated request is answered with its envelope, no unexpected close, no internal error, the process stays up", async () => {
    const r = await fuzz(protocol(), { seed, frames, waitMs, workers: WORKERS, maxFrameBytes: MAX_FRAME_BYTES, proc: node.proc, log: node.log.all });
    report("desk", seed, frames, r);
    expect(node.proc.exitCode).toBeNull();
    expect(r.failures).toEqual([]);
    // A normal guest afterwards: logs in and sends; the answer follows the commit.
    const c = await Conn.open(`${node.wsUrl}/desk`);
    c.send({ text: JSON.stringify({ api_key: 31000, call_type: 1, token: tokens.get("gx"), group_id: "sales" }) });
    const a = await c.wait((f) => f.api_key === 31000, 5000);
    expect("frame" in a && a.frame.code).toBe(200);
    c.send({ text: JSON.stringify({ api_key: 32300, msg: "after the fuzz", file_type: 0 }) });
    const s = await c.wait((f) => f.api_key === 32300, 5000);
    expect("frame" in s && s.frame.code).toBe(200);
    c.close();
  }, Math.max(60_000, frames * 40));

  test("a frame over MAX_FRAME_BYTES closes with 1009", async () => {
    const c = await Conn.open(`${node.wsUrl}/desk`);
    c.send({ text: JSON.stringify({ api_key: 32300, msg: "x".repeat(MAX_FRAME_BYTES) }) });
    expect(await c.closed(5000)).toBe(1009);
  });
});
