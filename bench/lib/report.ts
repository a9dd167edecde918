// A run's output: a table on stdout, the JSON, and one SVG chart (per scenario: throughput bars and
// p50/p99 latency bars, one colour per server).
import type { Machine } from "./machine.ts";
import { fmt, fmtMs, ratioName, type Ratio, type Result, type Row, type Spread } from "./harness.ts";

export interface Run {
  startedAt: string;
  command: string;
  machine: Machine;
  machineAfter: { load: [number, number, number] };
  options: Record<string, unknown>;
  results: Result[];
  failures: { scenario: string; error: string }[];
}

export function table(run: Run): string {
  const out: string[] = [];
  const m = run.machine;
  out.push(`machine: ${m.nproc} × ${m.cpu}, ${m.memGiB} GiB, load ${m.load.join(" ")} → ${run.machineAfter.load.join(" ")}, Bun ${m.bun}, Node ${m.node ?? "–"}, syscall ${m.syscallUs ?? "–"} µs (fstat from Bun)${m.pti ? `, page-table isolation ${m.pti}` : ""}`);
  for (const r of run.results) {
    out.push("", `## ${r.scenario} — ${r.title}  (${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(", ")})`);
    const head = ["server", "figure", "p50", "p99", "CPU cost", "notes"];
    const lines = r.rows.map((x) => [
      x.server,
      `${fmt(x.value)} ${x.unit}`,
      fmtMs(x.p50),
      fmtMs(x.p99),
      x.cpu !== undefined && Number.isFinite(x.cpu) ? `${x.cpu.toPrecision(3)} ${x.cpuUnit ?? ""}` : "–",
      Object.entries(x.extra ?? {})
        .filter(([, v]) => v !== 0 && v !== "")
        .map(([k, v]) => `${k} ${typeof v === "number" ? (k.endsWith("ms") ? fmtMs(v) : fmt(v)) : v}`)
        .join(", "),
    ]);
    out.push(...grid([head, ...lines]));
    const spread = (name: string) => r.spreads?.find((s) => s.name === name);
    const many = (r.repeats ?? 1) > 1;
    if (r.ratios.length) {
      out.push(`ratios (above 1× ours does better; a cost is given as peer / ours)${many ? `, min / median / max over ${r.repeats} runs` : ""}:`);
      for (const [pair, xs] of groupRatios(r.ratios)) {
        out.push(`  ${pair}: ` + xs.map((x) => `${whatOf(r, x)} ${many ? spreadText(spread(ratioName(x)), x.ratio) : fmtRatio(x.ratio)}`).join(" · "));
      }
    }
    for (const t of r.targets) {
      const sp = many ? spread(t.name) : undefined;
      // (a target with no figure in any run, "n/a", has no spread to print)
      out.push(`${targetWord(t.met)} ${t.name}: ${t.value}${sp?.runs ? ` (${fmt(sp.min)} / ${fmt(sp.median)} / ${fmt(sp.max)})` : ""} (goal ${t.goal})${t.note ? ` — ${t.note}` : ""}`);
    }
    if (many && r.spreads?.length) {
      out.push(`spreads over ${r.repeats} runs (min / median / max; the rows above are the median run):`);
      for (const x of r.spreads) if (x.runs) out.push(`  ${x.name}: ${fmt(x.min)} / ${fmt(x.median)} / ${fmt(x.max)}${x.runs < (r.repeats ?? 1) ? ` (${x.runs} of ${r.repeats} runs)` : ""}`);
    }
    for (const n of r.notes) out.push(`note: ${n}`);
  }
  for (const f of run.failures) out.push("", `## ${f.scenario} FAILED: ${f.error}`);
  return out.join("\n");
}

/** A ratio: two decimals, or two significant digits below 0.1 (a per-message peer's frames against ours). */
export const fmtRatio = (x: number) => (!Number.isFinite(x) ? "–" : x >= 0.1 ? `${x.toFixed(2)}×` : `${x.toPrecision(2)}×`);

/** "median× (min–max)" of a ratio's spread; the single value when there is none. */
function spreadText(sp: Spread | undefined, value: number): string {
  if (!sp || !Number.isFinite(sp.median)) return fmtRatio(value);
  return `${fmtRatio(sp.median)} (${fmtRatio(sp.min)}–${fmtRatio(sp.max)})`;
}

/** The figure a ratio compares: its own name, else the unit of the rows' main figure. */
const whatOf = (r: Result, x: Ratio) => x.what ?? r.rows.find((y) => y.server === x.ours)?.unit ?? "figure";

/** The ratios of each ours / peer pair together, in order. */
function groupRatios(ratios: Ratio[]): [string, Ratio[]][] {
  const g = new Map<string, Ratio[]>();
  for (const x of ratios) {
    const k = `${x.ours} / ${x.peer}`;
    g.set(k, [...(g.get(k) ?? []), x]);
  }
  return [...g];
}

/** MET only where a goal is set and reached; a figure without a goal is only reported. */
export const targetWord = (met: boolean | undefined) => (met === undefined ? "reported     " : met ? "target MET   " : "target MISSED");

