// Repeated runs of one scenario (`--repeat N`, `--full`: 3): the run shown is the median one (by its first
// ratio, else its first target's value, else its first row's figure), and every ratio and target value gets
// its min / median / max over the runs, so a figure comes with its spread.
import type { Result, Spread } from "./harness.ts";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function spreadOf(name: string, xs: number[]): Spread {
  const v = xs.filter(Number.isFinite);
  return v.length ? { name, min: Math.min(...v), median: median(v), max: Math.max(...v), runs: v.length } : { name, min: NaN, median: NaN, max: NaN, runs: 0 };
}

/** Folds the runs of one scenario into one result: the median run's rows, with the spreads of all runs. */
export function merge(runs: Result[]): Result {
  if (runs.length === 1) return runs[0]!;
  const key = (r: Result) => r.ratios[0]?.ratio ?? Number(r.targets[0]?.value ?? NaN) ?? r.rows[0]?.value;
  const sorted = [...runs].sort((a, b) => (key(a) || 0) - (key(b) || 0));
  const mid = sorted[(sorted.length - 1) >> 1]!;
  const spreads: Spread[] = [];
  for (const [i, x] of mid.ratios.entries()) {
    spreads.push(spreadOf(`${x.ours} / ${x.peer}`, runs.map((r) => r.ratios.find((y) => y.ours === x.ours && y.peer === x.peer)?.ratio ?? r.ratios[i]?.ratio ?? NaN)));
  }
  for (const t of mid.targets) spreads.push(spreadOf(t.name, runs.map((r) => Number(r.targets.find((y) => y.name === t.name)?.value ?? NaN))));
  for (const row of mid.rows) spreads.push(spreadOf(`${row.server} (${row.unit})`, runs.map((r) => r.rows.find((y) => y.server === row.server)?.value ?? NaN)));
  return { ...mid, spreads, repeats: runs.length, seconds: runs.reduce((s, r) => s + r.seconds, 0) };
}
