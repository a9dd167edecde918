// Repeated runs of one scenario (`--repeat N`, `--full`: 3): the run shown is the median one (by its first
// ratio, else its first target's value, else its first row's figure), and every ratio, target value and row
// figure gets its min / median / max over the runs, so a figure comes with its spread. One run gets its
// spreads too (min = median = max): the JSON has the same shape whatever the number of runs. A target is judged
// on all the runs, not on the one shown: its value is its median, and it is MET when it was met in most runs
// (for a goal that is a bound, the same as its median meeting it).
import { ratioName, type Result, type Spread } from "./harness.ts";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function spreadOf(name: string, xs: number[]): Spread {
  const v = xs.filter(Number.isFinite);
  return v.length ? { name, min: Math.min(...v), median: median(v), max: Math.max(...v), runs: v.length } : { name, min: NaN, median: NaN, max: NaN, runs: 0 };
}

/** A target's value as a number ("1.14", "1.14×", "9.09 ms" → the number; "n/a" → NaN). */
export const targetNumber = (v: string | undefined): number => (v === undefined ? NaN : parseFloat(v.replace(/,/g, "")));

/** Folds the runs of one scenario into one result: the median run's rows, with the spreads of all runs. */
export function merge(runs: Result[]): Result {
  const key = (r: Result) => [r.ratios[0]?.ratio, targetNumber(r.targets[0]?.value), r.rows[0]?.value].find((x) => x !== undefined && Number.isFinite(x)) ?? 0;
  const sorted = [...runs].sort((a, b) => key(a) - key(b));
  const mid = sorted[(sorted.length - 1) >> 1]!;
  const spreads: Spread[] = [];
  for (const x of mid.ratios) {
    const name = ratioName(x);
    spreads.push(spreadOf(name, runs.map((r) => r.ratios.find((y) => ratioName(y) === name)?.ratio ?? NaN)));
  }
  for (const t of mid.targets) spreads.push(spreadOf(t.name, runs.map((r) => targetNumber(r.targets.find((y) => y.name === t.name)?.value))));
  for (const row of mid.rows) {
    const same = (r: Result) => r.rows.find((y) => y.server === row.server);
    spreads.push(spreadOf(`${row.server} (${row.unit})`, runs.map((r) => same(r)?.value ?? NaN)));
    if (row.p50 !== undefined) spreads.push(spreadOf(`${row.server} p50 (ms)`, runs.map((r) => same(r)?.p50 ?? NaN)));
    if (row.p99 !== undefined) spreads.push(spreadOf(`${row.server} p99 (ms)`, runs.map((r) => same(r)?.p99 ?? NaN)));
  }
  const targets = mid.targets.map((t) => {
    const all = runs.map((r) => r.targets.find((y) => y.name === t.name)).filter((y) => y !== undefined);
    if (all.length < 2 || all.some((y) => y.met === undefined)) return t;
    const m = spreadOf(t.name, all.map((y) => targetNumber(y.value))).median;
    const digits = /\.(\d+)/.exec(t.value)?.[1]?.length ?? 0;
    return { ...t, met: all.filter((y) => y.met).length * 2 > all.length, value: Number.isFinite(m) ? t.value.replace(/-?\d[\d,]*(\.\d+)?/, m.toFixed(digits)) : t.value };
  });
  return { ...mid, targets, spreads, repeats: runs.length, seconds: runs.reduce((s, r) => s + r.seconds, 0), windows: runs.flatMap((r) => r.windows ?? []) };
}
