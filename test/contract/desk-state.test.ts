// One contract for the desk's routing state (DeskState, core/desk-state.ts), run against the single-node maps
// and against Redis with two nodes (each answers for the whole cluster, every call atomic across them). Then,
// on Redis only, how the state hangs off the presence leases: a node whose lease ran out is swept, a node
// whose own lease was lost writes its sessions again. On Redis every describe gets a prefix of its own.
import { afterAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import type { Logger } from "../../src/app.ts";
import { Keys } from "../../src/bus/keys.ts";
import type { DeskState } from "../../src/core/desk-state.ts";
import { MemoryDeskState } from "../../src/desk/memory.ts";
import { RedisDeskState } from "../../src/desk/redis.ts";
import { RedisPresence } from "../../src/presence/redis.ts";
import { until } from "../helpers/procs.ts";
import { redisClusterUrls, redisUrl } from "../helpers/services.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface Node {
  desk: RedisDeskState;
  presence: RedisPresence;
}
/** A node of a cluster on `keys`: its presence leases (renewed every ttlSec / 3), its desk state hooked into them. */
async function node(keys: Keys, id: string, ttlSec: number, slot: number): Promise<Node> {
  const target = keys.cluster ? { cluster: redisClusterUrls() } : redisUrl();
  const presence = await RedisPresence.connect(target, keys, id, ttlSec, slot, quiet);
  return { presence, desk: await RedisDeskState.connect(target, keys, presence, quiet) };
}
async function closeNodes(...ns: Node[]): Promise<void> {
  for (const n of ns) await n.desk.close();
  for (const n of ns) await n.presence.close();
}

type Impl = { a: DeskState; b: DeskState; close(): Promise<void> };
const impls: [string, () => Promise<Impl>][] = [
  ["memory (one node)", async () => { const s = new MemoryDeskState(); return { a: s, b: s, close: () => s.close() }; }],
  [
    "redis (two nodes)",
    async () => {
      const keys = new Keys(`dt${process.pid}:`);
      const [na, nb] = [await node(keys, "a", 15, 1), await node(keys, "b", 15, 2)];
      return { a: na.desk, b: nb.desk, close: () => closeNodes(na, nb) };
    },
  ],
  [
    "redis cluster (two nodes)",
    async () => {
      const keys = new Keys(`dt${process.pid}:`, true);
      const [na, nb] = [await node(keys, "a", 15, 1), await node(keys, "b", 15, 2)];
      return { a: na.desk, b: nb.desk, close: () => closeNodes(na, nb) };
    },
  ],
];

const loads = async (s: DeskState, group: string) => Object.fromEntries([...(await s.agents(group))].map(([id, l]) => [id, l.load]));