function grid(rows: string[][]): string[] {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, k) => {
    const line = r.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd();
    return k === 0 ? `${line}\n${w.map((x) => "-".repeat(x)).join("  ")}` : line;
  });
}

const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096", "#d69e2e", "#00838f"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
/** Width of a text in px at a font size (sans-serif; generous, so nothing is clipped). */
const textW = (s: string, size: number) => Math.ceil(s.length * size * 0.62);

/**
 * One SVG: a panel per scenario with, for each row, a bar of its figure (higher is better unless the row says
 * lower; a black line from min to max over repeated runs) and p50/p99 latency bars on a log axis with its
 * ticks (lower is better; one peer's slowness does not flatten the others; min–max lines too). A row that
 * overflowed shows the rate where it did instead of a latency. Under the bars: the ratios (median and min–max
 * over the runs) and the targets. Columns and the width are laid out from the texts, so nothing is clipped.
 */
export function svg(run: Run): string {
  const m = run.machine;
  const PAD = 20;
  const BAR = 280; // throughput bar area
  const LAT = 240; // latency bar area
  const barH = 18;
  const allRows = run.results.flatMap((r) => r.rows);
  const nameW = Math.max(120, ...allRows.map((x) => textW(x.server, 11))) + 10;
  const valueText = (x: Row) => `${fmt(x.value)} ${x.unit}${x.lowerIsBetter ? " (lower is better)" : ""}`;
  const valueW = Math.max(...allRows.map((x) => textW(valueText(x), 10)), 60) + 10;
  const latText = (x: Row) => (overflowOf(x) ? `overflows at ${fmt(overflowOf(x)!)} msg/s (no latency: its backlog)` : x.p99 !== undefined && Number.isFinite(x.p99) ? `${fmtMs(x.p50)} / ${fmtMs(x.p99)}` : "");
  const latTextW = Math.max(...allRows.map((x) => textW(latText(x), 10)), 60) + 10;
  const x0 = PAD + nameW; // throughput bars
  const l0 = x0 + BAR + valueW + 20; // latency bars
  const lines: { text: string; size: number }[] = [];
  const header = `${m.nproc} × ${m.cpu}, load ${m.load.join(" ")} → ${run.machineAfter.load.join(" ")}, Bun ${m.bun}, Node ${m.node ?? "–"} · ${run.command}`;
  lines.push({ text: header, size: 11 });
  const ratioLines = (r: Result) => {
    const many = (r.repeats ?? 1) > 1;
    const sp = (x: Ratio) => r.spreads?.find((s) => s.name === ratioName(x));
    return groupRatios(r.ratios).map(([pair, xs]) => `${pair}: ` + xs.map((x) => `${whatOf(r, x)} ${many ? spreadText(sp(x), x.ratio) : fmtRatio(x.ratio)}`).join(" · "));
  };
  const targetLine = (t: Result["targets"][number]) => `${t.met === undefined ? "·" : t.met ? "✓ MET" : "✗ MISSED"} ${t.name}: ${t.value} (goal ${t.goal})`;
  for (const r of run.results) {
    lines.push({ text: `${r.scenario}: ${r.title}${(r.repeats ?? 1) > 1 ? ` (median of ${r.repeats} runs; lines: min–max)` : ""}`, size: 13 });
    for (const t of ratioLines(r)) lines.push({ text: t, size: 10 });
    for (const t of r.targets) lines.push({ text: targetLine(t), size: 10 });
  }
  const width = Math.max(l0 + LAT + latTextW + PAD, ...lines.map((l) => PAD * 2 + textW(l.text, l.size)));
  const parts: string[] = [];
  parts.push(`<text x="${PAD}" y="24" font-size="15" font-weight="bold">chatd bench ${esc(run.startedAt)}</text>`);
  parts.push(`<text x="${PAD}" y="42" font-size="11" fill="#555">${esc(header)}</text>`);
  let y = 52;
  for (const r of run.results) {
    y += 22;
    parts.push(`<text x="${PAD}" y="${y}" font-size="13" font-weight="bold">${esc(`${r.scenario}: ${r.title}${(r.repeats ?? 1) > 1 ? ` (median of ${r.repeats} runs; lines: min–max)` : ""}`)}</text>`);
    y += 16;
    const lower = r.rows.some((x) => x.lowerIsBetter);
    parts.push(`<text x="${x0}" y="${y}" font-size="10" fill="#555">${esc(r.rows[0] ? `${r.rows[0].unit} (${lower ? "lower" : "higher"} is better)` : "")}</text>`);
    const maxV = Math.max(...r.rows.flatMap((x) => [x.value, r.spreads?.find((s) => s.name === `${x.server} (${x.unit})`)?.max ?? 0]).filter(Number.isFinite), 1e-9);
    const lat = r.rows.flatMap((x) => [x.p50, x.p99, ...["p50", "p99"].map((k) => r.spreads?.find((s) => s.name === `${x.server} ${k} (ms)`)?.max)]).filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
    // Log latency axis from the decade below the fastest figure to the decade above the slowest.
    const hasLat = lat.length > 0;
    const lo = hasLat ? 10 ** Math.floor(Math.log10(Math.min(...lat))) : 0.1;
    const hi = hasLat ? 10 ** Math.ceil(Math.log10(Math.max(...lat) * 1.0001)) : 1;
    const span = Math.log10(hi / lo) || 1;
    const lx = (v: number) => l0 + (v > lo ? (Math.log10(v / lo) / span) * LAT : 0);
    if (hasLat) parts.push(`<text x="${l0}" y="${y}" font-size="10" fill="#555">latency, log axis (lower is better): p50 solid, p99 light</text>`);
    y += 6;
    const top = y;
    r.rows.forEach((x, i) => {
      const c = COLORS[i % COLORS.length];
      const yy = y + i * (barH + 4);
      const mid = yy + barH / 2;
      const w1 = Number.isFinite(x.value) ? (x.value / maxV) * BAR : 0;
      parts.push(`<text x="${PAD}" y="${yy + 13}" font-size="11">${esc(x.server)}</text>`);
      parts.push(`<rect x="${x0}" y="${yy}" width="${w1.toFixed(1)}" height="${barH}" fill="${c}"/>`);
      const sp = r.spreads?.find((s) => s.name === `${x.server} (${x.unit})`);
      if (sp && sp.runs > 1 && Number.isFinite(sp.min) && Number.isFinite(sp.max)) parts.push(whisker(x0 + (sp.min / maxV) * BAR, x0 + (sp.max / maxV) * BAR, mid));
      parts.push(`<text x="${(x0 + BAR + 6).toFixed(1)}" y="${yy + 13}" font-size="10">${esc(valueText(x))}</text>`);
      const ov = overflowOf(x);
      if (ov) parts.push(`<text x="${l0}" y="${yy + 13}" font-size="10" fill="#c53030">${esc(latText(x))}</text>`);
      else if (x.p99 !== undefined && Number.isFinite(x.p99)) {
        parts.push(`<rect x="${l0}" y="${yy}" width="${(lx(x.p99) - l0).toFixed(1)}" height="${barH}" fill="${c}" opacity="0.35"/>`);
        parts.push(`<rect x="${l0}" y="${yy}" width="${(lx(x.p50 ?? 0) - l0).toFixed(1)}" height="${barH}" fill="${c}"/>`);
        for (const k of ["p50", "p99"]) {
          const s = r.spreads?.find((z) => z.name === `${x.server} ${k} (ms)`);
          if (s && s.runs > 1 && Number.isFinite(s.min) && Number.isFinite(s.max)) parts.push(whisker(lx(s.min), lx(s.max), k === "p50" ? mid - 3 : mid + 3));
        }
        parts.push(`<text x="${(l0 + LAT + 6).toFixed(1)}" y="${yy + 13}" font-size="10">${esc(latText(x))}</text>`);
      }
    });
    y += r.rows.length * (barH + 4);
    if (hasLat) {
      // The axis: a tick and a faint grid line per decade.
      for (let v = lo; v <= hi * 1.0001; v *= 10) {
        const xx = lx(v).toFixed(1);
        parts.push(`<line x1="${xx}" x2="${xx}" y1="${top - 2}" y2="${y}" stroke="#ccc" stroke-width="0.5"/>`);
        parts.push(`<text x="${xx}" y="${y + 10}" font-size="9" fill="#555" text-anchor="middle">${esc(v >= 1000 ? `${v / 1000} s` : v >= 1 ? `${v} ms` : `${Number((v * 1000).toPrecision(1))} µs`)}</text>`);
      }
      y += 12;
    }
    y += 6;
    for (const t of ratioLines(r)) {
      parts.push(`<text x="${PAD}" y="${y + 8}" font-size="10" fill="#333">${esc(t)}</text>`);
      y += 13;
    }
    for (const t of r.targets) {
      const colour = t.met === undefined ? "#555" : t.met ? "#276749" : "#c53030";
      parts.push(`<text x="${PAD}" y="${y + 8}" font-size="10" fill="${colour}">${esc(targetLine(t))}</text>`);
      y += 13;
    }
    y += 4;
  }
  for (const f of run.failures) {
    y += 16;
    parts.push(`<text x="${PAD}" y="${y}" font-size="12" fill="#c53030">${esc(`${f.scenario} FAILED: ${f.error}`.slice(0, 200))}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.ceil(width)}" height="${y + 20}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join("")}</svg>\n`;
}

/** A min–max line with end caps. */
function whisker(a: number, b: number, y: number): string {
  return `<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${y}" y2="${y}" stroke="#111" stroke-width="1.2"/><line x1="${a.toFixed(1)}" x2="${a.toFixed(1)}" y1="${y - 3}" y2="${y + 3}" stroke="#111"/><line x1="${b.toFixed(1)}" x2="${b.toFixed(1)}" y1="${y - 3}" y2="${y + 3}" stroke="#111"/>`;
}

/** The rate (messages/s) where a row's open loop started to overflow, if it did. */
const overflowOf = (x: Row): number | undefined => {
  const v = x.extra?.["overflows at msgs/s"];
  return typeof v === "number" ? v : undefined;
};
