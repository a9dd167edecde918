// Opens the database: Postgres through postgres.js when a URL is given, else embedded PGlite files.
// Both are drizzle PgDatabase instances, so one schema, one migration set and one Store serve both.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { fillPlaceholders, type SQL } from "drizzle-orm";
import { PgDialect, type PgDatabase, type PgQueryResultHKT } from "drizzle-orm/pg-core";
import * as schema from "./schema.ts";
import { MessagePartitions, type PartitionOptions } from "./partitions.ts";

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface OpenDb {
  db: Db;
  /**
   * One connection of its own for the group-commit writer's batches (store/append.ts): statements on it run in
   * the order they were sent, so the writer sends a batch while the one before is still running. PGlite: `db`.
   */
  appendDb: Db;
  driver: "postgres" | "pglite";
  close(): Promise<void>;
}

/** pg_advisory_lock key held while migrating ("chat" in ASCII). */
const MIGRATION_LOCK = 0x63686174;
const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url));

/**
 * Opens the store, applies the migrations and creates the messages table's partitions of the previous, the
 * current and the next periods (store/partitions.ts; retention is left to the server's timer), so a store
 * opened here can be written at once. `partitions` defaults to monthly, two ahead.
 */
export async function openDb(opts: {
  databaseUrl?: string;
  dataDir?: string;
  memory?: boolean;
  connectTimeoutSec?: number;
  partitions?: Omit<PartitionOptions, "retentionDays">;
}): Promise<OpenDb> {
  const parts = { interval: "month", ahead: 2, ...opts.partitions, retentionDays: 0 } as const;
  if (opts.databaseUrl) {
    const { default: postgres } = await import("postgres");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const { migrate } = await import("drizzle-orm/postgres-js/migrator");
    // onnotice: migrations' "already exists, skipping" notices are not worth a log line each.
    // During an outage a query fails instead of waiting: a connection attempt gives up after
    // connect_timeout, and reconnects back off at most 1 s (postgres.js's default grows to 20 s), so the
    // store is used again within about a second of coming back.
    const connect = (max: number) =>
      postgres(opts.databaseUrl!, {
        max,
        onnotice: () => {},
        connect_timeout: opts.connectTimeoutSec ?? 5,
        backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1),
      });
    const client = connect(10);
    const appendClient = connect(1);
    const db = drizzle(client, { schema });
    // Nodes starting together (WORKERS=N, a rolling deploy) migrate one at a time.
    const lock = await client.reserve();
    try {
      await lock`select pg_advisory_lock(${MIGRATION_LOCK})`;
      await migrate(db, { migrationsFolder });
      await new MessagePartitions(db as unknown as Db, parts).maintain();
    } finally {
      await lock`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {});
      lock.release();
    }
    return {
      db: db as unknown as Db,
      appendDb: drizzle(appendClient, { schema }) as unknown as Db,
      driver: "postgres",
      close: async () => void (await Promise.all([client.end({ timeout: 5 }), appendClient.end({ timeout: 5 })])),
    };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const { drizzle } = await import("drizzle-orm/pglite");
  const { migrate } = await import("drizzle-orm/pglite/migrator");
  let client: InstanceType<typeof PGlite>;
  if (opts.memory) client = new PGlite();
  else {
    const dir = `${opts.dataDir ?? "./data"}/pglite`;
    mkdirSync(dir, { recursive: true });
    client = new PGlite(dir);
  }
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  await new MessagePartitions(db as unknown as Db, parts).maintain();
  return { db: db as unknown as Db, appendDb: db as unknown as Db, driver: "pglite", close: () => client.close() };
}

/** postgres.js returns an array of rows from execute(); PGlite returns { rows }. */
export function rowsOf<T>(res: unknown): T[] {
  return (Array.isArray(res) ? res : (res as { rows: T[] }).rows) as T[];
}

/** A statement's text and its parameters, values or `sql.placeholder`s to fill (built once: `built`). */
export interface Built {
  sql: string;
  params: unknown[];
}

const dialect = new PgDialect();

/**
 * A hot path's statement, built once from drizzle's template with `sql.placeholder`s for what changes: building
 * the template at every call (its fragments merged, its parameters collected) was 3–4% of a reconnect's server
 * CPU (bench: offline-pull, profiled).
 */
export const built = (q: SQL): Built => dialect.sqlToQuery(q);

type RawClient = {
  unsafe?(text: string, params: unknown[], opts: { prepare: boolean }): { execute(): Promise<unknown[]> };
  query?(text: string, params: unknown[]): Promise<{ rows: unknown[] }>;
};

/**
 * Runs a built statement with `values` for its placeholders, sent at once (so statements sent one after the other
 * on one connection run in that order), and returns its rows: prepared on postgres.js; on PGlite as it comes
 * (PGlite's own parsing of the result: a hot statement returns text, numbers and JSON).
 */
export function run<T>(db: Db, q: Built, values: Record<string, unknown> = {}): Promise<T[]> {
  const client = (db as unknown as { $client: RawClient }).$client;
  const params = fillPlaceholders(q.params, values);
  if (client.unsafe) return client.unsafe(q.sql, params, { prepare: true }).execute() as Promise<T[]>;
  return client.query!(q.sql, params).then((r) => r.rows as T[]);
}

/**
 * A raw statement of a hot path that changes shape from call to call, built and run at once (`run`): prepared on
 * postgres.js (drizzle's `execute` sends it unprepared, so Postgres parses and plans it again each time: ~0.7 ms
 * of a 100-message pull). Returns the rows.
 */
export const prepared = <T>(db: Db, query: SQL): Promise<T[]> => run<T>(db, built(query));

/**
 * postgres.js (3.4.9) can throw from a `setImmediate` after a connection closed: a small write scheduled
 * for a socket it has just dropped (porsager/postgres#1066, #1154, #1208). Uncaught, that ends the process
 * whenever Postgres restarts or drops connections. For a process entry: that one error is logged and
 * dropped (the query it belonged to was already rejected with CONNECTION_CLOSED and its caller told);
 * any other uncaught exception still ends the process.
 */
export function guardDriverCrash(warn: (msg: string) => void): void {
  process.on("uncaughtException", (e) => {
    if (e instanceof TypeError && /socket\.write|reading 'write'/.test(e.message) && /postgres[/\\]src[/\\]connection\.js/.test(e.stack ?? "")) {
      warn(`postgres.js wrote to a closed connection (ignored): ${e.message}`);
      return;
    }
    console.error(e);
    process.exit(1);
  });
}
