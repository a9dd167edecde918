// Postgres and Redis for the scenarios that need them, started the way test/run.sh starts them for the
// suite (the machine's Postgres initdb'd into a temporary folder, redis-server without persistence, both
// on free loopback ports) and removed afterwards. Under `npm test` (the smoke test) the suite's own
// services are reused instead: TEST_PG_URL / TEST_REDIS_URL.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, chownSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import postgres from "postgres";
import { sleep, withChildren } from "./machine.ts";

export async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

const isRoot = process.getuid?.() === 0;
const asPg = (cmd: string[]) => (isRoot ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd);

function pgBin(): string {
  const dirs = existsSync("/usr/lib/postgresql") ? readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b)) : [];
  const bin = dirs.length ? `/usr/lib/postgresql/${dirs.at(-1)}/bin` : "";
  if (!bin || !existsSync(`${bin}/initdb`)) throw new Error("Postgres server binaries not found under /usr/lib/postgresql");
  return bin;
}

function run(cmd: string[]): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString() || r.stdout.toString()}`);
}

export interface Pg {
  /** admin URL (database `postgres`) */
  url: string;
  /** postmaster and backends, when this run started the server (undefined when reused) */
  pids?: () => number[];
  /** a new empty database, its URL */
  createDb(name: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<Pg> {
  const reuse = process.env.TEST_PG_URL;
  if (reuse) return pgAt(reuse, undefined, async () => {});
  const bin = pgBin();
  const work = mkdtempSync(join(tmpdir(), "chat-bench-pg."));
  Bun.spawnSync(["chmod", "755", work]);
  const data = join(work, "pg");
  const sock = join(work, "sock");
  Bun.spawnSync(["mkdir", "-p", data, sock]);
  if (isRoot) {
    const uid = Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString());
    chownSync(data, uid, uid);
    chownSync(sock, uid, uid);
  }
  run(asPg([`${bin}/initdb`, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]));
  const port = await freePort();
  // Durability stays at its defaults (fsync on): an ack still means committed. Only sizing is raised.
  run(
    asPg([
      `${bin}/pg_ctl`, "-D", data, "-l", join(sock, "pg.log"), "-w", "-o",
      `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=512MB -c max_wal_size=4GB` +
        (process.env.BENCH_PG_STATEMENTS ? " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all -c pg_stat_statements.track_planning=on" : ""),
      "start",
    ]),
  );
  const master = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  return pgAt(`postgres://postgres@127.0.0.1:${port}/postgres`, () => withChildren(master), async () => {
    Bun.spawnSync(asPg([`${bin}/pg_ctl`, "-D", data, "-m", "immediate", "stop"]), { stdout: "ignore", stderr: "ignore" });
    rmSync(work, { recursive: true, force: true });
  });
}

function pgAt(url: string, pids: (() => number[]) | undefined, stop: () => Promise<void>): Pg {
  let n = 0;
  return {
    url,
    pids,
    async createDb(name) {
      const db = `bench_${name}_${process.pid}_${++n}`;
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      await sql.unsafe(`create database ${db}`);
      await sql.end();
      const u = new URL(url);
      u.pathname = `/${db}`;
      return u.toString();
    },
    stop,
  };
}

export interface Redis {
  url: string;
  pid?: number;
  /** a Redis Cluster's processes */
  pids?: number[];
  stop(): Promise<void>;
}

