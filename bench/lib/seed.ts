// Databases for our server: a fresh Postgres database with the project's migrations (the same openDb
// the server runs), and rows loaded with COPY, the fastest way in: users, and for offline-pull a store
// of conversations, members and messages.
import { once } from "node:events";
import postgres from "postgres";
import { openDb } from "../../src/store/db.ts";
import { periodStart } from "../../src/store/partitions.ts";
import type { Pg } from "./services.ts";

export async function freshDb(pg: Pg, name: string): Promise<string> {
  const url = await pg.createDb(name);
  const db = await openDb({ databaseUrl: url });
  await db.close();
  return url;
}

/** COPY FROM STDIN of the lines `rows` yields (tab-separated text format), written in ~1 MB chunks. */
export async function copyRows(url: string, table: string, columns: string[], rows: Iterable<string>): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const w = await sql.unsafe(`copy ${table} (${columns.join(", ")}) from stdin`).writable();
    let buf: string[] = [];
    let size = 0;
    let n = 0;
    for (const line of rows) {
      buf.push(line);
      size += line.length + 1;
      n++;
      if (size > 1 << 20) {
        if (!w.write(buf.join("\n") + "\n")) await once(w, "drain");
        buf = [];
        size = 0;
      }
    }
    if (buf.length) w.write(buf.join("\n") + "\n");
    w.end();
    await once(w, "finish");
    return n;
  } finally {
    await sql.end();
  }
}

export const userIds = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

export async function copyUsers(url: string, ids: string[]): Promise<void> {
  await copyRows(url, "users", ["id", "nick"], (function* () {
    for (const id of ids) yield `${id}\t${id.toUpperCase()}`;
  })());
}

export async function sql<T = any>(url: string, text: string): Promise<T[]> {
  const c = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return (await c.unsafe(text)) as unknown as T[];
  } finally {
    await c.end();
  }
}

/**
 * The offline store: `users` users, each in 1:1 chats with the next `convsPer` users (so in 2×convsPer
 * chats), every chat holding `perSide` messages from each side, none delivered yet. Each user has
 * 2 × convsPer × perSide unread messages; the store holds users × convsPer × 2 × perSide.
 */
export async function seedInbox(url: string, o: { users: number; convsPer: number; perSide: number }): Promise<{ messages: number; seconds: number }> {
  const t0 = performance.now();
  const ids = userIds("p", o.users);
  await copyUsers(url, ids);
  const pairs: [string, string][] = [];
  for (let i = 0; i < o.users; i++) {
    for (let k = 1; k <= o.convsPer; k++) {
      const a = ids[i]!;
      const b = ids[(i + k) % o.users]!;
      pairs.push(a < b ? [a, b] : [b, a]);
    }
  }
  const per = 2 * o.perSide;
  const start = Date.now() - 86_400_000;
  const iso = (ms: number) => new Date(ms).toISOString();
  // Each conversation's partition mark as the writer leaves it (store/append.ts): the first seq of the newest
  // period its messages fall in (message s is written at start + s seconds), and that period's start.
  const newest = periodStart(start + per * 1000, "month");
  let markSeq = 1;
  while (periodStart(start + markSeq * 1000, "month") < newest) markSeq++;
  await copyRows(url, "conversations", ["id", "kind", "last_seq", "last_msg_at", "mark_seq", "mark_at"], (function* () {
    for (const [a, b] of pairs) yield `d:${a}:${b}\tdirect\t${per}\t${iso(start + per * 1000)}\t${markSeq}\t${iso(newest)}`;
  })());
  await copyRows(url, "members", ["conv_id", "user_id", "last_sent_seq"], (function* () {
    for (const [a, b] of pairs) {
      yield `d:${a}:${b}\t${a}\t${per - 1}`;
      yield `d:${a}:${b}\t${b}\t${per}`;
    }
  })());
  // Ids: time-sortable like the server's (ms << 22), unique per row.
  let id = BigInt(start) << 22n;
  const messages = await copyRows(url, "messages", ["id", "conv_id", "seq", "sender_id", "kind", "body", "created_at"], (function* () {
    for (const [a, b] of pairs) {
      const conv = `d:${a}:${b}`;
      for (let s = 1; s <= per; s++) {
        id += 1n;
        yield `${id}\t${conv}\t${s}\t${s % 2 ? a : b}\ttext\t{"text": "offline message ${s} of ${conv}"}\t${iso(start + s * 1000)}`;
      }
    }
  })());
  // The steady state of a store whose rows were written over time, not the aftermath of one bulk load:
  // vacuumed (hint bits and visibility map set, so no autovacuum of a million fresh rows and no first reader
  // dirtying every page inside the measured window) and checkpointed (the load's dirty pages already written).
  await sql(url, "vacuum analyze");
  await sql(url, "checkpoint");
  return { messages, seconds: (performance.now() - t0) / 1000 };
}
