// The bench's closed-loop sizing (Ctx.sizeWindow in bench/lib/harness.ts) on scripted steps: where it stops
// raising the window, and which window the measured loop then runs at.
import { describe, expect, test } from "bun:test";
import { Ctx, type Measured } from "../../bench/lib/harness.ts";
import type { LoadGen } from "../../bench/lib/loadgen.ts";

/** A step of the script: its throughput, and sends the server refused or messages lost there. */
type Scripted = { rate: number; refused?: number; lost?: number };

/** Sizes a window over `script` (window → step), starting at 2 with a ceiling of 256; the windows it ran and set. */
async function size(script: Record<number, Scripted>, stopOnLoss = false) {
  const ctx = new Ctx({ smoke: false, seconds: 1, warmup: 0, peers: [], repeat: 1 });
  ctx.say = () => {};
  const ran: number[] = [];
  let current = 2;
  ctx.window = async () => {
    ran.push(current);
    const s = script[current];
    if (!s) throw new Error(`no step scripted at window ${current}`);
    // A third of a core everywhere: nothing saturates, so only the throughput and the errors decide.
    return {
      report: { seconds: 1, counters: { errors: s.refused ?? 0, lost: s.lost ?? 0 } },
      rate: s.rate,
      cpu: 0.3,
      cpuEach: [0.3],
      db: NaN,
      genCpu: 0.3,
      gens: [0.3],
      machineBusy: 0.3,
    } as unknown as Measured;
  };
  const set: number[] = [];
  const out = await ctx.sizeWindow({} as LoadGen, [], "x", {}, {
    start: 2,
    ceiling: 256,
    stopOnLoss,
    set: async (w) => {
      set.push(w);
      current = w;
    },
  });
  return { ...out, ran, set };
}

describe("bench closed-loop sizing", () => {
  test("sends refused at a window: back to the best step before it, not merely the one before", async () => {
    // Window 8 did worse than 4 (a busy step), 16 added throughput but shed load: the loop runs at 4.
    const r = await size({ 2: { rate: 10_000 }, 4: { rate: 20_000 }, 8: { rate: 18_000 }, 16: { rate: 25_000, refused: 500 } });
    expect(r.ran).toEqual([2, 4, 8, 16]);
    expect(r.window).toBe(4);
    expect(r.set.at(-1)).toBe(4);
    expect(r.saturated).toContain("refused 500 sends at window 16");
    expect(r.saturated).toContain("so it stays at 4");
  });

  test("messages lost (a loop that stops on loss): back to the best step before", async () => {
    const r = await size({ 2: { rate: 10_000 }, 4: { rate: 30_000 }, 8: { rate: 29_000 }, 16: { rate: 40_000, lost: 3 } }, true);
    expect(r.window).toBe(4);
    expect(r.saturated).toContain("lost at window 16");
  });

  test("throughput that stops growing: measured at the best window", async () => {
    // Two doublings past the best (8) without 5% more.
    const r = await size({ 2: { rate: 10_000 }, 4: { rate: 20_000 }, 8: { rate: 20_500 }, 16: { rate: 19_000 }, 32: { rate: 21_000 } });
    expect(r.ran).toEqual([2, 4, 8, 16, 32]);
    expect(r.window).toBe(8);
    expect(r.saturated).toContain("throughput stopped growing");
  });

  test("growing to the ceiling: stays there", async () => {
    const script: Record<number, Scripted> = {};
    for (let w = 2, rate = 1000; w <= 256; w *= 2, rate *= 2) script[w] = { rate };
    const r = await size(script);
    expect(r.window).toBe(256);
    expect(r.saturated).toContain("window ceiling 256");
  });
});
