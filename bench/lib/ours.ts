// Our server as the bench runs it: exactly `bun src/main.ts`, plus two signals for the memory figures:
// SIGUSR2 → a full garbage collection (the connections scenario reads every server's memory after one),
// SIGUSR1 → the JS heap's object counts by type, written to the server's log (what a connection holds).
import { heapStats } from "bun:jsc";

process.on("SIGUSR2", () => Bun.gc(true));
process.on("SIGUSR1", () => {
  Bun.gc(true);
  const h = heapStats();
  const top = Object.entries(h.objectTypeCounts).sort((a, b) => b[1] - a[1]).slice(0, 40);
  console.error(`heap ${(h.heapSize / 2 ** 20).toFixed(1)} MB cap ${(h.heapCapacity / 2 ** 20).toFixed(1)} extra ${(h.extraMemorySize / 2 ** 20).toFixed(1)}, ${h.objectCount} objects: ${top.map(([k, v]) => `${k} ${v}`).join(", ")}`);
});
await import("../../src/main.ts");
