// WORKERS=N: the process started by `npm start` becomes a supervisor of N worker processes, each a full
// node (its own NODE_ID, sharing PORT through reusePort, talking to the others over Redis). A worker that
// dies is started again (after a growing pause if it keeps dying); SIGTERM/SIGINT are passed on to every
// worker, which drain, and the supervisor exits when they all have: with 0 when every one drained cleanly, else
// with the first failing worker's code.
import type { Subprocess } from "bun";
import type { Config } from "../config.ts";

export async function superviseWorkers(cfg: Config, log: (msg: string) => void): Promise<never> {
  const entry = new URL("../main.ts", import.meta.url).pathname;
  const workers: (Subprocess | undefined)[] = [];
  const failures: number[] = [];
  let stopping = false;

  const start = (i: number) => {
    const child = Bun.spawn([process.execPath, entry], {
      env: { ...process.env, WORKERS: "1", REUSE_PORT: "1", WORKER_INDEX: String(i), NODE_ID: `${cfg.nodeId}-${i}` },
      stdio: ["ignore", "inherit", "inherit"],
    });
    workers[i] = child;
    const startedAt = Date.now();
    void child.exited.then((code) => {
      workers[i] = undefined;
      if (stopping) return;
      failures[i] = Date.now() - startedAt < 10_000 ? (failures[i] ?? 0) + 1 : 0;
      const wait = Math.min(30_000, 250 * 2 ** (failures[i] ?? 0));
      log(`worker ${i} exited with ${code}; starting it again in ${wait} ms`);
      setTimeout(() => !stopping && start(i), wait);
    });
  };
  for (let i = 0; i < cfg.workers; i++) start(i);
  log(`started ${cfg.workers} workers on :${cfg.port} (nodes ${cfg.nodeId}-0..${cfg.workers - 1})`);

  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.on(sig, async () => {
      if (stopping) return;
      stopping = true;
      for (const w of workers) w?.kill("SIGTERM");
      const codes = await Promise.all(workers.map((w) => w?.exited));
      const failed = codes.find((c) => c !== undefined && c !== 0);
      if (failed !== undefined) log(`a worker exited with ${failed} while draining`);
      process.exit(failed ?? 0);
    });
  }
  return new Promise<never>(() => {});
}
