// The bench's smoke: every scenario runs for about a second with tiny N against the suite's Postgres and
// Redis, and must complete and report. Never its speed: the figures are only checked to be figures.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCENARIOS = ["heartbeat", "fanout", "offline-pull", "connections", "cluster", "durable", "direct", "social-http", "longpoll", "moderation", "partitioned-pull"];

test(
  "bun run bench --smoke: every scenario completes and reports",
  async () => {
    const out = mkdtempSync(join(tmpdir(), "bench-smoke-"));
    try {
      const proc = Bun.spawn([process.execPath, "bench/run.ts", "--smoke", "--seconds", "0.6", "--warmup", "0.3", "--out", out], {
        cwd: join(import.meta.dir, "../.."),
        stdout: "pipe",
        stderr: "pipe",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) console.error(stderr.slice(-4000));
      expect(code).toBe(0);
      const run = JSON.parse(readFileSync(join(out, "latest.json"), "utf8"));
      expect(run.failures).toEqual([]);
      expect(run.machine.nproc).toBeGreaterThan(0);
      expect(run.results.map((r: { scenario: string }) => r.scenario)).toEqual(SCENARIOS);
      for (const r of run.results) {
        expect(r.rows.length).toBeGreaterThan(0);
        for (const row of r.rows) {
          // Named, so a failure says which scenario's row came out empty.
          expect(`${r.scenario} · ${row.server}: ${Number.isFinite(row.value) && row.value > 0 ? "measured" : row.value}`).toBe(`${r.scenario} · ${row.server}: measured`);
        }
        expect(stdout).toContain(`## ${r.scenario} — `);
        // A target is MET or MISSED only where a goal is set (≥ or ≤ a figure); any other figure is only reported.
        for (const t of r.targets) if (t.met !== undefined) expect(`${r.scenario}: ${t.name}: ${t.goal}`).toMatch(/: [≥≤] /);
      }
      // Ours and every peer took part where the scenario has peers.
      const servers = (s: string) => run.results.find((r: { scenario: string }) => r.scenario === s).rows.map((x: { server: string }) => x.server);
      expect(servers("heartbeat")).toEqual(["ours", "Bun.serve raw", "Node ws", "Socket.IO"]);
      // Heartbeat's open loop takes turns: slice 1 of every server, then slice 2 of every server.
      const hb = run.results.find((r: { scenario: string }) => r.scenario === "heartbeat");
      const openSlices = hb.windows.map((w: { label: string }) => w.label).filter((l: string) => l.includes(" open loop "));
      expect(openSlices.map((l: string) => `${l.split(" open loop ")[0]} ${l.slice(-3)}`)).toEqual(
        [1, 2].flatMap((k) => ["ours", "Bun.serve raw", "Node ws", "Socket.IO"].map((s) => `${s} ${k}/2`)),
      );
      expect(servers("fanout")).toEqual(["ours must-deliver", "ours danmaku", "Bun.serve raw", "Node ws", "Socket.IO", "Bun.serve coalescing"]);
      expect(servers("cluster")).toEqual(["ours 1 node", "ours 2 nodes", "ours 2 nodes, Redis Cluster", "Socket.IO 1 node", "Socket.IO 2 nodes"]);
      // Every setup of ours ran the open loop at one matched rate, the one its target compares CPU per delivery at.
      const cl = run.results.find((r: { scenario: string }) => r.scenario === "cluster");
      const matchedKey = `deliveries per server CPU s at ${cl.params.matchedMsgsPerSec} msg/s`;
      expect(cl.rows.filter((r: { extra: object }) => matchedKey in r.extra).map((r: { server: string }) => r.server)).toEqual(["ours 1 node", "ours 2 nodes", "ours 2 nodes, Redis Cluster"]);
      expect(cl.windows.filter((w: { label: string }) => w.label === `danmaku open loop at ${cl.params.matchedMsgsPerSec} msg/s`).length).toBe(3);
      expect(servers("direct")).toEqual(["ours 1 node", "ours 2 nodes", "ours 2 nodes, Redis Cluster"]);
      expect(servers("social-http")).toEqual(["ours social HTTP", "ours native WebSocket", "Bun.serve raw HTTP"]);
      expect(servers("longpoll")).toEqual(["ours long poll", "ours native WebSocket", "ours push to 10 of 50 online hosts"]);
      expect(servers("partitioned-pull")).toEqual(["ours partitioned (12 partitions)", "ours unpartitioned"]);
      // Every ratio and every target with a figure has its min / median / max (one run: all three the same),
      // and every measured window keeps its histogram and the CPU seconds of each process.
      for (const r of run.results) {
        const spread = (name: string) => r.spreads.find((x: { name: string }) => x.name === name);
        for (const x of r.ratios) {
          const name = `${x.ours} / ${x.peer}${x.what ? ` (${x.what})` : ""}`;
          expect(`${r.scenario} · ${name}: ${Number.isFinite(spread(name)?.median) ? "spread" : "no spread"}`).toBe(`${r.scenario} · ${name}: spread`);
        }
        for (const t of r.targets) {
          if (Number.isFinite(parseFloat(t.value))) expect(`${r.scenario} · ${t.name}: ${Number.isFinite(spread(t.name)?.median) ? "spread" : "no spread"}`).toBe(`${r.scenario} · ${t.name}: spread`);
        }
        for (const w of r.windows ?? []) {
          expect(Array.isArray(w.hist)).toBe(true);
          expect(Object.keys(w.cpu).some((k) => k.startsWith("generator "))).toBe(true);
        }
      }
      // Fan-out: ours against both raw Bun peers in deliveries, frames, bytes and CPU per delivery; frames and
      // bytes counted for every row; each row's closed loop says why its window stopped growing.
      const fan = run.results.find((r: { scenario: string }) => r.scenario === "fanout");
      for (const peer of ["Bun.serve raw", "Bun.serve coalescing"])
        for (const what of [undefined, "frames/s", "bytes/s", "CPU per delivery, peer / ours"])
          expect(fan.ratios.some((x: { ours: string; peer: string; what?: string }) => x.ours === "ours must-deliver" && x.peer === peer && x.what === what)).toBe(true);
      for (const row of fan.rows) {
        expect(row.extra["frames/s"]).toBeGreaterThan(0);
        expect(row.extra["bytes/s"]).toBeGreaterThan(0);
        expect(fan.notes.some((n: string) => n.startsWith(`${row.server}: closed loop at ${row.extra.window} in flight`))).toBe(true);
      }
      expect(fan.windows.some((w: { cpu: Record<string, number> }) => "postgres" in w.cpu)).toBe(true);
      expect(stdout).toContain("ours must-deliver / Bun.serve coalescing: deliveries/s ");
      expect(readFileSync(join(out, "latest.svg"), "utf8")).toStartWith("<svg");
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
  240_000,
);
