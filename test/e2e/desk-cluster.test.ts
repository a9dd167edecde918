// The desk protocol's routing across a cluster: real server processes (`bun src/main.ts`) sharing one
// Postgres and a Redis of this file's own. Agents and guests sit on different nodes; a node is killed with
// SIGKILL and its agents and guests stop counting once its presence lease has run out (PRESENCE_TTL_SEC=1).
// Every test runs against a single Redis and against the suite's Redis Cluster (the restart test: single Redis).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { protocols, type DeskClient } from "../helpers/protocol/index.ts";
import { REDIS_MODES, TestCluster, until, userToken, type NodeProc } from "../helpers/procs.ts";

for (const mode of REDIS_MODES) {
  describe(`over ${mode}`, () => {
    const cluster = new TestCluster({ SEND_RATE: "1000", SEND_BURST: "1000" }, mode);
    const { nodes, clients, redis } = cluster;
    const { desk } = protocols;

    beforeAll(() => cluster.start(3, "d"), 60_000);
    afterAll(() => cluster.stop());

    /** Users who are agents of `grp`; their tokens. */
    async function agents(grp: string, capacity: number, ...ids: string[]): Promise<string[]> {
      const out: string[] = [];
      for (const id of ids) {
        out.push(await userToken(nodes[0]!, id, { nick: id.toUpperCase() }));
        expect((await nodes[0]!.api(`/api/desk/agents/${id}`, { group: grp, capacity }, "PUT")).status).toBe(200);
      }
      return out;
    }
    const agentOn = (node: NodeProc, token: string) => desk.login(node, "", { agent: token, keep: clients });
    async function guestOn(node: NodeProc, id: string, grp: string): Promise<{ c: DeskClient; login: any }> {
      const c = await desk.login(node, id, { group: grp, token: await userToken(nodes[0]!, id, { nick: id.toUpperCase() }), keep: clients });
      return { c, login: c.login };
    }
    const push = (key: number, gid?: string) => (f: any) => f.api_key === key && (gid === undefined || f.data.gid === gid);
    const onlineList = async (c: DeskClient) => (await c.request({ api_key: 33000 })).data.admin_list.map((a: any) => [a.aix, a.status, a.load]);
    const state = async (node: NodeProc, grp: string) => (await node.api(`/api/desk/groups/${grp}/state`)).body;

    describe("desk routing across nodes (3 processes, real Postgres and Redis)", () => {
      test("a guest on one node is given to an agent on another; messages go both ways", async () => {
        await desk.group(nodes[0]!, "x-basic");
        const [t] = await agents("x-basic", 5, "xa-basic");
        const a = await agentOn(nodes[0]!, t!);
        const { c: g, login } = await guestOn(nodes[1]!, "xg-basic", "x-basic");
        expect(login.data).toMatchObject({ gid: "xg-basic", aix: "xa-basic", queue_position: null });
        expect(await a.next(push(32401, "xg-basic"))).toMatchObject({ data: { guest_info: { id: "xg-basic", nick: "XG-BASIC" } } });
        expect(await g.next(push(31100))).toMatchObject({ data: { gid: "xg-basic", aix: "xa-basic" } });
        await g.request({ api_key: 32300, msg: "hello from node 1" });
        expect((await a.next(push(32399, "xg-basic"))).data.message_info).toMatchObject({ msg: "hello from node 1", from: "xg-basic" });
        expect(await a.request({ api_key: 32300, gid: "xg-basic", msg: "hello from node 0" })).toMatchObject({ code: 200 });
        expect((await g.next(push(32399))).data.message_info).toMatchObject({ msg: "hello from node 0", from: "xa-basic" });
        // The agent's chat list on its node shows the guest online (its connection is on another node).
        expect((await a.request({ api_key: 32000 })).data.guest_list).toEqual([expect.objectContaining({ gid: "xg-basic", online: 1 })]);
      });

      test("with no agent online anywhere guests queue across nodes, and are assigned in order when an agent logs in on another node; a leaving guest frees a place", async () => {
        await desk.group(nodes[0]!, "x-queue");
        const [t] = await agents("x-queue", 2, "xa-queue");
        const positions: number[] = [];
        const guests: DeskClient[] = [];
        for (let i = 0; i < 3; i++) {
          const { c, login } = await guestOn(nodes[i]!, `xg-q${i}`, "x-queue");
          expect(login.data.aix).toBeNull();
          positions.push(login.data.queue_position);
          guests.push(c);
        }
        expect(positions).toEqual([1, 2, 3]);
        expect(await state(nodes[2]!, "x-queue")).toMatchObject({ queue: ["xg-q0", "xg-q1", "xg-q2"] });

        const a = await agentOn(nodes[1]!, t!);
        const first = await a.next(push(32401));
        const second = await a.next(push(32401));
        expect([first.data.gid, second.data.gid]).toEqual(["xg-q0", "xg-q1"]);
        expect(await guests[0]!.next(push(31100))).toMatchObject({ data: { aix: "xa-queue" } });
        expect(await guests[1]!.next(push(31100))).toMatchObject({ data: { aix: "xa-queue" } });
        // Capacity 2: the third waits, now first in line, seen the same from every node.
        expect((await guests[2]!.request({ api_key: 32000 })).data).toMatchObject({ aix: null, queue_position: 1 });
        expect(await state(nodes[0]!, "x-queue")).toMatchObject({ queue: ["xg-q2"] });
        // The guest on node 0 leaves: node 0 gives its place to the guest on node 2.
        await guests[0]!.close();
        expect(await a.next(push(32401, "xg-q2"))).toMatchObject({ data: { guest_info: { id: "xg-q2" } } });
        expect(await guests[2]!.next(push(31100))).toMatchObject({ data: { aix: "xa-queue" } });
        expect(await onlineList(a)).toEqual([["xa-queue", 0, 2]]);
      });

      test("the least busy agent over all nodes takes the next guest; 33000 lists every node's agents with their loads", async () => {
        await desk.group(nodes[0]!, "x-least");
        const [t1, t2] = await agents("x-least", 10, "xa-l1", "xa-l2", "xa-l3");
        const a1 = await agentOn(nodes[0]!, t1!);
        const a2 = await agentOn(nodes[1]!, t2!);
        const got: string[] = [];
        const guests: DeskClient[] = [];
        for (let i = 0; i < 4; i++) {
          const { c, login } = await guestOn(nodes[(i + 2) % 3]!, `xg-l${i}`, "x-least");
          got.push(login.data.aix);
          guests.push(c);
        }
        // Ties go by id: l1, l2, l1, l2.
        expect(got).toEqual(["xa-l1", "xa-l2", "xa-l1", "xa-l2"]);
        expect(await onlineList(a1)).toEqual([
          ["xa-l1", 0, 2],
          ["xa-l2", 0, 2],
        ]);
        // xa-l3 is not online: listed by the login with online 0, not by 33000.
        const login = (await a2.request({ api_key: 32000 })).data.admin_list;
        expect(login.map((a: any) => [a.aix, a.online])).toEqual([
          ["xa-l1", 1],
          ["xa-l2", 1],
          ["xa-l3", 0],
        ]);
        // A guest of xa-l2 (on node 0) leaves: xa-l2 is the least busy, whichever node the next guest is on.
        await guests[1]!.close();
        await until("xa-l2's load drops", async () => JSON.stringify(await onlineList(a1)) === JSON.stringify([["xa-l1", 0, 2], ["xa-l2", 0, 1]]));
        expect((await guestOn(nodes[2]!, "xg-l4", "x-least")).login.data.aix).toBe("xa-l2");
      });

      test("an agent suspended from one node is suspended on every node: guests elsewhere wait, and its resume serves them", async () => {
        await desk.group(nodes[0]!, "x-susp");
        const [t] = await agents("x-susp", 10, "xa-susp");
        const on0 = await agentOn(nodes[0]!, t!);
        const on2 = await agentOn(nodes[2]!, t!);
        expect(await on0.request({ api_key: 32500, status: 1 })).toMatchObject({ code: 200 });
        expect(await onlineList(on2)).toEqual([["xa-susp", 1, 0]]);
        const { c: g, login } = await guestOn(nodes[1]!, "xg-susp", "x-susp");
        expect(login.data).toMatchObject({ aix: null, queue_position: 1 });
        // Resumed from the other node.
        expect(await on2.request({ api_key: 32500, status: 0 })).toMatchObject({ code: 200 });
        expect(await g.next(push(31100))).toMatchObject({ data: { aix: "xa-susp" } });
        // Both of the agent's connections get the assignment.
        expect(await on0.next(push(32401, "xg-susp"))).toMatchObject({ data: { guest_info: { id: "xg-susp" } } });
        expect(await on2.next(push(32401, "xg-susp"))).toMatchObject({ data: { guest_info: { id: "xg-susp" } } });
        expect(await onlineList(on0)).toEqual([["xa-susp", 0, 1]]);
        // One of its two connections closes: still online (the other node holds it).
        await on0.close();
        expect(await onlineList(on2)).toEqual([["xa-susp", 0, 1]]);
      });

      test("transfer between agents on different nodes: both pushes, the guest follows, loads move", async () => {
        await desk.group(nodes[0]!, "x-xfer");
        const [t1, t2] = await agents("x-xfer", 10, "xa-x1", "xa-x2", "xa-x3");
        const a1 = await agentOn(nodes[0]!, t1!);
        const { c: g } = await guestOn(nodes[2]!, "xg-xfer", "x-xfer");
        await a1.next(push(32401, "xg-xfer"));
        const a2 = await agentOn(nodes[1]!, t2!);
        await g.request({ api_key: 32300, msg: "billing please" });
        await a1.next(push(32399, "xg-xfer"));

        expect(await a1.request({ api_key: 32400, gid: "xg-xfer", aix: "xa-x3" })).toMatchObject({ code: -32405 });
        const r = await a1.request({ api_key: 32400, gid: "xg-xfer", aix: "xa-x2" });
        expect(r).toMatchObject({ code: 200, data: { data: { from: "xa-x1", to: "xa-x2" }, recs: [{ msg: "billing please" }] } });
        expect(await a2.next(push(32401, "xg-xfer"))).toMatchObject({ data: { from_aix: "xa-x1", recs: [{ msg: "billing please" }] } });
        expect(await a1.next(push(32402, "xg-xfer"))).toMatchObject({ data: { aix: "xa-x2" } });
        expect(await g.next((f) => push(31100)(f) && f.data.aix === "xa-x2")).toMatchObject({ data: { gid: "xg-xfer" } });
        expect(await onlineList(a1)).toEqual([
          ["xa-x1", 0, 0],
          ["xa-x2", 0, 1],
        ]);
        await g.request({ api_key: 32300, msg: "still there?" });
        expect((await a2.next(push(32399, "xg-xfer"))).data.message_info.msg).toBe("still there?");
        expect(a1.pending().filter(push(32399))).toEqual([]);
        expect((await a2.request({ api_key: 32000 })).data.guest_list).toEqual([expect.objectContaining({ gid: "xg-xfer", unread: 2, online: 1 })]);
      });

      test("two transfers of one guest at the same moment from two nodes: exactly one wins", async () => {
        await desk.group(nodes[0]!, "x-race-x");
        const [t1, t2, t3] = await agents("x-race-x", 10, "xa-rx1", "xa-rx2", "xa-rx3");
        const a1n0 = await agentOn(nodes[0]!, t1!);
        const { c: g } = await guestOn(nodes[0]!, "xg-rx", "x-race-x");
        await a1n0.next(push(32401, "xg-rx"));
        const a1n2 = await agentOn(nodes[2]!, t1!);
        const a2 = await agentOn(nodes[1]!, t2!);
        const a3 = await agentOn(nodes[2]!, t3!);
        const [r2, r3] = await Promise.all([a1n0.request({ api_key: 32400, gid: "xg-rx", aix: "xa-rx2" }), a1n2.request({ api_key: 32400, gid: "xg-rx", aix: "xa-rx3" })]);
        const codes = [r2.code, r3.code];
        expect(codes.filter((c) => c === 200)).toHaveLength(1);
        expect(codes.filter((c) => c === -32405 || c === -32406)).toHaveLength(1);
        const winner = r2.code === 200 ? "xa-rx2" : "xa-rx3";
        const winnerClient = winner === "xa-rx2" ? a2 : a3;
        expect(await winnerClient.next(push(32401, "xg-rx"))).toMatchObject({ data: { from_aix: "xa-rx1" } });
        expect(await g.next((f) => push(31100)(f) && f.data.aix !== "xa-rx1")).toMatchObject({ data: { aix: winner } });
        const loads = Object.fromEntries((await onlineList(a2)).map(([id, , load]: any) => [id, load]));
        expect(loads).toEqual({ "xa-rx1": 0, "xa-rx2": winner === "xa-rx2" ? 1 : 0, "xa-rx3": winner === "xa-rx3" ? 1 : 0 });
        expect((await winnerClient.request({ api_key: 32000 })).data.guest_list.map((x: any) => x.gid)).toEqual(["xg-rx"]);
      });

      test("guests logging in on three nodes at the same moment: no place is given twice", async () => {
        await desk.group(nodes[0]!, "x-race");
        const [t1, t2] = await agents("x-race", 2, "xa-r1", "xa-r2");
        const a1 = await agentOn(nodes[0]!, t1!);
        await agentOn(nodes[1]!, t2!);
        const ids = Array.from({ length: 9 }, (_, i) => `xg-r${i}`);
        const tokens = await Promise.all(ids.map((id) => userToken(nodes[0]!, id)));
        const conns = await Promise.all(ids.map((_, i) => desk.connect(nodes[i % 3]!, { keep: clients })));
        const logins = await Promise.all(conns.map((c, i) => c.request({ api_key: 31000, call_type: 1, token: tokens[i], group_id: "x-race" })));
        const served = logins.filter((l) => l.data.aix);
        expect(served.map((l) => l.data.aix).sort()).toEqual(["xa-r1", "xa-r1", "xa-r2", "xa-r2"]);
        expect(logins.filter((l) => !l.data.aix).map((l) => l.data.queue_position).sort()).toEqual([1, 2, 3, 4, 5]);
        expect(await onlineList(a1)).toEqual([
          ["xa-r1", 0, 2],
          ["xa-r2", 0, 2],
        ]);
        const st = await state(nodes[2]!, "x-race");
        expect(st.queue).toHaveLength(5);
        expect(new Set([...st.queue, ...served.map((l) => l.data.gid)])).toEqual(new Set(ids));
      });

      // A single Redis only: a cluster's master failover is test/e2e/redis-failover.test.ts.
      if (mode === "redis") test("Redis restarts empty: desk connections are told to reconnect (4100), and routing works again across nodes", async () => {
        await desk.group(nodes[0]!, "x-redis");
        const [t] = await agents("x-redis", 5, "xa-redis");
        const a = await agentOn(nodes[0]!, t!);
        const { c: g } = await guestOn(nodes[1]!, "xg-redis", "x-redis");
        await a.next(push(32401, "xg-redis"));
        await redis.kill();
        await redis.start();
        expect((await a.closed).code).toBe(4100);
        expect((await g.closed).code).toBe(4100);
        // Every node renews its lease on the new Redis by itself.
        const r = cluster.redisClient();
        try {
          await until("every node's lease is back", async () => (await r.zrange(cluster.keys.nodes(), "0", "-1")).filter((n) => /^d\d$/.test(n)).length === 3);
        } finally {
          r.disconnect();
        }
        const a2 = await agentOn(nodes[2]!, t!);
        const { login } = await guestOn(nodes[0]!, "xg-redis", "x-redis");
        expect(login.data.aix).toBe("xa-redis");
        expect(await a2.next(push(32401, "xg-redis"))).toMatchObject({ data: { guest_info: { id: "xg-redis" } } });
        expect(await onlineList(a2)).toEqual([["xa-redis", 0, 1]]);
      }, 30_000);

      test("kill -9: the dead node's agent stops counting once its lease runs out, and its guests free their agents' places", async () => {
        const victim = await cluster.node({ NODE_ID: "dvictim" });
        await desk.group(nodes[0]!, "x-kill");
        const [tk, tv] = await agents("x-kill", 1, "xa-k0", "xa-kv");
        // xa-kv is on the victim and serves a guest on node 1.
        const av = await agentOn(victim, tv!);
        const { c: g1 } = await guestOn(nodes[1]!, "xg-k1", "x-kill");
        await av.next(push(32401, "xg-k1"));
        // xa-k0 (capacity 1) on node 0 serves a guest connected to the victim; a third guest waits.
        const a0 = await agentOn(nodes[0]!, tk!);
        const { login: lv } = await guestOn(victim, "xg-kv", "x-kill");
        expect(lv.data.aix).toBe("xa-k0");
        await a0.next(push(32401, "xg-kv"));
        const { c: gw, login: lw } = await guestOn(nodes[2]!, "xg-kw", "x-kill");
        expect(lw.data).toMatchObject({ aix: null, queue_position: 1 });
        expect(await onlineList(a0)).toEqual([
          ["xa-k0", 0, 1],
          ["xa-kv", 0, 1],
        ]);

        victim.proc.kill("SIGKILL");
        await av.closed;
        // Once the victim's lease is gone its guest no longer holds xa-k0's place: the waiting guest gets it.
        expect(await a0.next(push(32401, "xg-kw"), 15_000)).toMatchObject({ data: { guest_info: { id: "xg-kw" } } });
        expect(await gw.next(push(31100))).toMatchObject({ data: { aix: "xa-k0" } });
        // xa-kv is offline everywhere: not listed, not given guests.
        expect(await onlineList(a0)).toEqual([["xa-k0", 0, 1]]);
        expect((await state(nodes[1]!, "x-kill")).agents.find((a: any) => a.id === "xa-kv")).toMatchObject({ online: false, load: 0 });
        expect((await guestOn(nodes[1]!, "xg-k2", "x-kill")).login.data).toMatchObject({ aix: null, queue_position: 1 });
        expect(await a0.request({ api_key: 32400, gid: "xg-kw", aix: "xa-kv" })).toMatchObject({ code: -32405 });
        // The guest it served is still connected, served by nobody now (as when an agent logs out).
        expect(g1.isClosed).toBe(false);
        expect(await g1.request({ api_key: 32000 })).toMatchObject({ data: { aix: null } });
      }, 30_000);
    });

    describe("a node started again with the id of a dead one (as WORKERS restarts a worker)", () => {
      test("its predecessor's guests no longer hold places, before its lease could run out", async () => {
        // A lease of 60 s: nobody else would sweep this node within the test; the new process must.
        const first = await cluster.node({ NODE_ID: "dsame", PRESENCE_TTL_SEC: "60" });
        await desk.group(nodes[0]!, "x-same");
        const [t] = await agents("x-same", 1, "xa-same");
        const a = await agentOn(nodes[0]!, t!);
        expect((await guestOn(first, "xg-same1", "x-same")).login.data.aix).toBe("xa-same");
        await a.next(push(32401, "xg-same1"));
        const { c: w, login } = await guestOn(nodes[1]!, "xg-same2", "x-same");
        expect(login.data).toMatchObject({ aix: null, queue_position: 1 });
        first.proc.kill("SIGKILL");
        await first.proc.exited;
        await cluster.node({ NODE_ID: "dsame", PRESENCE_TTL_SEC: "60" });
        expect(await a.next(push(32401, "xg-same2"))).toMatchObject({ data: { guest_info: { id: "xg-same2" } } });
        expect(await w.next(push(31100))).toMatchObject({ data: { aix: "xa-same" } });
        expect(await onlineList(a)).toEqual([["xa-same", 0, 1]]);
      }, 30_000);
    });
  });
}
