// `bun bench/redis-shards.ts [--envelopes N] [--channels C]`: what one Redis process and one Redis Cluster shard
// carry for the bus (src/bus/redis.ts), measured with the bus itself. One node publishes N envelopes (100 bytes)
// round-robin to C user channels (bus/keys.ts names), another node is subscribed to all of them; first over one
// Redis (PUBLISH), then over a Redis Cluster of 3 masters and 3 replicas (SPUBLISH, sharded subscribers). Prints
// envelopes per second end to end, and per Redis process its share of the envelopes and its CPU seconds, hence
// envelopes per Redis CPU second: the figure to size shards with (docs/deploy.md, "Redis"). Then, on the cluster,
// what each online user costs in Redis memory: U users written by presence (as a login does) on one node, and U
// user channels subscribed by another node (used_memory of each master before and after).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Keys } from "../src/bus/keys.ts";
import { RedisBus, type RedisTarget } from "../src/bus/redis.ts";
import { RedisPresence } from "../src/presence/redis.ts";
import { RedisCluster } from "../test/helpers/redis-cluster.ts";
import { cpuSeconds } from "./lib/machine.ts";
import { freePort } from "./lib/services.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg("envelopes", 200_000);
const C = arg("channels", 1000);
const U = arg("users", 10_000);
const quiet = { debug() {}, info() {}, warn() {}, error: console.error } as never;

async function measure(label: string, target: RedisTarget, pids: { name: string; pid: number; shareOf?: (ch: string) => boolean }[], cluster: boolean) {
  const keys = new Keys("bench:", cluster);
  const channels = Array.from({ length: C }, (_, i) => keys.userChannel(`u${100000 + i}`));
  const pub = await RedisBus.connect(target, quiet, N);
  const sub = await RedisBus.connect(target, quiet, N);
  let got = 0;
  sub.onMessage(() => got++);
  await Promise.all(channels.map((c) => sub.subscribe(c)));
  const payload = new Uint8Array(100);
  // Each process's idle CPU (cluster gossip, slot refreshes), taken off what it spends while the envelopes go.
  const idle0 = pids.map((p) => cpuSeconds(p.pid));
  await Bun.sleep(2000);
  const idlePerSec = pids.map((p, i) => (cpuSeconds(p.pid) - idle0[i]!) / 2);
  const cpu0 = pids.map((p) => cpuSeconds(p.pid));
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    pub.publish(channels[i % C]!, payload);
    // Let the replies and the subscriber's messages in now and then, as a server's event loop would.
    if (i % 2000 === 1999) {
      await Bun.sleep(0);
      while (i - got > 20_000) await Bun.sleep(1);
    }
  }
  while (got < N && performance.now() - t0 < 120_000) await Bun.sleep(2);
  const secs = (performance.now() - t0) / 1000;
  const cpu = pids.map((p, i) => Math.max(0, cpuSeconds(p.pid) - cpu0[i]! - idlePerSec[i]! * secs));
  console.log(`${label}: ${N.toLocaleString()} envelopes to ${C} channels in ${secs.toFixed(2)} s: ${Math.round(got / secs).toLocaleString()} envelopes/s end to end (received ${got})`);
  pids.forEach((p, i) => {
    const share = p.shareOf ? channels.filter(p.shareOf).length / C : 1;
    const env = Math.round(N * share);
    const per = cpu[i]! > 0 ? `${Math.round(env / cpu[i]!).toLocaleString()} envelopes per CPU s` : "–";
    console.log(`  ${p.name}: ${(share * 100).toFixed(1)}% of the envelopes (${env.toLocaleString()}), CPU ${cpu[i]!.toFixed(2)} s above idle (idle ${(idlePerSec[i]! * 100).toFixed(1)}% of a core), ${per}`);
  });
  await pub.close();
  await sub.close();
}

/** used_memory of every master, by port. */
async function usedMemory(rc: RedisCluster): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const n of (await rc.nodes()).filter((x) => x.master)) {
    const p = Bun.spawnSync(["redis-cli", "-p", String(n.port), "info", "memory"]);
    out.set(n.port, Number(/used_memory:(\d+)/.exec(p.stdout.toString())?.[1]));
  }
  return out;
}

async function memory(rc: RedisCluster): Promise<void> {
  const keys = new Keys("mem:", true);
  const target = { cluster: rc.urls };
  const show = (what: string, a: Map<number, number>, b: Map<number, number>) => {
    const parts = [...b].map(([port, m]) => `:${port} ${((m - a.get(port)!) / U).toFixed(0)} B`);
    const total = [...b].reduce((sum, [port, m]) => sum + m - a.get(port)!, 0);
    console.log(`  ${what}: ${(total / U).toFixed(0)} bytes per user in all (${parts.join(", ")})`);
  };
  console.log(`Redis memory per online user, ${U.toLocaleString()} users:`);
  await Bun.sleep(2000); // the previous measurement's client buffers are freed
  const m0 = await usedMemory(rc);
  const presence = await RedisPresence.connect(target, keys, "memnode", 60, 1, quiet);
  for (let i = 0; i < U; i += 500) await Promise.all(Array.from({ length: Math.min(500, U - i) }, (_, j) => presence.userUp(`u${100000 + i + j}`, "user")));
  const m1 = await usedMemory(rc);
  show("presence (a login's entries)", m0, m1);
  const bus = await RedisBus.connect(target, quiet);
  await Promise.all(Array.from({ length: U }, (_, i) => bus.subscribe(keys.userChannel(`u${100000 + i}`))));
  const m2 = await usedMemory(rc);
  show("its user channel subscribed", m1, m2);
  await bus.close();
  await presence.close();
}

const port = await freePort();
const single = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
const dir = mkdtempSync(join(tmpdir(), "bench-shards-"));
try {
  for (let i = 0; i < 100; i++) {
    const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((c) => (c.end(), true), () => false);
    if (ok) break;
    await Bun.sleep(50);
  }
  await measure("one Redis", `redis://127.0.0.1:${port}`, [{ name: `redis :${port}`, pid: single.pid }], false);
  const rc = await RedisCluster.start(dir);
  const nodes = await rc.nodes();
  const byId = new Map(nodes.map((n) => [n.id, n]));
  // Which master owns each channel's slot (its replica gets the same envelopes: sharded pub/sub is propagated).
  const keys = new Keys("bench:", true);
  const owner = new Map<string, number>();
  for (let i = 0; i < C; i++) {
    const ch = keys.userChannel(`u${100000 + i}`);
    owner.set(ch, await rc.masterOf(ch));
  }
  const pids: { name: string; pid: number; shareOf?: (ch: string) => boolean }[] = [];
  for (const n of nodes.sort((a, b) => Number(b.master) - Number(a.master))) {
    const pid = rc.pidOf(n.port);
    if (!pid) continue;
    const masterPort = n.master ? n.port : byId.get(n.masterId!)!.port;
    pids.push({ name: `${n.master ? "master " : "replica"} :${n.port}${n.master ? "" : ` (of :${masterPort})`}`, pid, shareOf: (ch) => owner.get(ch) === masterPort });
  }
  await measure("Redis Cluster, 3 shards", { cluster: rc.urls }, pids, true);
  await memory(rc);
  rc.stop();
} finally {
  single.kill();
  rmSync(dir, { recursive: true, force: true });
}
