// A real Redis Cluster for tests and benchmarks: three masters and three replicas (redis-server processes on
// free ports, in a directory of their own), joined with `redis-cli --cluster create --cluster-replicas 1`.
// Used by test/run.sh (the suite's shared cluster: TEST_REDIS_CLUSTER_URLS), by tests that kill a master (a
// cluster of their own), and by bench/ (cluster fan-out).
//
//   bun test/helpers/redis-cluster.ts start <dir>   starts one, prints its seed URLs (comma-separated)
//   bun test/helpers/redis-cluster.ts stop <dir>    stops the one started in <dir>
import { mkdirSync, readdirSync, readFileSync } from "node:fs";

/** A free TCP port on 127.0.0.1. */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const p = Bun.spawn(["redis-cli", "-p", String(port), ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`redis-cli -p ${port} ${args.join(" ")}: ${err || out}`);
  return out;
}

export class RedisCluster {
  private constructor(
    readonly dir: string,
    readonly ports: number[],
    private readonly nodeTimeoutMs = 1000,
  ) {}

  /** each node's cluster bus port (by default Redis takes port + 10000, which may be taken or past 65535) */
  private readonly busPorts = new Map<number, number>();

  /** Starts a node and waits until it answers (false when it did not: its port was taken meanwhile). */
  private async spawn(port: number): Promise<boolean> {
    const dir = this.dir;
    const busPort = this.busPorts.get(port) ?? freePort();
    this.busPorts.set(port, busPort);
    const p = Bun.spawn([
      "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-port", String(busPort),
      "--cluster-node-timeout", String(this.nodeTimeoutMs),
      // A replica takes over however long it lost its master (tests kill masters on purpose).
      "--cluster-replica-validity-factor", "0",
      "--daemonize", "yes", "--pidfile", `${dir}/redis-${port}.pid`, "--logfile", `${dir}/redis-${port}.log`, "--dir", dir,
    ]);
    if ((await p.exited) !== 0) throw new Error(`redis-server on :${port} did not start (see ${dir}/redis-${port}.log)`);
    // Daemonized, it reports a port it could not bind only in its log, and exits.
    for (let i = 0; i < 100; i++) {
      if ((await cli(port, "ping").catch(() => "")).trim() === "PONG") return true;
      if (i > 10 && this.pid(port) === undefined) return false;
      await Bun.sleep(30);
    }
    return false;
  }

  /**
   * Starts a killed node again (empty: nothing was saved); it rejoins from its cluster config file as a replica of
   * whichever node took its slots. Resolves once the cluster is ok again (every replica in sync).
   */
  async restart(port: number): Promise<void> {
    if (!(await this.spawn(port))) throw new Error(`redis cluster: :${port} did not start again (see ${this.dir}/redis-${port}.log)`);
    await this.until(`:${port} is back as a replica in sync`, () => this.ok());
  }

  /** The seed URLs (every node), as REDIS_URL takes them. */
  get urls(): string[] {
    return this.ports.map((p) => `redis://127.0.0.1:${p}`);
  }

  /**
   * Starts 6 nodes (3 masters, 3 replicas) in `dir` and waits until every node reports `cluster_state:ok`
   * with all 16384 slots served. `nodeTimeoutMs` is cluster-node-timeout: how long a master may be silent
   * before its replica takes over.
   */
  static async start(dir: string, nodeTimeoutMs = 1000): Promise<RedisCluster> {
    mkdirSync(dir, { recursive: true });
    const ports: number[] = [];
    const c = new RedisCluster(dir, ports, nodeTimeoutMs);
    // A free port may be taken by another process before redis-server binds it: then another one.
    for (let tries = 0; ports.length < 6; tries++) {
      if (tries > 20) throw new Error(`redis cluster: could not start 6 nodes (see ${dir}/*.log)`);
      const port = freePort();
      if (await c.spawn(port)) ports.push(port);
      else {
        c.killPort(port);
        c.busPorts.delete(port);
      }
    }
    await cli(ports[0]!, "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes");
    await c.until("cluster_state:ok on every node", () => c.ok());
    return c;
  }

  /** Reattaches to the cluster started in `dir` (by another process). */
  static of(dir: string): RedisCluster {
    const ports = readdirSync(dir)
      .map((f) => f.match(/^redis-(\d+)\.pid$/)?.[1])
      .filter((p): p is string => !!p)
      .map(Number);
    return new RedisCluster(dir, ports);
  }

