// A run's output: a table on stdout, the JSON, and one SVG chart (per scenario: throughput bars and
// p50/p99 latency bars, one colour per server).
import type { Machine } from "./machine.ts";
import { fmt, fmtMs, type Result } from "./harness.ts";

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
  out.push(`machine: ${m.nproc} × ${m.cpu}, ${m.memGiB} GiB, load ${m.load.join(" ")} → ${run.machineAfter.load.join(" ")}, Bun ${m.bun}, Node ${m.node ?? "–"}`);
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
    if (r.ratios.length) out.push("ratios: " + r.ratios.map((x) => `${x.ours} / ${x.peer} = ${x.ratio.toFixed(2)}×`).join(" · "));
    for (const t of r.targets) out.push(`${targetWord(t.met)} ${t.name}: ${t.value} (goal ${t.goal})${t.note ? ` — ${t.note}` : ""}`);
    if (r.spreads?.length) {
      out.push(`spreads over ${r.repeats} runs (min / median / max; the rows above are the median run):`);
      for (const x of r.spreads) out.push(`  ${x.name}: ${fmt(x.min)} / ${fmt(x.median)} / ${fmt(x.max)}`);
    }
    for (const n of r.notes) out.push(`note: ${n}`);
  }
  for (const f of run.failures) out.push("", `## ${f.scenario} FAILED: ${f.error}`);
  return out.join("\n");
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

const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096", "#d69e2e"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * One SVG: a panel per scenario with a bar per row (its figure; a line from min to max over repeated runs) and
 * p50/p99 bars beside it on a log axis (one peer's backlog does not flatten the others). Wide enough for the
 * longest label.
 */
export function svg(run: Run): string {
  const longest = Math.max(0, ...run.results.flatMap((r) => [...r.ratios.map((x) => `${x.ours}/${x.peer} ${x.ratio.toFixed(2)}×`).join("  ·  "), ...r.targets.map((t) => `✓ ${t.name}: ${t.value} (goal ${t.goal})`), `${r.scenario}: ${r.title}`]).map((s) => s.length));
  const panelW = Math.max(900, Math.ceil(longest * 6) + 40);
  const barH = 18;
  let y = 50;
  const parts: string[] = [];
  const m = run.machine;
  parts.push(`<text x="20" y="24" font-size="15" font-weight="bold">chatd bench ${esc(run.startedAt)}</text>`);
  parts.push(`<text x="20" y="42" font-size="11" fill="#555">${esc(`${m.nproc} × ${m.cpu}, load ${m.load.join(" ")}, Bun ${m.bun}, Node ${m.node ?? "–"}`)}</text>`);
  for (const r of run.results) {
    y += 20;
    parts.push(`<text x="20" y="${y}" font-size="13" font-weight="bold">${esc(`${r.scenario}: ${r.title}`)}</text>`);
    y += 8;
    const maxV = Math.max(...r.rows.map((x) => x.value).filter(Number.isFinite), 1);
    const lat = r.rows.flatMap((x) => [x.p50, x.p99]).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const maxL = Math.max(...lat, 0.001);
    // Log latency axis from 0.1 ms (or below the fastest figure) to the slowest.
    const minL = Math.min(0.1, ...lat.filter((v) => v > 0));
    const span = Math.log10(maxL / minL) || 1;
    const lw = (v: number) => (v > minL ? (Math.log10(v / minL) / span) * 200 : 1);
    r.rows.forEach((x, i) => {
      const c = COLORS[i % COLORS.length];
      const yy = y + i * (barH + 4);
      const w1 = Number.isFinite(x.value) ? (x.value / maxV) * 330 : 0;
      parts.push(`<text x="20" y="${yy + 13}" font-size="11">${esc(x.server)}</text>`);
      parts.push(`<rect x="190" y="${yy}" width="${w1.toFixed(1)}" height="${barH}" fill="${c}"/>`);
      const sp = r.spreads?.find((s) => s.name === `${x.server} (${x.unit})`);
      if (sp && Number.isFinite(sp.min) && Number.isFinite(sp.max)) {
        const a = 190 + (sp.min / maxV) * 330;
        const b = 190 + (sp.max / maxV) * 330;
        parts.push(`<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${yy + barH / 2}" y2="${yy + barH / 2}" stroke="#111" stroke-width="1.5"/>`);
      }
      parts.push(`<text x="${(195 + Math.max(w1, sp ? (sp.max / maxV) * 330 : 0)).toFixed(1)}" y="${yy + 13}" font-size="10">${esc(`${fmt(x.value)} ${x.unit}${x.lowerIsBetter ? " (lower is better)" : ""}`)}</text>`);
      if (x.p99 !== undefined && Number.isFinite(x.p99)) {
        const w99 = lw(x.p99);
        const w50 = lw(x.p50 ?? 0);
        parts.push(`<rect x="640" y="${yy}" width="${w99.toFixed(1)}" height="${barH}" fill="${c}" opacity="0.35"/>`);
        parts.push(`<rect x="640" y="${yy}" width="${w50.toFixed(1)}" height="${barH}" fill="${c}"/>`);
        parts.push(`<text x="${(645 + w99).toFixed(1)}" y="${yy + 13}" font-size="10">${esc(`${fmtMs(x.p50)} / ${fmtMs(x.p99)}`)}</text>`);
      }
    });
    y += r.rows.length * (barH + 4) + 6;
    const ratios = r.ratios.map((x) => `${x.ours}/${x.peer} ${x.ratio.toFixed(2)}×`).join("  ·  ");
    if (ratios) parts.push(`<text x="20" y="${y + 8}" font-size="10" fill="#333">${esc(ratios)}</text>`), (y += 14);
    for (const t of r.targets) {
      const [colour, mark] = t.met === undefined ? ["#555", "·"] : t.met ? ["#276749", "✓"] : ["#c53030", "✗"];
      parts.push(`<text x="20" y="${y + 8}" font-size="10" fill="${colour}">${esc(`${mark} ${t.name}: ${t.value} (goal ${t.goal})`)}</text>`);
      y += 13;
    }
    y += 6;
  }
  parts.push(`<text x="640" y="62" font-size="10" fill="#555">latency (log axis, lower is better): p50 (solid) / p99 (light)</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${panelW}" height="${y + 20}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join("")}</svg>\n`;
}
