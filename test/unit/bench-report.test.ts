// The bench's report (bench/lib/repeat.ts, bench/lib/report.ts) on made-up results: spreads of every ratio and
// target over repeated runs, the table's min / median / max, and a chart with nothing outside its width.
import { describe, expect, test } from "bun:test";
import type { Result } from "../../bench/lib/harness.ts";
import { merge } from "../../bench/lib/repeat.ts";
import { svg, table, type Run } from "../../bench/lib/report.ts";

function result(k: number): Result {
  const ours = 60_000 + k * 1000;
  return {
    scenario: "heartbeat",
    title: "Heartbeat round trips",
    params: { connections: 2000 },
    rows: [
      { server: "ours must-deliver with a long name", value: ours, unit: "round trips/s", p50: 0.3 + k / 10, p99: 2 + k, cpu: 13, cpuUnit: "server CPU µs per round trip" },
      { server: "Bun.serve raw", value: 58_000, unit: "round trips/s", p50: 0.29, p99: 1.2 },
      { server: "Node ws", value: 42_000, unit: "round trips/s", extra: { "overflows at msgs/s": 750, "kept up at msgs/s": 375 } },
    ],
    ratios: [
      { ours: "ours must-deliver with a long name", peer: "Bun.serve raw", ratio: ours / 58_000 },
      { ours: "ours must-deliver with a long name", peer: "Bun.serve raw", ratio: [0.8, 0.81, 0.82][k]!, what: "server CPU per round trip, peer / ours" },
    ],
    // A value printed with its unit, as the heartbeat scenario once gave it: still a figure with a spread.
    targets: [
      { name: "heartbeat vs Bun.serve raw echo", goal: "≥ 0.85×", value: `${(ours / 58_000).toFixed(2)}×`, met: true },
      { name: "a figure with no goal", goal: "none (reported)", value: "n/a", met: undefined },
    ],
    notes: [],
    seconds: 10,
  };
}

const run = (results: Result[]): Run => ({
  startedAt: "2026-12-06T00:00:00.000Z",
  command: "bun run bench heartbeat --full",
  machine: { nproc: 2, cpu: "AMD EPYC", memGiB: 24, load: [0.1, 0.2, 0.3], bun: "1.4.5", node: "v20", kernel: "6", openFiles: 20000 },
  machineAfter: { load: [0.4, 0.5, 0.6] },
  options: {},
  results,
  failures: [],
});

describe("bench report", () => {
  test("three runs: every ratio (and each figure it compares) and every target with a figure get min / median / max", () => {
    const m = merge([result(0), result(2), result(1)]);
    const spread = (name: string) => m.spreads!.find((s) => s.name === name)!;
    expect(spread("ours must-deliver with a long name / Bun.serve raw")).toMatchObject({ min: 60_000 / 58_000, median: 61_000 / 58_000, max: 62_000 / 58_000, runs: 3 });
    expect(spread("ours must-deliver with a long name / Bun.serve raw (server CPU per round trip, peer / ours)")).toMatchObject({ min: 0.8, median: 0.81, max: 0.82, runs: 3 });
    expect(spread("heartbeat vs Bun.serve raw echo")).toMatchObject({ min: 1.03, median: 1.05, max: 1.07, runs: 3 });
    expect(spread("ours must-deliver with a long name p99 (ms)")).toMatchObject({ min: 2, median: 3, max: 4 });
    // The rows shown are the median run's.
    expect(m.rows[0]!.value).toBe(61_000);
    const text = table(run([m]));
    expect(text).toContain("target MET    heartbeat vs Bun.serve raw echo: 1.05× (1.03 / 1.05 / 1.07) (goal ≥ 0.85×)");
    expect(text).toContain("  heartbeat vs Bun.serve raw echo: 1.03 / 1.05 / 1.07");
    expect(text).toContain("round trips/s 1.05× (1.03×–1.07×) · server CPU per round trip, peer / ours 0.81× (0.80×–0.82×)");
    expect(text).not.toContain("– / – / –");
  });

  test("a target is judged on all the runs: its median value, MET only when met in most runs", () => {
    // The run shown (the median by the first ratio) met the goal; the other two missed it.
    const withCpu = (k: number, cpu: number, met: boolean): Result => {
      const r = result(k);
      r.targets.push({ name: "CPU per round trip, raw / ours", goal: "≥ 0.9×", value: cpu.toFixed(2), met });
      return r;
    };
    const m = merge([withCpu(0, 0.76, false), withCpu(1, 0.99, true), withCpu(2, 0.83, false)]);
    expect(m.rows[0]!.value).toBe(61_000);
    expect(m.targets.find((t) => t.name === "CPU per round trip, raw / ours")).toMatchObject({ value: "0.83", met: false });
    expect(table(run([m]))).toContain("target MISSED CPU per round trip, raw / ours: 0.83 (0.760 / 0.830 / 0.990) (goal ≥ 0.9×)");
    // Met in two runs of three: MET, at the median.
    const n = merge([withCpu(0, 0.76, false), withCpu(1, 0.95, true), withCpu(2, 0.91, true)]);
    expect(n.targets.find((t) => t.name === "CPU per round trip, raw / ours")).toMatchObject({ value: "0.91", met: true });
  });

  test("one run has its spreads too (min = median = max)", () => {
    const m = merge([result(0)]);
    for (const x of m.ratios) expect(m.spreads!.some((s) => s.name.startsWith(`${x.ours} / ${x.peer}`) && s.median === x.ratio)).toBe(true);
  });

  test("the chart: log latency axis, lower is better marked, overflow shown as a rate, min–max lines, no text past its width", () => {
    const out = svg(run([merge([result(0), result(1), result(2)])]));
    const width = Number(/<svg[^>]* width="(\d+)"/.exec(out)![1]);
    expect(out).toContain("log axis (lower is better)");
    expect(out).toContain("overflows at 750 msg/s");
    expect(out).toContain(">1 ms<");
    expect(out).toMatch(/<line [^>]*stroke="#111"/);
    // Every text ends inside the picture (at ~0.58 em per character, a generous sans-serif average).
    const past: string[] = [];
    for (const [, x, size, body] of out.matchAll(/<text x="([\d.]+)"[^>]*?font-size="(\d+)"[^>]*>([^<]*)<\/text>/g)) {
      const end = Number(x) + body!.replace(/&(amp|lt|gt);/g, "x").length * Number(size) * 0.58;
      if (end > width) past.push(`${body} ends at ${Math.ceil(end)} of ${width}`);
    }
    expect(past).toEqual([]);
  });
});