for (const [name, make] of impls) {
  describe(`DeskState on ${name}`, async () => {
    const { a, b, close } = await make();
    afterAll(close);

    test("an agent is online from its first session to its last, on any node, not suspended and serving nobody", async () => {
      await a.agentUp("on1", "g-on", 2);
      expect([...(await b.agents("g-on"))]).toEqual([["on1", { suspended: false, load: 0 }]]);
      await b.agentUp("on1", "g-on", 2);
      await a.agentDown("on1");
      expect([...(await a.agents("g-on")).keys()]).toEqual(["on1"]);
      await b.agentDown("on1");
      expect((await a.agents("g-on")).size).toBe(0);
      expect(await a.suspend("on1", true)).toBeUndefined();
    });

    test("a guest goes to the least busy available agent (ties by id) and counts on it; a second session keeps its agent", async () => {
      await a.agentUp("lb-2", "g-lb", 3);
      await b.agentUp("lb-1", "g-lb", 3);
      const r1 = await b.guestUp("lb-g1", "g-lb", undefined);
      expect(r1).toMatchObject({ agent: "lb-1" });
      expect(r1.v).toBeGreaterThan(0);
      expect(await a.guestUp("lb-g2", "g-lb", undefined)).toMatchObject({ agent: "lb-2" });
      expect(await a.guestUp("lb-g3", "g-lb", undefined)).toMatchObject({ agent: "lb-1" });
      expect(await loads(b, "g-lb")).toEqual({ "lb-1": 2, "lb-2": 1 });
      expect(await a.guestUp("lb-g1", "g-lb", undefined)).toEqual({ agent: "lb-1" });
      expect(await b.guest("lb-g1")).toEqual({ online: true, agent: "lb-1", position: undefined });
      expect(await a.guest("lb-nobody")).toEqual({ online: false });
      expect(await b.onlineGuests(["lb-g2", "lb-nobody", "lb-g3"])).toEqual(new Set(["lb-g2", "lb-g3"]));
    });

    test("a guest goes back to its last agent while that one is available, even when another is less busy", async () => {
      await a.agentUp("st-1", "g-st", 3);
      await b.agentUp("st-2", "g-st", 3);
      await a.guestUp("st-x", "g-st", undefined); // st-1 now serves one
      expect(await b.guestUp("st-g", "g-st", "st-1")).toMatchObject({ agent: "st-1" });
      expect(await a.guestUp("st-h", "g-st", "st-gone")).toMatchObject({ agent: "st-2" });
    });

    test("with no agent available guests wait in order; drain assigns the first first, up to max and capacity, with growing versions", async () => {
      expect(await a.guestUp("q-1", "g-q", undefined)).toEqual({ position: 1 });
      expect(await b.guestUp("q-2", "g-q", undefined)).toEqual({ position: 2 });
      expect(await a.guestUp("q-3", "g-q", undefined)).toEqual({ position: 3 });
      expect(await b.guestUp("q-2", "g-q", undefined)).toEqual({ position: 2 });
      expect(await b.queue("g-q")).toEqual(["q-1", "q-2", "q-3"]);
      expect(await a.guest("q-2")).toEqual({ online: true, agent: undefined, position: 2 });
      expect(await a.drain("g-q", 5)).toEqual([]);
      await b.agentUp("q-ag", "g-q", 2);
      const [first, ...none] = await a.drain("g-q", 1);
      expect(none).toEqual([]);
      expect(first).toMatchObject({ guest: "q-1", agent: "q-ag" });
      const [second, ...full] = await b.drain("g-q", 5);
      expect(full).toEqual([]); // capacity 2 reached: q-3 still waits
      expect(second).toMatchObject({ guest: "q-2", agent: "q-ag" });
      expect(second!.v).toBeGreaterThan(first!.v);
      expect(await a.queue("g-q")).toEqual(["q-3"]);
      expect(await b.guest("q-3")).toMatchObject({ online: true, position: 1 });
    });

    test("a suspended agent is given no guest until it resumes; its flag shows on every node", async () => {
      await a.agentUp("su-1", "g-su", 5);
      expect(await b.suspend("su-1", true)).toBe("g-su");
      expect((await a.agents("g-su")).get("su-1")).toEqual({ suspended: true, load: 0 });
      expect(await a.guestUp("su-g", "g-su", "su-1")).toEqual({ position: 1 });
      expect(await a.drain("g-su", 5)).toEqual([]);
      expect(await a.suspend("su-1", false)).toBe("g-su");
      expect(await b.drain("g-su", 5)).toMatchObject([{ guest: "su-g", agent: "su-1" }]);
    });

    test("a guest's last session anywhere frees its agent's place and leaves the queue", async () => {
      await a.agentUp("fr-1", "g-fr", 1);
      expect(await a.guestUp("fr-x", "g-fr", undefined)).toMatchObject({ agent: "fr-1" });
      expect(await b.guestUp("fr-w", "g-fr", undefined)).toEqual({ position: 1 });
      expect(await a.guestUp("fr-q", "g-fr", undefined)).toEqual({ position: 2 });
      expect(await b.guestUp("fr-x", "g-fr", undefined)).toEqual({ agent: "fr-1" });
      expect(await a.guestDown("fr-x")).toBeUndefined(); // still connected through b
      expect(await loads(a, "g-fr")).toEqual({ "fr-1": 1 });
      expect(await b.guestDown("fr-x")).toBe("g-fr");
      expect(await loads(a, "g-fr")).toEqual({ "fr-1": 0 });
      expect(await a.guest("fr-x")).toEqual({ online: false });
      expect(await a.guestDown("fr-q")).toBe("g-fr");
      expect(await b.queue("g-fr")).toEqual(["fr-w"]);
      expect(await a.drain("g-fr", 5)).toMatchObject([{ guest: "fr-w", agent: "fr-1" }]);
    });

    test("an agent's last session leaves its guests online and served by nobody", async () => {
      await a.agentUp("ad-1", "g-ad", 2);
      await b.guestUp("ad-g", "g-ad", undefined);
      await a.agentDown("ad-1");
      expect(await b.guest("ad-g")).toEqual({ online: true, agent: undefined, position: undefined });
      expect((await a.agents("g-ad")).size).toBe(0);
    });

    test("a guest that comes back for another group leaves the old one, whose place came free", async () => {
      await a.agentUp("og-1", "g-old", 1);
      expect(await a.guestUp("og-g", "g-old", undefined)).toMatchObject({ agent: "og-1" });
      expect(await b.guestUp("og-g", "g-new", undefined)).toEqual({ position: 1, freed: "g-old" });
      expect(await loads(a, "g-old")).toEqual({ "og-1": 0 });
      expect(await a.queue("g-new")).toEqual(["og-g"]);
    });

    test("transfer moves a guest to another online agent of the group at a newer version; otherwise unavailable or conflict", async () => {
      await a.agentUp("tr-1", "g-tr", 5);
      await b.agentUp("tr-2", "g-tr", 5);
      await b.agentUp("tr-other", "g-tr-other", 5);
      const { v: v0 } = await a.guestUp("tr-g", "g-tr", undefined);
      const v1 = await b.transfer("tr-g", "tr-1", "tr-2", "g-tr");
      expect(typeof v1 === "number" && v1 > v0!).toBe(true);
      expect(await a.guest("tr-g")).toMatchObject({ online: true, agent: "tr-2" });
      expect(await loads(a, "g-tr")).toEqual({ "tr-1": 0, "tr-2": 1 });
      expect(await a.transfer("tr-g", "tr-1", "tr-2", "g-tr")).toBe("conflict"); // tr-2 serves it now, not tr-1
      expect(await a.transfer("tr-g", "tr-2", "tr-2", "g-tr")).toBe("unavailable");
      expect(await a.transfer("tr-g", "tr-2", "tr-offline", "g-tr")).toBe("unavailable");
      expect(await a.transfer("tr-g", "tr-2", "tr-other", "g-tr")).toBe("unavailable");
      // A guest not online: only its record moves, at a newer version still.
      const v2 = await b.transfer("tr-away", "tr-2", "tr-1", "g-tr");
      expect(typeof v2 === "number" && v2 > (v1 as number)).toBe(true);
      // A waiting guest leaves the queue for the agent it is given.
      await b.suspend("tr-1", true);
      await b.suspend("tr-2", true);
      expect(await a.guestUp("tr-w", "g-tr", undefined)).toEqual({ position: 1 });
      expect(typeof (await b.transfer("tr-w", "tr-1", "tr-2", "g-tr"))).toBe("number");
      expect(await a.queue("g-tr")).toEqual([]);
      expect(await b.guest("tr-w")).toMatchObject({ agent: "tr-2" });
    });

    test("release undoes an assignment: the guest waits first in its queue, with the given last agent", async () => {
      await a.agentUp("rl-1", "g-rl", 1);
      expect(await b.guestUp("rl-g", "g-rl", undefined)).toMatchObject({ agent: "rl-1" });
      expect(await a.guestUp("rl-w", "g-rl", undefined)).toEqual({ position: 1 });
      expect(await a.release("rl-g", "rl-someone", undefined)).toBeUndefined();
      expect(await a.release("rl-g", "rl-1", "rl-before")).toBe("g-rl");
      expect(await b.queue("g-rl")).toEqual(["rl-g", "rl-w"]);
      expect(await b.guest("rl-g")).toEqual({ online: true, agent: undefined, position: 1 });
      expect(await loads(a, "g-rl")).toEqual({ "rl-1": 0 });
      expect(await b.drain("g-rl", 5)).toMatchObject([{ guest: "rl-g", agent: "rl-1" }]);
    });
  });
}

