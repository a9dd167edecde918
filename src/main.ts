// Process entry: `bun src/main.ts` (npm start). Reads the environment once, starts the node (or, with
// WORKERS=N, N worker nodes: cluster/workers.ts), and on SIGTERM/SIGINT drains it (clients told to
// reconnect with close code 4200, pending writes flushed).
import { ConfigError, loadConfig, usesDevSecret } from "./config.ts";
import { superviseWorkers } from "./cluster/workers.ts";
import { startServer } from "./server.ts";
import { guardDriverCrash } from "./store/db.ts";

let cfg;
try {
  cfg = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    console.error(`config error: ${e.message}`);
    process.exit(2);
  }
  throw e;
}

if (cfg.workers > 1) await superviseWorkers(cfg, (m) => console.error(`${new Date().toISOString()} info [supervisor] ${m}`));

guardDriverCrash((m) => console.error(`${new Date().toISOString()} warn ${m}`));
const running = await startServer(cfg, { reusePort: cfg.workers > 1 || process.env.REUSE_PORT === "1" });
const { log } = running.app;
if (usesDevSecret(cfg)) {
  log.warn(`TOKEN_SECRET is not set: development server on the public development secret, listening on ${cfg.host} only (set TOKEN_SECRET to serve other machines)`);
}
if (!cfg.apiKey) log.warn("API_KEY is not set: the server API (/api) refuses every request");
log.info(
  `listening on :${running.port} (pid ${process.pid}, store: ${running.app.storeDriver}${cfg.databaseUrl ? "" : ` in ${cfg.dataDir}`}, bus: ${running.app.bus.kind})`,
);

let stopping = false;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: draining`);
    try {
      await running.stop();
    } catch (e) {
      log.error(`${sig}: drain failed: ${(e as Error).stack ?? e}`);
      process.exit(1);
    }
    process.exit(0);
  });
}
