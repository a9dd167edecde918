// MESSAGE_RETENTION_DAYS on a running server: at start (and every hour) the partitions whose period ended before
// the retention are dropped whole; the rest is served as before.
import { expect, test } from "bun:test";
import postgres from "postgres";
import { IdGen } from "../../src/core/ids.ts";
import { openDb } from "../../src/store/db.ts";
import { MessageStore } from "../../src/store/messages.ts";
import { MessagePartitions, partitionName, periodStart } from "../../src/store/partitions.ts";
import { startTestServer } from "../helpers/server.ts";
import { freshPgUrl } from "../helpers/services.ts";

const DAY = 86_400_000;

test("a server started with MESSAGE_RETENTION_DAYS drops the partitions past it and keeps serving the others", async () => {
  const url = await freshPgUrl();
  const m0 = periodStart(Date.now(), "month");
  const m1 = periodStart(m0 - 1, "month");
  const old = periodStart(m1 - 1, "month"); // two months before this one
  // A retention whose cut falls in the previous month: the partition of two months ago ended before it.
  const days = Math.floor((Date.now() - m1) / DAY);
  // A store written three months ago and today.
  const db = await openDb({ databaseUrl: url });
  await new MessagePartitions(db.db, { interval: "month", ahead: 2, retentionDays: 0 }).maintain(old + DAY);
  const ids = new IdGen("retention");
  const item = (at: number, body: string) => ({ id: ids.next(at), conv: "d:ann:ben", sender: "ann", kind: "text", body, at: new Date(at), create: { kind: "direct", members: ["ann", "ben"] } });
  await new MessageStore(db.db).appendBatch([item(old + DAY, "old"), item(Date.now() - 1000, "new")]);
  await db.close();
  const srv = await startTestServer({ databaseUrl: url, env: { MESSAGE_RETENTION_DAYS: String(days) } });
  const pg = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await pg`select c.relname as n from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'messages'::regclass`;
    const names = rows.map((r) => r.n as string);
    expect(names).not.toContain(partitionName(old));
    expect(names).toContain(partitionName(m1));
    expect(names).toContain(partitionName(m0));
    await srv.user("ann");
    const h = await srv.api(`/api/conversations/d:ann:ben/messages?user=ann&limit=10&after=0`);
    expect(h.status).toBe(200);
    expect(h.body.msgs.map((m: { seq: number; body: string }) => [m.seq, m.body])).toEqual([[2, "new"]]);
  } finally {
    await pg.end();
    await srv.stop();
  }
});
