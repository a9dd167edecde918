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

const families = new Map<string, Family>();
const collectors: (() => void)[] = [];

export function metric(name: string, help: string, type: "counter" | "gauge" = "counter", labels?: Labels) {
  let f = families.get(name);
  if (!f) families.set(name, (f = new Family(name, help, type)));
  return f.child(labels);
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
  return out.join("\n") + "\n";
}

/** Removes one labelled series, e.g. a room's counter once the room has gone quiet on this node. */
export function forgetMetric(name: string, labels: Labels): void {
  families.get(name)?.series.delete(JSON.stringify(labels));
}