describe("DeskState on redis: hung off the presence leases", () => {
  const keys = new Keys(`dl${process.pid}:`);
  const r = new Redis(redisUrl(), { lazyConnect: true });
  afterAll(() => r.quit());

  test("a node whose lease ran out is swept by the node that notices: its agents go offline, its guests free their places, waiting guests are served", async () => {
    // a renews (and looks for dead nodes) every second; b's lease is long, so only a ends it here.
    const [a, b] = [await node(keys, "a", 3, 11), await node(keys, "b", 60, 12)];
    try {
      await a.desk.agentUp("k-0", "g-k", 1);
      expect(await b.desk.guestUp("k-gv", "g-k", undefined)).toMatchObject({ agent: "k-0" }); // held through b
      await b.desk.agentUp("k-v", "g-k", 1);
      expect(await a.desk.guestUp("k-g1", "g-k", undefined)).toMatchObject({ agent: "k-v" }); // served from b
      expect(await a.desk.guestUp("k-gw", "g-k", undefined)).toEqual({ position: 1 });
      const freed = new Promise<string>((res) => a.desk.onFreed(res));
      // b's lease runs out (as when its process is killed): on Redis's clock it expired long ago.
      await r.zadd(keys.nodes(), 0, "b");
      expect(await freed).toBe("g-k");
      expect(await a.desk.guest("k-gv")).toEqual({ online: false });
      expect(await a.desk.guest("k-g1")).toEqual({ online: true, agent: undefined, position: undefined });
      expect(await loads(a.desk, "g-k")).toEqual({ "k-0": 0 });
      expect(await a.desk.drain("g-k", 5)).toMatchObject([{ guest: "k-gw", agent: "k-0" }]);
      // b's presence entries went after its desk entries, and its lease with them.
      expect(await r.zscore(keys.nodes(), "b")).toBeNull();
    } finally {
      await closeNodes(a, b);
    }
  });

  test("a node whose lease was lost with its entries (Redis emptied) writes its sessions again at its next renewal", async () => {
    // b renews every second; a's lease is long, so a sweeps nobody here.
    const [a, b] = [await node(keys, "a2", 60, 21), await node(keys, "b2", 3, 22)];
    try {
      await b.desk.agentUp("ll-1", "g-ll", 2);
      expect(await a.desk.guestUp("ll-g", "g-ll", undefined)).toMatchObject({ agent: "ll-1" });
      expect(await b.desk.guestUp("ll-w", "g-ll", undefined)).toMatchObject({ agent: "ll-1" });
      await a.desk.agentUp("ll-2", "g-ll", 2);
      const freed = new Promise<string>((res) => b.desk.onFreed(res));
      // Everything of b in Redis is gone: its lease, its desk entries (the desk keys are emptied outright).
      const deskKeys = await r.keys(`${keys.deskAgent("").slice(0, -2)}*`);
      await r.zrem(keys.nodes(), "b2");
      await r.del(...deskKeys);
      expect(await freed).toBe("g-ll");
      expect(await r.sismember(keys.deskNodes(), "b2")).toBe(1);
      // b's agent is online again, its guest waits for a place (a's own entries are not b's to restore).
      expect([...(await a.desk.agents("g-ll")).keys()]).toEqual(["ll-1"]);
      expect(await a.desk.guest("ll-w")).toEqual({ online: true, agent: undefined, position: 1 });
      expect(await a.desk.drain("g-ll", 5)).toMatchObject([{ guest: "ll-w", agent: "ll-1" }]);
    } finally {
      await closeNodes(a, b);
    }
  });

  test("a node swept after a stall writes its users again: they are online anywhere again", async () => {
    const [a, b] = [await node(keys, "a3", 60, 31), await node(keys, "b3", 3, 32)];
    try {
      await b.presence.userUp("st-u", "user");
      expect(await a.presence.isOnline("st-u")).toBe(true);
      // Another node swept b while it stalled: its lease and its entries are gone.
      await r.zrem(keys.nodes(), "b3");
      await r.del(keys.userNodes("st-u"), keys.nodeUsers("b3"));
      expect(await a.presence.isOnline("st-u")).toBe(false);
      await until("b's user is online again", () => a.presence.isOnline("st-u"), 10_000);
    } finally {
      await closeNodes(a, b);
    }
  });
});
