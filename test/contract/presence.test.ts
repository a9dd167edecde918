// One contract for Presence, run against the single-node maps and against Redis with two nodes (each
// answers for the whole cluster). On Redis the nodes get a prefix of this file's own.
import { afterAll, describe, expect, test } from "bun:test";
import type { Logger } from "../../src/app.ts";
import { Keys } from "../../src/bus/keys.ts";
import { MemoryPresence } from "../../src/presence/memory.ts";
import type { Presence } from "../../src/presence/presence.ts";
import { RedisPresence } from "../../src/presence/redis.ts";
import { until } from "../helpers/procs.ts";
import { redisClusterUrls, redisUrl } from "../helpers/services.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const impls: [string, () => Promise<[Presence, Presence]>][] = [
  ["memory (one node)", async () => { const p = new MemoryPresence(); return [p, p]; }],
  [
    "redis (two nodes)",
    async () => {
      const keys = new Keys(`pt${process.pid}:`);
      return [await RedisPresence.connect(redisUrl(), keys, "a", 15, 1, quiet), await RedisPresence.connect(redisUrl(), keys, "b", 15, 1, quiet)];
    },
  ],
  [
    "redis cluster (two nodes)",
    async () => {
      const keys = new Keys(`pt${process.pid}:`, true);
      const rc = { cluster: redisClusterUrls() };
      return [await RedisPresence.connect(rc, keys, "a", 15, 1, quiet), await RedisPresence.connect(rc, keys, "b", 15, 1, quiet)];
    },
  ],
];

for (const [name, make] of impls) {
  describe(`Presence on ${name}`, async () => {
    const [a, b] = await make();
    afterAll(async () => { await a.close(); if (b !== a) await b.close(); });

    test("a user is online while any node holds one of its connections", async () => {
      await a.userUp("u1", "user");
      await b.userUp("u2", "user");
      expect(await b.isOnline("u1")).toBe(true);
      expect([...(await a.onlineOf(["u1", "u2", "u3"]))].sort()).toEqual(["u1", "u2"]);
      if (b !== a) {
        // Connected on both nodes: one node letting go leaves it online.
        await b.userUp("u1", "user");
        await a.userDown("u1", "user");
        expect(await a.isOnline("u1")).toBe(true);
      }
      await (b !== a ? b : a).userDown("u1", "user");
      expect(await a.isOnline("u1")).toBe(false);
      expect(await b.isOnline("u1")).toBe(false);
    });

    test("room counts add up over the nodes and fall as members leave", async () => {
      await a.roomDelta("r:x", 1);
      await a.roomDelta("r:x", 1);
      await b.roomDelta("r:x", 1);
      expect(await a.roomCount("r:x")).toBe(3);
      expect(await b.roomCount("r:x")).toBe(3);
      await a.roomDelta("r:x", -2);
      expect(await b.roomCount("r:x")).toBe(1);
      await b.roomDelta("r:x", -1);
      expect(await a.roomCount("r:x")).toBe(0);
    });

    test("role samples are distinct online users of the role, from every node", async () => {
      for (let i = 0; i < 4; i++) await (i % 2 ? b : a).userUp(`h${i}`, "host");
      await a.userUp("viewer", "user");
      expect((await b.sampleRole("host", 10)).sort()).toEqual(["h0", "h1", "h2", "h3"]);
      const two = await a.sampleRole("host", 2);
      expect(two.length).toBe(2);
      expect(new Set(two).size).toBe(2);
      await b.userDown("h1", "host");
      expect((await a.sampleRole("host", 10)).sort()).toEqual(["h0", "h2", "h3"]);
      expect(await a.sampleRole("nobody", 3)).toEqual([]);
    });

    test("a sample among many online users: distinct, online now, any of them can be drawn; users who left never", async () => {
      const all = Array.from({ length: 300 }, (_, i) => `m${i}`);
      for (const [i, u] of all.entries()) await (i % 2 ? b : a).userUp(u, "star");
      // Leave from the start, the middle and the end of the role's list, and one comes back.
      for (const u of ["m0", "m150", "m299", "m7"]) await (Number(u.slice(1)) % 2 ? b : a).userDown(u, "star");
      await b.userUp("m7", "star");
      const online = new Set(all.filter((u) => !["m0", "m150", "m299"].includes(u)));
      const seen = new Set<string>();
      for (let k = 0; k < 60; k++) {
        const s = await (k % 2 ? a : b).sampleRole("star", 10);
        expect(s.length).toBe(10);
        expect(new Set(s).size).toBe(10);
        for (const u of s) {
          expect(online.has(u)).toBe(true);
          seen.add(u);
        }
      }
      // 600 draws of 297: a uniform sample sees about 257 of them. Redis's SRANDMEMBER (a count below a third of
      // the set picks random hash buckets) is known to favour some members: about half are seen there.
      expect(seen.size).toBeGreaterThan(name.startsWith("memory") ? 220 : 90);
      expect((await a.sampleRole("star", 1000)).sort()).toEqual([...online].sort());
      for (const u of online) await (Number(u.slice(1)) % 2 ? b : a).userDown(u, "star");
    });
  });
}

