// userUp / userDown tell whether the user's cluster-wide status changed (its online or offline notice is due:
// core/presence-notices.ts), on one node and on Redis with two nodes.
import { afterAll, describe, expect, test } from "bun:test";
import type { Logger } from "../../src/app.ts";
import { Keys } from "../../src/bus/keys.ts";
import { MemoryPresence } from "../../src/presence/memory.ts";
import { RedisPresence } from "../../src/presence/redis.ts";
import { redisUrl } from "../helpers/services.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

describe("presence changes", () => {
  test("one node: the first up and the last down change the status", async () => {
    const p = new MemoryPresence();
    expect(await p.userUp("u", "user")).toBe(true);
    expect(await p.userDown("u", "user")).toBe(true);
    expect(await p.userUp("u", "user")).toBe(true);
  });

  describe("redis, two nodes", async () => {
    const keys = new Keys(`pc${process.pid}:`);
    const a = await RedisPresence.connect(redisUrl(), keys, "a", 15, 11, quiet);
    const b = await RedisPresence.connect(redisUrl(), keys, "b", 15, 11, quiet);
    afterAll(async () => {
      await a.close();
      await b.close();
    });

    test("only the first node to hold a user brings it online, only the last one to let go takes it offline", async () => {
      expect(await a.userUp("u1", "user")).toBe(true);
      expect(await b.userUp("u1", "user")).toBe(false);
      expect(await a.userDown("u1", "user")).toBe(false);
      expect(await b.isOnline("u1")).toBe(true);
      expect(await b.userDown("u1", "user")).toBe(true);
      expect(await a.isOnline("u1")).toBe(false);
      // Back on the other node: online again.
      expect(await b.userUp("u1", "user")).toBe(true);
      expect(await b.userDown("u1", "user")).toBe(true);
    });
  });
});
