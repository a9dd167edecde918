import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";

test("defaults need no environment", () => {
  const c = loadConfig({});
  expect(c.port).toBe(8080);
  expect(c.databaseUrl).toBeUndefined();
  expect(c.redisUrl).toBeUndefined();
  expect(c.dataDir).toBe("./data");
  // the development server, on the public development secret, listens on loopback only
  expect(c.host).toBe("127.0.0.1");
});

const SECRET = "0123456789abcdef0123456789abcdef";

test.each([
  [{ DATABASE_URL: "postgres://db/chat" }, "DATABASE_URL"],
  [{ REDIS_URL: "redis://r:6379" }, "REDIS_URL"],
  [{ HOST: "0.0.0.0" }, "HOST=0.0.0.0"],
  [{ HOST: "10.0.0.5" }, "HOST=10.0.0.5"],
  [{ HOST: "0.0.0.0", TOKEN_SECRET: "dev-secret-change-me-dev-secret-change-me" }, "HOST=0.0.0.0"],
])("without TOKEN_SECRET a server that is not a loopback development server does not start: %p", (env, why) => {
  expect(() => loadConfig(env)).toThrow(ConfigError);
  expect(() => loadConfig(env)).toThrow(`TOKEN_SECRET is required (${why}`);
});

test("a development server may listen on any loopback address; with TOKEN_SECRET HOST defaults to every interface", () => {
  expect(loadConfig({ HOST: "::1" }).host).toBe("::1");
  expect(loadConfig({ HOST: "localhost" }).host).toBe("localhost");
  expect(loadConfig({ TOKEN_SECRET: SECRET }).host).toBe("0.0.0.0");
  expect(loadConfig({ TOKEN_SECRET: SECRET, DATABASE_URL: "postgres://db/chat", REDIS_URL: "redis://r:6379" }).tokenSecret).toBe(SECRET);
});

test("a node with DATABASE_URL and no TOKEN_SECRET exits with a message naming TOKEN_SECRET", () => {
  const r = Bun.spawnSync([process.execPath, "src/main.ts"], {
    env: { ...process.env, TOKEN_SECRET: "", HOST: "", PORT: "0", DATABASE_URL: "postgres://127.0.0.1:1/none" },
    stderr: "pipe",
  });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("TOKEN_SECRET is required");
});

test.each([
  [{ PORT: "http" }, "PORT"],
  [{ PORT: "70000" }, "PORT"],
  [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
  [{ REDIS_URL: "not a url" }, "REDIS_URL"],
  [{ TOKEN_SECRET: "short" }, "TOKEN_SECRET"],
  [{ MAX_FRAME_BYTES: "1" }, "MAX_FRAME_BYTES"],
  [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
  [{ TOKEN_MAX_TTL_SEC: "10" }, "TOKEN_MAX_TTL_SEC"],
  [{ LOGIN_MAX_PER_ACCOUNT_ADDRESS: "0" }, "LOGIN_MAX_PER_ACCOUNT_ADDRESS"],
])("bad config %p names the setting", (env, name) => {
  expect(() => loadConfig(env as Record<string, string>)).toThrow(ConfigError);
  expect(() => loadConfig(env as Record<string, string>)).toThrow(name);
});

test("the process exits with a message naming the setting", () => {
  const r = Bun.spawnSync([process.execPath, "src/main.ts"], { env: { ...process.env, PORT: "nope" }, stderr: "pipe" });
  expect(r.exitCode).toBe(2);
  expect(r.stderr.toString()).toContain("PORT");
});