describe("Presence on redis: leases", () => {
  test("a node that closes takes its users and room counts with it, and its id slot is free again", async () => {
    const keys = new Keys(`pl${process.pid}:`);
    const a = await RedisPresence.connect(redisUrl(), keys, "a", 15, 7, quiet);
    const b = await RedisPresence.connect(redisUrl(), keys, "b", 15, 7, quiet);
    expect(a.slot).toBe(7);
    expect(b.slot).toBe(8); // slot 7 is a's while it lives
    await b.userUp("gone", "host");
    await b.roomDelta("r:y", 2);
    expect(await a.roomCount("r:y")).toBe(2);
    await b.close();
    expect(await a.isOnline("gone")).toBe(false);
    expect(await a.sampleRole("host", 5)).toEqual([]);
    expect(await a.roomCount("r:y")).toBe(0);
    const c = await RedisPresence.connect(redisUrl(), keys, "c", 15, 8, quiet);
    expect(c.slot).toBe(8);
    await c.close();
    await a.close();
  });
});

describe("Presence on redis: node leases as the cluster's liveness (NodeLeases)", () => {
  test("a dead node's other state goes first (onNodeGone), on one node; a listener that fails leaves it for the next renewal", async () => {
    const keys = new Keys(`pg${process.pid}:`);
    const Redis = (await import("ioredis")).default;
    const r = new Redis(redisUrl());
    // a renews every second; b's lease is long, so only a ends it here.
    const a = await RedisPresence.connect(redisUrl(), keys, "a", 3, 41, quiet);
    const b = await RedisPresence.connect(redisUrl(), keys, "b", 60, 42, quiet);
    try {
      await b.userUp("gone", "host");
      const calls: [string, boolean][] = [];
      let done!: () => void;
      const swept = new Promise<void>((res) => (done = res));
      a.onNodeGone(async (n) => {
        // the dead node's presence entries are still there while the listener runs
        calls.push([n, (await r.hexists(keys.nodeUsers(n), "gone")) === 1]);
        if (calls.length === 1) throw new Error("Redis away");
        done();
      });
      const stop = b.onNodeGone(async () => void calls.push(["b saw itself", false]));
      stop();
      await r.zadd(keys.nodes(), 0, "b"); // b's lease ran out, as when it is killed
      await swept;
      expect(calls).toEqual([["b", true], ["b", true]]);
      await until("b's lease is removed", async () => (await r.zscore(keys.nodes(), "b")) === null);
      expect(await r.hexists(keys.nodeUsers("b"), "gone")).toBe(0);
      expect(await a.sampleRole("host", 5)).toEqual([]);
    } finally {
      await a.close();
      await b.close();
      r.disconnect();
    }
  });
});
