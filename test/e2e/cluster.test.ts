// A cluster of real server processes (`bun src/main.ts`) sharing one Postgres and a Redis of this file's
// own, which the test stops and starts again. Nodes are killed with SIGKILL and SIGTERM like in production.
// Every test runs twice: against a single Redis and against the suite's Redis Cluster (3 masters, 3 replicas;
// sharded pub/sub, hash-tagged keys), except the Redis restart (single Redis; a cluster's master failover is
// test/e2e/redis-failover.test.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { freePort, REDIS_MODES, TestCluster, until, userToken, type NodeProc } from "../helpers/procs.ts";
import { sdkLogin } from "../helpers/sdk.ts";

for (const mode of REDIS_MODES) {
  describe(`over ${mode}`, () => {
    // The kill -9 test pipelines 300 sends on one connection: more than the default MAX_FRAMES_IN_FLIGHT (64).
    const cluster = new TestCluster({ SEND_RATE: "10000", SEND_BURST: "10000", MAX_FRAMES_IN_FLIGHT: "1000" }, mode);
    const { nodes, clients, redis } = cluster;
    const tokens = new Map<string, string>();

    async function on(node: NodeProc, user: string): Promise<Client> {
      const c = await Client.native(node.wsUrl, tokens.get(user)!, user);
      clients.push(c);
      return c;
    }

    async function users(role: string, ...ids: string[]): Promise<void> {
      for (const id of ids) tokens.set(id, await userToken(nodes[0]!, id, { nick: id.toUpperCase(), role }));
    }

    const online = async (node: NodeProc, ...ids: string[]) => (await node.api(`/api/presence?users=${ids.join(",")}`)).body.online as string[];
    const health = async (node: NodeProc) => (await fetch(`${node.url}/healthz`)).json() as Promise<any>;

    /** Room frames until ticks carrying messages with each of `cmids` have arrived. */
    async function roomUntil(c: Client, cmids: string[]): Promise<any[]> {
      const seen: any[] = [];
      const want = new Set(cmids);
      while (want.size) {
        const f = await c.next();
        seen.push(f);
        if (f.t === "room") for (const it of f.items) if (it.t === "msg") want.delete(it.msg.cmid);
      }
      return seen;
    }
    const cmidsIn = (frames: any[]) => frames.flatMap((f) => (f.t === "room" ? f.items.filter((it: any) => it.t === "msg").map((it: any) => it.msg.cmid) : []));

    beforeAll(async () => {
      await cluster.start(3, "n");
      await users("user", "alice", "bob", "carol", "dave", ...Array.from({ length: 9 }, (_, i) => `v${i}`));
      await users("host", "h0", "h1", "h2", "h3", "h4", "h5");
    }, 60_000);

    afterAll(() => cluster.stop());

    describe("cluster over Redis (3 processes, real Postgres and Redis)", () => {
      test("a 1:1 message crosses nodes; presence is cluster-wide", async () => {
        // Users of the client SDK (what an app sees).
        const alice = await sdkLogin(nodes[0]!, "alice", { token: tokens.get("alice")! });
        const bob = await sdkLogin(nodes[1]!, "bob", { token: tokens.get("bob")! });
        const ack = await alice.client.send({ to: "bob" }, { text: "across" }, { cmid: "x1" });
        const push = await bob.next("message", (m) => m.conv === ack.conv);
        expect(push).toMatchObject({ id: ack.id, seq: ack.seq, from: "alice", body: { text: "across" } });
        // And back, the other way.
        const back = await bob.client.send({ to: "alice" }, "back", { cmid: "y1" });
        expect(await alice.next("message", (m) => m.conv === back.conv)).toMatchObject({ id: back.id, from: "bob" });
        expect((await online(nodes[2]!, "alice", "bob", "carol")).sort()).toEqual(["alice", "bob"]);
        await Promise.all([alice.client.flush(), bob.client.flush()]);
        alice.close();
        bob.close();
      });

      test("a room with members on every node: each message reaches each member once, with the cluster-wide count", async () => {
        expect((await nodes[0]!.api("/api/rooms/stage", { name: "Stage" }, "PUT")).status).toBe(200);
        const viewers: Client[] = [];
        for (let i = 0; i < 9; i++) {
          const c = await on(nodes[i % 3]!, `v${i}`);
          const r = await c.ok({ t: "join_room", room: "stage" });
          // Every join before this one, on whichever node, is in the count.
          expect(r.online).toBe(i + 1);
          viewers.push(c);
        }
        expect((await nodes[2]!.api("/api/rooms/stage")).body.online).toBe(9);
        await viewers[0]!.ok({ t: "room_send", room: "stage", class: "must", kind: "gift", body: { gid: 1 }, cmid: "g1" });
        await viewers[4]!.ok({ t: "room_send", room: "stage", kind: "danmaku", body: { text: "666" }, cmid: "d1" });
        await viewers[8]!.ok({ t: "room_send", room: "stage", class: "must", kind: "gift", body: { gid: 2 }, cmid: "g2" });
        // Each node's ticks keep their order; across nodes they interleave. A closing message from every node
        // comes after everything that node sent before it.
        for (let i = 0; i < 3; i++) await viewers[i]!.ok({ t: "room_send", room: "stage", class: "must", kind: "gift", body: { end: i }, cmid: `e${i}` });
        for (const v of viewers) {
          const got = cmidsIn(await roomUntil(v, ["g1", "g2", "e0", "e1", "e2"]));
          for (const once of ["g1", "g2", "e0", "e1", "e2"]) expect(got.filter((c) => c === once)).toEqual([once]);
          expect(got.filter((c) => c === "d1").length).toBeLessThanOrEqual(1);
        }
        // One leaves: the next tick anywhere carries the new count.
        await viewers[5]!.ok({ t: "leave_room", room: "stage" });
        expect((await nodes[0]!.api("/api/rooms/stage")).body.online).toBe(8);
        for (const v of viewers) await v.close();
        expect((await nodes[1]!.api("/api/rooms/stage")).body.online).toBe(0);
      });

      test("random sampling of online hosts across nodes: distinct, online, from every node", async () => {
        const hosts: Client[] = [];
        for (let i = 0; i < 6; i++) hosts.push(await on(nodes[i % 3]!, `h${i}`));
        const all = (await nodes[0]!.api("/api/presence/roles/host/sample?n=10")).body.users as string[];
        expect([...all].sort()).toEqual(["h0", "h1", "h2", "h3", "h4", "h5"]);
        for (let k = 0; k < 5; k++) {
          const some = (await nodes[k % 3]!.api("/api/presence/roles/host/sample?n=3")).body.users as string[];
          expect(some.length).toBe(3);
          expect(new Set(some).size).toBe(3);
          for (const u of some) expect(all).toContain(u);
        }
        // A host that goes offline is no longer sampled.
        await hosts[1]!.close();
        // The client's close resolves before its node has handled it: wait for that node to report h1 offline
        // (its presence write is visible cluster-wide once it resolves), then sample from another node.
        await until("h1's node has handled its close", async () => !(await online(nodes[1]!, "h1")).includes("h1"));
        const after = (await nodes[2]!.api("/api/presence/roles/host/sample?n=10")).body.users as string[];
        expect([...after].sort()).toEqual(["h0", "h2", "h3", "h4", "h5"]);
        for (const h of hosts) if (!h.isClosed) await h.close();
      });

      // A single Redis only: a cluster's master failover is test/e2e/redis-failover.test.ts.
      if (mode === "redis") test("Redis restarts: local traffic flows meanwhile, /healthz is degraded, delivery resumes, clients are told to sync", async () => {
        const alice = await on(nodes[0]!, "alice");
        const carol = await on(nodes[0]!, "carol");
        const bob = await on(nodes[1]!, "bob");
        expect((await health(nodes[0]!)).bus.state).toBe("ok");
        await redis.kill();
        await until("node 0 sees the bus degraded", async () => (await health(nodes[0]!)).status === "degraded");
        // Same-node traffic does not need Redis.
        const local = await alice.ok({ t: "send", to: "carol", body: "while redis is away", cmid: "local-1" });
        expect((await carol.next((f) => f.t === "msg")).msg.id).toBe(local.msg.id);
        // Presence answers from the node's own connections instead of waiting for Redis.
        expect((await online(nodes[0]!, "alice", "carol", "bob")).sort()).toEqual(["alice", "carol"]);
        // Across nodes: committed and acknowledged; bob learns of it by sync once the bus is back.
        const during = await alice.ok({ t: "send", to: "bob", body: "during the outage", cmid: "out-1" });
        await redis.start();
        expect(await bob.next((f) => f.t === "gap", 20_000)).toEqual({ t: "gap" });
        const synced = await bob.ok({ t: "sync", conv: during.msg.conv, limit: 500 });
        expect(synced.msgs.map((m: any) => m.id)).toContain(during.msg.id);
        await until("node 0 sees the bus ok", async () => (await health(nodes[0]!)).status === "ok");
        await alice.next((f) => f.t === "gap", 20_000);
        const afterAck = await alice.ok({ t: "send", to: "bob", body: "after", cmid: "after-1" });
        expect((await bob.next((f) => f.t === "msg" && f.msg.id === afterAck.msg.id)).msg.body).toBe("after");
        // Presence is written again by every node after Redis came back empty. Each node does it when its own presence
        // connection is ready again, which is not ordered with the bus's gap notices: wait for it.
        await until("every node wrote its presence again", async () => (await online(nodes[2]!, "alice", "bob", "carol")).length === 3);
        expect((await online(nodes[2]!, "alice", "bob", "carol")).sort()).toEqual(["alice", "bob", "carol"]);
        for (const c of [alice, carol, bob]) await c.close();
      }, 60_000);

      test("kill -9 mid-stream: every acknowledged message is recovered through sync, nothing twice; the node's presence expires", async () => {
        const victim = await cluster.node({ NODE_ID: "victim" });
        const bob = await on(nodes[0]!, "bob");
        const dave = await on(victim, "dave");
        await dave.ok({ t: "join_room", room: "stage" });
        await bob.ok({ t: "join_room", room: "stage" });
        expect((await nodes[1]!.api("/api/rooms/stage")).body.online).toBe(2);
        // dave streams 300 messages to bob without waiting; the node dies once 60 are acknowledged.
        const N = 300;
        const acked = new Map<string, string>();
        for (let i = 0; i < N; i++) dave.send({ t: "send", id: `s${i}`, to: "bob", body: { i }, cmid: `m${i}` });
        for (;;) {
          const f = await dave.next();
          if (f.t === "ack") acked.set(f.msg.id, `m${f.id.slice(1)}`);
          if (acked.size === 60) break;
        }
        victim.proc.kill("SIGKILL");
        await dave.closed;
        for (const f of dave.pending()) if (f.t === "ack") acked.set(f.msg.id, `m${f.id.slice(1)}`);
        // Its presence entries stop counting within PRESENCE_TTL_SEC (1 s here), and are swept.
        await until("dave is offline", async () => (await online(nodes[0]!, "dave")).length === 0, 10_000);
        await until("the room count drops", async () => (await nodes[0]!.api("/api/rooms/stage")).body.online === 1, 10_000);
        // dave reconnects elsewhere and sends again what was not acknowledged: the store keeps each cmid once.
        const dave2 = await on(nodes[1]!, "dave");
        const ackedCmids = new Set(acked.values());
        for (let i = 0; i < N; i++) if (!ackedCmids.has(`m${i}`)) dave2.send({ t: "send", id: `s${i}`, to: "bob", body: { i }, cmid: `m${i}` });
        for (let left = N - ackedCmids.size; left > 0; ) if ((await dave2.next()).t === "ack") left--;
        const conv = "d:bob:dave";
        const all = await bob.syncAll(conv);
        expect(all.map((m) => m.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
        expect(new Set(all.map((m) => m.cmid)).size).toBe(N);
        const byId = new Map(all.map((m) => [m.id, m.cmid]));
        for (const [id, cmid] of acked) expect(byId.get(id)).toBe(cmid);
        // What bob got live, he got once.
        const live = bob.pending().filter((f) => f.t === "msg").map((f) => f.msg.id);
        expect(new Set(live).size).toBe(live.length);
        await bob.close();
        await dave2.close();
      }, 60_000);

      test("SIGTERM: clients are told to reconnect (4200), pending writes are flushed, the process exits 0", async () => {
        const leaving = nodes[2]!;
        const carol = await on(nodes[0]!, "carol");
        const alice = await on(leaving, "alice");
        for (let i = 0; i < 50; i++) alice.send({ t: "send", id: `t${i}`, to: "carol", body: { i }, cmid: `term${i}` });
        const exit = leaving.stop();
        expect((await alice.closed).code).toBe(4200);
        expect(await exit).toBe(0);
        const got = new Set(alice.pending().filter((f) => f.t === "ack").map((f) => Number(f.id.slice(1))));
        // Whatever was not acknowledged is sent again on another node; nothing is stored twice.
        const again = await on(nodes[1]!, "alice");
        for (let i = 0; i < 50; i++) if (!got.has(i)) await again.ok({ t: "send", to: "carol", body: { i }, cmid: `term${i}` });
        const all = (await carol.syncAll("d:alice:carol")).filter((m) => String(m.cmid).startsWith("term"));
        expect(all.map((m) => m.cmid).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `term${i}`).sort());
        await carol.close();
        await again.close();
      }, 30_000);
    });

    describe("WORKERS=2: one command, two nodes sharing the port", () => {
      test("both workers serve the port as cluster nodes; a dead worker is started again; SIGTERM stops them all", async () => {
        const port = freePort();
        const sup = await cluster.node({ WORKERS: "2", PORT: String(port), NODE_ID: "w" });
        expect(sup.port).toBe(port);
        const r = cluster.redisClient();
        try {
          expect((await r.zrange(cluster.keys.nodes(), "0", "-1")).filter((n) => n.startsWith("w-")).sort()).toEqual(["w-0", "w-1"]);
          // Whichever worker each connection lands on, a message gets through.
          const a = await on(sup, "alice");
          const b = await on(sup, "bob");
          const ack = await a.ok({ t: "send", to: "bob", body: "via workers", cmid: "w1" });
          expect((await b.next((f) => f.t === "msg" && f.msg.id === ack.msg.id)).msg.body).toBe("via workers");
          // Kill one worker: the supervisor starts it again.
          const pid = Number((sup.log.all.find((l) => l.includes("[w-1] listening")) ?? "").match(/pid (\d+)/)?.[1]);
          expect(pid).toBeGreaterThan(0);
          process.kill(pid, "SIGKILL");
          await sup.log.waitFor(/worker 1 exited/, "the supervisor to notice", sup.proc);
          const lines = sup.log.all.filter((l) => l.includes("[w-1] listening")).length;
          await until("worker 1 is back", async () => sup.log.all.filter((l) => l.includes("[w-1] listening")).length > lines);
          for (const c of [a, b]) if (!c.isClosed) c.ws.close();
          expect(await sup.stop()).toBe(0);
          const left = (await r.zrange(cluster.keys.nodes(), "0", "-1")).filter((n) => n.startsWith("w-"));
          // On failure, the supervisor's log (every worker's lines are in it) says what the workers did.
          if (left.length) console.error(sup.log.all.join("\n"));
          expect(left).toEqual([]);
        } finally {
          r.disconnect();
        }
      }, 60_000);
    });
  });
}
