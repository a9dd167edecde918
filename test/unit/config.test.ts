import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";

test("defaults need no environment", () => {
  const c = loadConfig({});
  expect(c.port).toBe(8080);
  expect(c.databaseUrl).toBeUndefined();
  expect(c.redisUrl).toBeUndefined();
  expect(c.dataDir).toBe("./data");
});

test.each([
  [{ PORT: "http" }, "PORT"],
  [{ PORT: "70000" }, "PORT"],
  [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
  [{ REDIS_URL: "not a url" }, "REDIS_URL"],
  [{ TOKEN_SECRET: "short" }, "TOKEN_SECRET"],
  [{ MAX_FRAME_BYTES: "1" }, "MAX_FRAME_BYTES"],
  [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
])("bad config %p names the setting", (env, name) => {
  expect(() => loadConfig(env as Record<string, string>)).toThrow(ConfigError);
  expect(() => loadConfig(env as Record<string, string>)).toThrow(name);
});

test("the process exits with a message naming the setting", () => {
  const r = Bun.spawnSync([process.execPath, "src/main.ts"], { env: { ...process.env, PORT: "nope" }, stderr: "pipe" });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("PORT");
});
