// A Redis Cluster master dies mid-stream: two server processes on a Redis Cluster of this file's own (3 masters,
// 3 replicas, cluster-node-timeout 1 s). The master owning the receiver's channel slot is killed with SIGKILL
// while the sender streams; its replica takes over, the receiver's node subscribes again by itself, says
// `degraded` on /healthz meanwhile, tells its clients to sync (as after a single Redis's restart), and every
// acknowledged message is there, once. Then the master holding the cluster state (presence, desk routing: one
// slot) is killed: every node writes its presence entries again on the promoted replica (which may lack the last
// writes: replication is asynchronous), and presence, sampling and delivery work on.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { Keys } from "../../src/bus/keys.ts";
import { Client } from "../helpers/client.ts";
import { startNode, until, userToken, type NodeProc } from "../helpers/procs.ts";
import { RedisCluster } from "../helpers/redis-cluster.ts";
import { freshPgUrl } from "../helpers/services.ts";

const dir = mkdtempSync(`${tmpdir()}/chat-rfail-`);
let rc: RedisCluster;
const nodes: NodeProc[] = [];
const clients: Client[] = [];
const health = async (node: NodeProc) => (await fetch(`${node.url}/healthz`)).json() as Promise<any>;

beforeAll(async () => {
  rc = await RedisCluster.start(dir);
  const env = { DATABASE_URL: await freshPgUrl(), REDIS_URL: rc.urls.join(","), PRESENCE_TTL_SEC: "5", SEND_RATE: "10000", SEND_BURST: "10000" };
  for (let i = 0; i < 2; i++) nodes.push(await startNode({ ...env, NODE_ID: `rf${i}` }));
}, 60_000);

afterAll(async () => {
  for (const c of clients) if (!c.isClosed) c.ws.close();
  for (const n of nodes) n.proc.kill("SIGKILL");
  await Promise.all(nodes.map((n) => n.proc.exited));
  rc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("a Redis master killed mid-stream: its replica takes over, the node subscribes again, /healthz is degraded meanwhile, clients sync, nothing acknowledged is lost", async () => {
  const alice = await Client.native(nodes[0]!.wsUrl, await userToken(nodes[0]!, "alice"), "alice");
  const bob = await Client.native(nodes[1]!.wsUrl, await userToken(nodes[0]!, "bob"), "bob");
  clients.push(alice, bob);
  // Live across nodes over sharded pub/sub first.
  const first = await alice.ok({ t: "send", to: "bob", body: "before", cmid: "f0" });
  expect((await bob.next((f) => f.t === "msg")).msg.id).toBe(first.msg.id);
  expect((await health(nodes[1]!)).status).toBe("ok");

  const victim = await rc.masterOf(new Keys("chat:", true).userChannel("bob"));
  const acked = new Map<string, string>([[first.msg.id, "f0"]]);
  let stop = false;
  let killed = false;
  // alice streams, each send awaiting its ack; the master of bob's channel dies once 50 are acknowledged.
  const stream = (async () => {
    for (let i = 1; !stop; i++) {
      const ack = await alice.ok({ t: "send", to: "bob", body: { i }, cmid: `s${i}` });
      acked.set(ack.msg.id, `s${i}`);
      if (acked.size === 50) {
        rc.kill(victim);
        killed = true;
      }
    }
  })();
  await until("the master is killed", async () => killed, 20_000);
  await until("bob's node reports the bus degraded", async () => (await health(nodes[1]!)).status === "degraded", 10_000);
  // A replica is promoted, bob's node subscribes again on it and tells bob to sync.
  expect(await bob.next((f) => f.t === "gap", 30_000)).toEqual({ t: "gap" });
  await until("the cluster has 3 masters serving every slot", () => rc.ok(), 20_000);
  await until("bob's node reports the bus ok", async () => (await health(nodes[1]!)).status === "ok", 10_000);
  stop = true;
  await stream;
  expect(acked.size).toBeGreaterThan(50);

  // Everything acknowledged is stored, once, in order; bob gets all of it by sync.
  const all = await bob.syncAll("d:alice:bob");
  expect(all.map((m) => m.seq)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
  const byId = new Map(all.map((m) => [m.id, m.cmid]));
  for (const [id, cmid] of acked) expect(byId.get(id)).toBe(cmid);
  expect(all.length).toBe(acked.size);
  // Live delivery resumed on the promoted master.
  const after = await alice.ok({ t: "send", to: "bob", body: "after", cmid: "after" });
  expect((await bob.next((f) => f.t === "msg" && f.msg.id === after.msg.id)).msg.body).toBe("after");
  // What bob got live, he got once.
  const live = bob.pending().filter((f) => f.t === "msg").map((f) => f.msg.id);
  expect(new Set(live).size).toBe(live.length);
}, 90_000);

test("the master holding the state slot is killed: each node writes its presence again on the promoted replica; presence and delivery work on", async () => {
  await until("the cluster is whole again", () => rc.ok(), 20_000);
  // The master killed by the previous test comes back as a replica, so every master has one again.
  for (const n of await rc.nodes()) if (n.failed) await rc.restart(n.port);
  const carol = await Client.native(nodes[0]!.wsUrl, await userToken(nodes[0]!, "carol", { role: "host" }), "carol");
  const dave = await Client.native(nodes[1]!.wsUrl, await userToken(nodes[0]!, "dave", { role: "host" }), "dave");
  clients.push(carol, dave);
  const online = async (node: NodeProc) => ((await node.api("/api/presence?users=carol,dave")).body.online as string[]).sort();
  expect(await online(nodes[0]!)).toEqual(["carol", "dave"]);
  const lines = nodes.map((n) => n.log.all.filter((l) => l.includes("the lease of this node was gone")).length);

  const victim = await rc.masterOf(new Keys("chat:", true).nodes());
  rc.kill(victim);
  await until("a replica took over", () => rc.ok(), 20_000);
  // Every node noticed the lost node and wrote its entries again once its renewal went through.
  await until("both nodes wrote their presence again", async () => nodes.every((n, i) => n.log.all.filter((l) => l.includes("the lease of this node was gone")).length > lines[i]!), 20_000);
  for (const n of nodes) expect(await online(n)).toEqual(["carol", "dave"]);
  const hosts = (await nodes[1]!.api("/api/presence/roles/host/sample?n=10")).body.users as string[];
  expect([...hosts].sort()).toEqual(["carol", "dave"]);
  const ack = await carol.ok({ t: "send", to: "dave", body: "after the state failover", cmid: "st1" });
  expect((await dave.next((f) => f.t === "msg" && f.msg.id === ack.msg.id)).msg.body).toBe("after the state failover");
}, 90_000);
