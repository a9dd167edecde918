// Real services for tests: each caller gets its own fresh Postgres database on the server that
// test/run.sh started, and the Redis URL it started.
import postgres from "postgres";

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with 'npm test' (test/run.sh starts Postgres and Redis)`);
  return v;
}

let n = 0;
/** Creates an empty database and returns its URL. */
export async function freshPgUrl(): Promise<string> {
  const admin = need("TEST_PG_URL");
  const name = `t_${process.pid}_${Date.now().toString(36)}_${++n}`;
  const sql = postgres(admin, { max: 1, onnotice: () => {} });
  await sql.unsafe(`create database ${name}`);
  await sql.end();
  const u = new URL(admin);
  u.pathname = `/${name}`;
  return u.toString();
}

export const redisUrl = () => need("TEST_REDIS_URL");

/** The seed URLs of the suite's Redis Cluster (test/run.sh starts it: 3 masters, 3 replicas). */
export const redisClusterUrls = () => need("TEST_REDIS_CLUSTER_URLS").split(",");
