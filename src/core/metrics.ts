// Process-wide counters and gauges, exposed in Prometheus text format at /metrics.
// A counter is a plain number field bumped on the hot path: no labels map lookup per event.

type Labels = Record<string, string>;

class Family {
  readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  child(labels: Labels = {}): { value: number } {
    const key = JSON.stringify(labels);
    let s = this.series.get(key);
    if (!s) this.series.set(key, (s = { labels, value: 0 }));
    return s;
  }
}

/** A Prometheus histogram: cumulative buckets, a sum and a count. */
class Histogram {
  private readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
  }
  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    out.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
  }
}

const families = new Map<string, Family>();
const histograms = new Map<string, Histogram>();

export function histogram(name: string, help: string, buckets: number[]): Histogram {
  let h = histograms.get(name);
  if (!h) histograms.set(name, (h = new Histogram(name, help, buckets)));
  return h;
}
const collectors: (() => void)[] = [];

export function metric(name: string, help: string, type: "counter" | "gauge" = "counter", labels?: Labels) {
  let f = families.get(name);
  if (!f) families.set(name, (f = new Family(name, help, type)));
  return f.child(labels);
}

/**
 * The series of a family with one label, looked up by that label's value without building its key: for a hot
 * path that counts per protocol (frames received) or per event that knows only the label's value.
 */
export function metricBy(name: string, help: string, type: "counter" | "gauge", label: string): (value: string) => { value: number } {
  const children = new Map<string, { value: number }>();
  return (value) => {
    let c = children.get(value);
    if (!c) children.set(value, (c = metric(name, help, type, { [label]: value })));
    return c;
  };
}

/** Runs before each scrape, for gauges read from elsewhere (connections, queue depths). */
export function onCollect(fn: () => void): void {
  collectors.push(fn);
}

export function renderMetrics(): string {
  for (const c of collectors) c();
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const { labels, value } of f.series.values()) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`)
        .join(",");
      out.push(`${f.name}${l ? `{${l}}` : ""} ${value}`);
    }
  }
  for (const h of histograms.values()) h.render(out);
  return out.join("\n") + "\n";
}

/** Removes one labelled series, e.g. a room's counter once the room has gone quiet on this node. */
export function forgetMetric(name: string, labels: Labels): void {
  families.get(name)?.series.delete(JSON.stringify(labels));
}

/** The current value of one series, or undefined when it does not exist (read without creating it). */
export function peekMetric(name: string, labels: Labels = {}): number | undefined {
  return families.get(name)?.series.get(JSON.stringify(labels))?.value;
}

/** The sum of every series of a family (0 when there is none). */
export function sumMetric(name: string): number {
  let n = 0;
  for (const s of families.get(name)?.series.values() ?? []) n += s.value;
  return n;
}

/** A histogram's running sum and count, or undefined when it is not registered. */
export function peekHistogram(name: string): { sum: number; count: number } | undefined {
  const h = histograms.get(name);
  return h && { sum: h.sum, count: h.count };
}