  /** Every live node reports cluster_state:ok, 3 masters serve the slots, every other live node replicates one of them, in sync. */
  async ok(): Promise<boolean> {
    const live = this.ports.filter((p) => this.pid(p) !== undefined);
    const infos = await Promise.all(live.map((p) => cli(p, "cluster", "info").catch(() => "")));
    if (!infos.every((i) => i.includes("cluster_state:ok") && i.includes("cluster_slots_ok:16384"))) return false;
    const nodes = await this.nodes();
    const masters = nodes.filter((n) => n.master && n.slots && !n.failed);
    const replicas = nodes.filter((n) => !n.master && !n.failed && masters.some((m) => m.id === n.masterId));
    if (masters.length !== 3 || replicas.length !== live.length - 3) return false;
    // Every replica is in sync with its master (it can take over).
    const links = await Promise.all(replicas.map((n) => cli(n.port, "info", "replication").catch(() => "")));
    return links.every((l) => l.includes("master_link_status:up"));
  }

  /** The cluster's view from a live node: each node's port, role, and whether it serves slots. */
  async nodes(): Promise<{ id: string; port: number; master: boolean; slots: boolean; masterId?: string; failed: boolean }[]> {
    for (const p of this.ports) {
      const out = await cli(p, "cluster", "nodes").catch(() => "");
      if (!out) continue;
      return out
        .trim()
        .split("\n")
        .map((l) => {
          const f = l.split(" ");
          return {
            id: f[0]!,
            port: Number(f[1]!.split(":")[1]!.split("@")[0]),
            master: f[2]!.includes("master"),
            slots: f.length > 8,
            masterId: f[3] === "-" ? undefined : f[3],
            failed: f[2]!.includes("fail"),
          };
        });
    }
    throw new Error("no node of the cluster answers");
  }

  /** The port of the master serving `key`'s slot (a channel name counts as a key). */
  async masterOf(key: string): Promise<number> {
    const slot = Number((await cli(this.ports.find((p) => this.pid(p) !== undefined)!, "cluster", "keyslot", key)).trim());
    for (const p of this.ports) {
      const out = await cli(p, "cluster", "slots").catch(() => "");
      if (!out) continue;
      // redis-cli prints the nested reply flat: start, end, then per node ip, port, id (, hostname info).
      const lines = out.trim().split("\n").map((l) => l.trim());
      for (let i = 0; i + 3 < lines.length; i++) {
        const start = Number(lines[i]);
        const end = Number(lines[i + 1]);
        if (/^\d+$/.test(lines[i]!) && /^\d+$/.test(lines[i + 1]!) && lines[i + 2] === "127.0.0.1" && start <= slot && slot <= end) return Number(lines[i + 3]);
      }
    }
    throw new Error(`no master found for slot ${slot}`);
  }

  /** The process of the node on `port` (undefined when it is not running). */
  pidOf(port: number): number | undefined {
    return this.pid(port);
  }

  private pid(port: number): number | undefined {
    try {
      const pid = Number(readFileSync(`${this.dir}/redis-${port}.pid`, "utf8").trim());
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  /** The processes of the live nodes. */
  pids(): number[] {
    return this.ports.map((p) => this.pid(p)).filter((p): p is number => p !== undefined);
  }

  /** SIGKILL to one node (nothing saved, as a crash). */
  kill(port: number): void {
    this.killPort(port);
  }

  private killPort(port: number): void {
    const pid = this.pid(port);
    if (pid) process.kill(pid, "SIGKILL");
  }

  /** Stops every node. */
  stop(): void {
    for (const p of this.ports) this.kill(p);
  }

  async until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > end) throw new Error(`redis cluster: timed out waiting until ${what}`);
      await Bun.sleep(50);
    }
  }
}

if (import.meta.main) {
  const [cmd, dir] = process.argv.slice(2);
  if (!dir || (cmd !== "start" && cmd !== "stop")) {
    console.error("usage: bun test/helpers/redis-cluster.ts start|stop <dir>");
    process.exit(2);
  }
  if (cmd === "start") console.log((await RedisCluster.start(dir)).urls.join(","));
  else RedisCluster.of(dir).stop();
}