export async function startRedis(): Promise<Redis> {
  const reuse = process.env.TEST_REDIS_URL;
  if (reuse) return { url: reuse, stop: async () => {} };
  if (!Bun.which("redis-server")) throw new Error("redis-server is missing: apt-get install redis-server");
  const port = await freePort();
  const proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  for (let i = 0; i < 100; i++) {
    try {
      const c = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      c.end();
      break;
    } catch {
      await sleep(50);
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid,
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}

/**
 * A Redis Cluster of 3 masters and 3 replicas (test/helpers/redis-cluster.ts, as the suite starts it), removed
 * afterwards; `pids` are its processes (their CPU is summed). Under `npm test` the suite's is reused
 * (TEST_REDIS_CLUSTER_URLS).
 */
export async function startRedisCluster(): Promise<Redis & { urls: string[]; pids: number[] }> {
  const reuse = process.env.TEST_REDIS_CLUSTER_URLS;
  if (reuse) return { url: reuse, urls: reuse.split(","), pids: [], stop: async () => {} };
  if (!Bun.which("redis-server")) throw new Error("redis-server is missing: apt-get install redis-server");
  const { RedisCluster } = await import("../../test/helpers/redis-cluster.ts");
  const dir = mkdtempSync(join(tmpdir(), "bench-rcluster-"));
  const rc = await RedisCluster.start(dir);
  return {
    url: rc.urls.join(","),
    urls: rc.urls,
    pids: rc.pids(),
    async stop() {
      rc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * BENCH_PG_STATEMENTS=1 (Postgres started with pg_stat_statements): `reset` clears the statistics, otherwise the
 * statements that took the most execution time since the last reset are written to `file` (markdown) and cleared.
 */
export async function pgStatements(pg: Pg, file: string | undefined): Promise<void> {
  if (!process.env.BENCH_PG_STATEMENTS || !pg.pids) return;
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe("create extension if not exists pg_stat_statements");
    if (file) {
      const top = await sql.unsafe(`
        select calls, round(total_exec_time::numeric, 1) as total_ms, round(mean_exec_time::numeric, 3) as mean_ms,
               round(total_plan_time::numeric, 1) as plan_ms, rows, shared_blks_hit as hit, shared_blks_read as read,
               wal_bytes, regexp_replace(query, '\\s+', ' ', 'g') as query
          from pg_stat_statements order by total_exec_time + total_plan_time desc limit 20`);
      const cell = (v: unknown) => String(v).replace(/\|/g, "\\|");
      const lines = [
        "| calls | exec ms | mean ms | plan ms | rows | blocks hit | blocks read | WAL bytes | statement |",
        "|---|---|---|---|---|---|---|---|---|",
        ...top.map((r) => `| ${[r.calls, r.total_ms, r.mean_ms, r.plan_ms, r.rows, r.hit, r.read, r.wal_bytes, String(r.query).slice(0, 400)].map(cell).join(" | ")} |`),
      ];
      lines.push("", ...(await tableWrites(pg, sql, false)));
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, lines.join("\n") + "\n");
    } else await tableWrites(pg, sql, true);
    await sql.unsafe("select pg_stat_statements_reset()");
  } finally {
    await sql.end();
  }
}

/**
 * The row writes of every table of every database since the last reset (`reset`: clears them instead): inserts,
 * updates and how many of those stayed on their page (HOT: no index entry added), as markdown lines.
 */
async function tableWrites(pg: Pg, admin: postgres.Sql, reset: boolean): Promise<string[]> {
  const lines = ["| database | table | inserts | updates | HOT updates | deletes |", "|---|---|---|---|---|---|"];
  const dbs = await admin.unsafe("select datname from pg_database where not datistemplate and datallowconn");
  for (const { datname } of dbs) {
    const url = new URL(pg.url);
    url.pathname = `/${datname}`;
    const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      if (reset) await sql.unsafe("select pg_stat_reset()");
      else {
        const rows = await sql.unsafe(`
          select relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del from pg_stat_user_tables
           where n_tup_ins + n_tup_upd + n_tup_del > 0 order by n_tup_ins + n_tup_upd + n_tup_del desc limit 20`);
        for (const r of rows) lines.push(`| ${datname} | ${r.relname} | ${r.n_tup_ins} | ${r.n_tup_upd} | ${r.n_tup_hot_upd} | ${r.n_tup_del} |`);
      }
    } finally {
      await sql.end();
    }
  }
  return lines;
}
