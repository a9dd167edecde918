// Starts a real server on port 0 for a test file, with helpers to make users and tokens.
import { loadConfig, type Config } from "../../src/config.ts";
import type { Bus } from "../../src/bus/bus.ts";
import { startServer, type Running } from "../../src/server.ts";
import { freshPgUrl, redisClusterUrls, redisUrl } from "./services.ts";

export const API_KEY = "test-api-key";

export interface TestServer extends Running {
  url: string;
  wsUrl: string;
  api(path: string, init?: { method?: string; body?: unknown; key?: string | null }): Promise<{ status: number; body: any }>;
  user(id: string, fields?: Record<string, unknown>): Promise<string>;
}

/** store: "pg" (a fresh database on the test Postgres) or "pglite" (in memory); bus: "memory", "redis" or "redis-cluster". */
export async function startTestServer(
  opts: { store?: "pg" | "pglite"; bus?: "memory" | "redis" | "redis-cluster" | Bus; env?: Record<string, string>; databaseUrl?: string } = {},
): Promise<TestServer> {
  const store = opts.store ?? "pg";
  const env: Record<string, string> = {
    PORT: "0",
    HOST: "127.0.0.1",
    API_KEY,
    TOKEN_SECRET: "test-secret-test-secret-test-secret-42",
    LOG_LEVEL: "error",
    ...opts.env,
  };
  if (store === "pg") env.DATABASE_URL = opts.databaseUrl ?? (await freshPgUrl());
  if (opts.bus === "redis") env.REDIS_URL = redisUrl();
  if (opts.bus === "redis-cluster") env.REDIS_URL = redisClusterUrls().join(",");
  const cfg: Config = loadConfig(env);
  const running = await startServer(cfg, {
    memoryDb: store === "pglite",
    bus: typeof opts.bus === "object" ? opts.bus : undefined,
  });
  const url = `http://127.0.0.1:${running.port}`;
  const api: TestServer["api"] = async (path, init = {}) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (init.key !== null) headers.authorization = `apikey ${init.key ?? API_KEY}`;
    const res = await fetch(url + path, {
      method: init.method ?? (init.body !== undefined ? "POST" : "GET"),
      headers,
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {}
    return { status: res.status, body };
  };
  return {
    ...running,
    url,
    wsUrl: `ws://127.0.0.1:${running.port}`,
    api,
    async user(id, fields = {}) {
      const r = await api("/api/users", { body: { id, ...fields } });
      if (r.status !== 200) throw new Error(`create user ${id}: ${r.status} ${JSON.stringify(r.body)}`);
      const t = await api(`/api/users/${id}/token`, { body: {} });
      return t.body.token as string;
    },
  };
}
