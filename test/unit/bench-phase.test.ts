// The load generator's open loops (bench/lib/loadgen.ts, LoadGen.all): each worker process is given its place among
// the others, 0, 1/n, 2/n… of its period, so that their sends interleave evenly instead of landing together in
// bursts of n; closed loops and other commands go to the workers as given.
import { expect, test } from "bun:test";
import { LoadGen, type Cmd } from "../../bench/lib/loadgen.ts";

/** A LoadGen over `n` stand-in workers that record the commands they are sent. */
function recording(n: number): { lg: LoadGen; got: Cmd[][] } {
  const got: Cmd[][] = Array.from({ length: n }, () => []);
  const workers = got.map((sent) => ({ call: async (cmd: Cmd) => void sent.push(cmd) }));
  const make = LoadGen as unknown as new (workers: unknown[], sizes: number[]) => LoadGen;
  return { lg: new make(workers, workers.map(() => 1)), got };
}

test("an open loop's workers start 0, 1/n, 2/n… of their period apart; other commands go as given", async () => {
  const { lg, got } = recording(3);
  await lg.all({ op: "hb", mode: "open", rate: 100 }, "started");
  await lg.all((i) => ({ op: "fan", worker: i, senders: [0], mode: "open", window: 0, rate: 10, room: "r", cls: "must" }), "started");
  await lg.all({ op: "hb", mode: "closed", rate: 0 }, "started");
  await lg.all({ op: "measure" }, "measuring");
  expect(got.map((sent) => sent.map((c) => ("phase" in c ? c.phase : "none")))).toEqual([
    [0, 0, "none", "none"],
    [1 / 3, 1 / 3, "none", "none"],
    [2 / 3, 2 / 3, "none", "none"],
  ]);
  // The commands themselves are otherwise what was asked.
  expect(got[2]![1]).toEqual({ op: "fan", worker: 2, senders: [0], mode: "open", window: 0, rate: 10, room: "r", cls: "must", phase: 2 / 3 });
});
