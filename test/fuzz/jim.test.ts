// Fuzz of the J-IM protocol (/jim, docs/jim.md): mutations of every documented command. Every frame gets a
// response command (cmd 10 that leaves a group: the leave notice), the connection stays open except after a
// close command (10021, then 1000) or a frame over MAX_FRAME_BYTES (1009), the server logs no internal error and
// stays up, and a normal client is served afterwards.
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
const USERS = ["jz0", "jz1", "jz2", "jz3", "ben", "cat"];
const me = (i: number) => `jz${i}`;

function mutator(): Mutator {
  const seeds: Record<string, unknown>[] = [
    { to: "ben", from: "asdfghjkl", cmd: "11", createTime: 1568012384, msgType: 0, chatType: 2, extras: { nickName: "昵称", headImg: "http://jjjj.img" }, content: { asd: "hell,你2好" } },
    { cmd: 11, chatType: 1, groupId: "g1", content: "hi group", id: "aaaabbbbccccddddeeeeffff00001111" },
    { cmd: 11, chatType: 2, to: "$ME", content: "to myself", msgType: 1 },
    { cmd: 13, hbbyte: "-127" },
    { cmd: 19, type: "0", userId: "$ME", fromUserId: "ben", offset: 1, count: 2 },
    { cmd: 19, type: 0, userId: "$ME", groupId: "g1" },
    { cmd: 19, type: 0, userId: "$ME" },
    { cmd: 19, type: "2", userId: "$ME" },
    { cmd: 19, type: 1, userId: "$ME", fromUserId: "ben", beginTime: 0, endTime: 1895360809405, offset: 0, count: 500 },
    { cmd: 17, type: "1", userId: "$ME" },
    { cmd: 17, type: "2", userId: "$ME", extras: { pullType: 1, searchKey: "" } },
    { cmd: 17, type: "0", userid: "$ME" },
    { cmd: 7, groupId: "g1" },
    { cmd: 10, groupId: "g1" },
    { cmd: 3, token: "$TOKEN" },
    { cmd: 14, userId: "$ME" },
    { cmd: 15, id: "aaaabbbbccccddddeeeeffff00001111" },
  ];
  return {
    seeds,
    keys: ["cmd", "to", "from", "chatType", "groupId", "group_id", "content", "createTime", "msgType", "extras", "type", "userId", "USER_ID", "fromUserId", "offset", "count", "beginTime", "endTime", "token", "id", "msgId", "hbbyte"],
    values: [...USERS, "$ME", "$TOKEN", "g1", "g2", 0, 1, 2, 3, 7, 10, 11, 13, 14, 15, 17, 19, "11", "19", "aaaabbbbccccddddeeeeffff00001111"],
    typeKeys: ["cmd", "type"],
  };
}

function protocol(): Protocol {
  const m = mutator();
  return {
    name: "jim",
    async connect(i) {
      const c = await Conn.open(`${node.wsUrl}/jim?token=${tokens.get(me(i))}`);
      const w = await c.wait((f) => f.command === 6, 5000);
      if (!("frame" in w) || w.frame.code !== 10007) throw new Error(`no login for ${me(i)}: ${JSON.stringify(w)}`);
      return c;
    },
    generate: (r) => mutateJson(r, m),
    prepare: (w, i) => ("text" in w ? { text: w.text.replaceAll("$ME", me(i)).replaceAll("$TOKEN", tokens.get(me(i))!) } : w),
    // Pushes (a chat, a join notice, a recall) carry no code; a response does (the heartbeat's: command 13).
    answer: () => (f) => f != null && ("code" in f || f.command === 13 || f.command === 10),
    closeAfter: (_w, answer) => (answer?.code === 10021 ? [1000] : undefined),
    fault: () => undefined,
  };
}

beforeAll(async () => {
  node = await fuzzTarget("jim");
  tokens = await tokensFor(node, USERS);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`J-IM protocol fuzz (seed ${seed}, ${frames} frames)`, () => {
  test("every mutated command gets its response command, no unexpected close, no internal error, the process stays up", async () => {
    const r = await fuzz(protocol(), { seed, frames, waitMs, workers: WORKERS, maxFrameBytes: MAX_FRAME_BYTES, proc: node.proc, log: node.log.all });
    report("jim", seed, frames, r);
    expect(node.proc.exitCode).toBeNull();
    expect(r.failures).toEqual([]);
    // A normal client afterwards: a chat is stored and answered.
    const c = await Conn.open(`${node.wsUrl}/jim?token=${tokens.get("cat")}`);
    expect("frame" in (await c.wait((f) => f.code === 10007, 5000))).toBe(true);
    c.send({ text: JSON.stringify({ cmd: 11, chatType: 2, to: "ben", content: "after the fuzz" }) });
    const a = await c.wait((f) => f.command === 12, 5000);
    expect("frame" in a && [10000, 10001]).toContain("frame" in a ? a.frame.code : -1);
    c.close();
  }, Math.max(60_000, frames * 40));

  test("a frame over MAX_FRAME_BYTES closes with 1009", async () => {
    const c = await Conn.open(`${node.wsUrl}/jim?token=${tokens.get("cat")}`);
    c.send({ text: JSON.stringify({ cmd: 11, chatType: 2, to: "ben", content: "x".repeat(MAX_FRAME_BYTES) }) });
    expect(await c.closed(5000)).toBe(1009);
  });
});
