// partitioned-pull: the offline pull of offline-pull (a user reconnects and pulls its 100 unread messages of
// 10 one-to-one chats, {"t":"sync","limit":100,"mark":true}) from a store of 10,000,000 messages (--store),
// in one run against two databases holding the same rows:
//   - partitioned: the messages table as the server makes it, by month; the rows span twelve months (eleven of
//     delivered history, then this month's unread), so twelve partitions hold them;
//   - unpartitioned: the table as it was before partitioning (one table, primary key id, unique (conv_id, seq)).
// Rows are made inside Postgres (INSERT ... SELECT over generate_series), then vacuumed, analyzed and checkpointed. Each
// user pulls once: closed loop for pulls per second, open loop for the latency of the pull itself.
import { target, type Ctx, type Result, type Row } from "../lib/harness.ts";
import { freshDb, sql, userIds } from "../lib/seed.ts";
import { openDb } from "../../src/store/db.ts";
import { pullLoops } from "./offline-pull.ts";
import { MessagePartitions, periodStart } from "../../src/store/partitions.ts";

const CONVS_PER = 5;
const PER_SIDE = 10;

/** The table of before partitioning (drizzle/0000 and 0001), indexes made after the rows. */
const PLAIN_TABLE = `
  drop table messages;
  create table messages (
    id bigint primary key, conv_id text not null, seq bigint not null, sender_id text not null,
    kind text not null default 'text', body jsonb not null, client_msg_id text,
    created_at timestamptz not null, recalled_at timestamptz)`;
const PLAIN_INDEXES = `
  create unique index messages_conv_seq_uq on messages (conv_id, seq);
  create unique index messages_sender_cmid_conv_uq on messages (sender_id, client_msg_id, conv_id) where client_msg_id is not null;
  create index messages_conv_time_idx on messages (conv_id, created_at)`;

/**
 * `users` users p0.., each in 1:1 chats with the next CONVS_PER users; each chat holds `per` messages: the first
 * per - 2·PER_SIDE spread over the eleven months before this one and delivered to both, the last 2·PER_SIDE
 * (PER_SIDE from each side) written this month and unread. Conversations carry the mark the writer keeps.
 */
async function fill(url: string, users: number, per: number, month0: number): Promise<void> {
  const hist = per - 2 * PER_SIDE;
  const d0 = new Date(month0);
  const hist0 = Date.UTC(d0.getUTCFullYear(), d0.getUTCMonth() - 11, 1);
  const span = month0 - hist0;
  // This month's messages: one a second from an hour ago (or from the month's start when younger).
  const recent0 = Math.max(month0, Date.now() - 3_600_000);
  const ts = (ms: string) => `to_timestamp((${ms}) / 1000.0)`;
  await sql(url, `
    create unlogged table bench_pairs as
      select (row_number() over (order by i, k) - 1)::bigint as ci, least(a, b) as a, greatest(a, b) as b
        from (select i, k, 'p' || i as a, 'p' || ((i + k) % ${users}) as b
                from generate_series(0, ${users - 1}) i cross join generate_series(1, ${CONVS_PER}) k) x;
    insert into users (id, nick) select 'p' || i, 'P' || i from generate_series(0, ${users - 1}) i;
    insert into conversations (id, kind, last_seq, last_msg_at, mark_seq, mark_at)
      select 'd:' || a || ':' || b, 'direct', ${per}, ${ts(`${recent0} + ${2 * PER_SIDE} * 1000`)}, ${hist + 1}, ${ts(String(month0))} from bench_pairs;
    insert into members (conv_id, user_id, delivered_seq, read_seq, last_sent_seq)
      select 'd:' || a || ':' || b, a, ${hist}, ${hist}, ${per - 1} from bench_pairs
      union all select 'd:' || a || ':' || b, b, ${hist}, ${hist}, ${per} from bench_pairs;
    insert into messages (id, conv_id, seq, sender_id, kind, body, created_at)
      select (1::bigint << 40) + p.ci * ${per} + s, 'd:' || p.a || ':' || p.b, s, case when s % 2 = 1 then p.a else p.b end, 'text',
             jsonb_build_object('text', 'offline message ' || s || ' of d:' || p.a || ':' || p.b),
             case when s <= ${hist} then ${ts(`${hist0}::float8 + (s - 1) * (${span}::float8 / ${hist}) + p.ci`)}
                  else ${ts(`${recent0}::float8 + (s - ${hist}) * 1000`)} end
        from bench_pairs p cross join generate_series(1, ${per}) s;
    drop table bench_pairs`);
}

async function sizeOf(url: string): Promise<number> {
  // pg_partition_tree lists a partitioned table's partitions; a plain table is measured alone.
  const [r] = await sql<{ b: string }>(
    url,
    `select case when (select relkind from pg_class where oid = 'messages'::regclass) = 'p'
                 then (select sum(pg_total_relation_size(relid)) from pg_partition_tree('messages'))
                 else pg_total_relation_size('messages') end::text as b`,
  );
  return Number(r!.b);
}

export async function partitionedPull(ctx: Ctx): Promise<Result> {
  const t0 = performance.now();
  const smoke = ctx.opts.smoke;
  const store = ctx.opts.store ?? (smoke ? 40_000 : 10_000_000);
  const users = smoke ? 200 : 10_000;
  // at least this month's unread and two messages of history a conversation
  const per = Math.max(2 * PER_SIDE + 2, 2 * Math.round(store / (users * CONVS_PER) / 2));
  const rate = ctx.opts.rate ?? (smoke ? 20 : 200);
  const concurrency = ctx.opts.n ?? (smoke ? 2 : 8);
  const month0 = periodStart(Date.now(), "month");
  const pg = await ctx.pg();
  const rows: Row[] = [];
  const params: Record<string, unknown> = { users, messagesPerChat: per, unreadPerUser: CONVS_PER * 2 * PER_SIDE, openLoopRate: rate };
  for (const variant of ["partitioned", "unpartitioned"] as const) {
    ctx.say(`partitioned-pull · ${variant} · ${users} users, ${users * CONVS_PER * per} messages`);
    const s0 = performance.now();
    const db = await freshDb(pg, `ppull_${variant}`);
    if (variant === "partitioned") {
      // The partitions of the eleven months before this one, as a server running then made them.
      const opened = await openDb({ databaseUrl: db });
      const parts = new MessagePartitions(opened.db, { interval: "month", ahead: 2, retentionDays: 0 });
      for (let m = 11; m >= 1; m--) {
        const d = new Date(month0);
        await parts.maintain(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - m, 15));
      }
      await opened.close();
    } else await sql(db, PLAIN_TABLE);
    await fill(db, users, per, month0);
    if (variant === "unpartitioned") await sql(db, PLAIN_INDEXES);
    await sql(db, "vacuum analyze");
    await sql(db, "checkpoint");
    const [{ n, parts }] = await sql<{ n: string; parts: string }>(
      db,
      `select (select count(*) from messages)::text as n,
              (select count(distinct tableoid) from messages)::text as parts`,
    );
    const bytes = await sizeOf(db);
    const seedSeconds = (performance.now() - s0) / 1000;
    ctx.say(`  ${n} messages in ${parts} table(s), ${(bytes / 2 ** 20).toFixed(0)} MiB with indexes, made in ${seedSeconds.toFixed(1)} s`);
    params[`${variant}: seed seconds`] = Number(seedSeconds.toFixed(1));
    const server = (await ctx.ours({ name: `ppull-${variant}`, users: [], db })).nodes[0]!;
    try {
      const { closed, open, cpu, dbCpu, pullsPerSec } = await pullLoops(ctx, server, userIds("p", users), { concurrency, rate });
      rows.push({
        server: variant === "partitioned" ? `ours partitioned (${parts} partitions)` : "ours unpartitioned",
        value: pullsPerSec,
        unit: "pulls/s",
        p50: open.hist.pct(0.5),
        p99: open.hist.pct(0.99),
        cpu: (cpu / Math.max(1, closed.counters.count)) * 1e6,
        cpuUnit: "server CPU µs per pull",
        extra: {
          "stored messages": Number(n),
          "table MiB per million messages": Number((bytes / 2 ** 20 / (Number(n) / 1e6)).toFixed(0)),
          "msgs per pull": Number((closed.counters.msgs / Math.max(1, closed.counters.count)).toFixed(1)),
          "closed-loop p50 ms": closed.hist.pct(0.5),
          "closed-loop p99 ms": closed.hist.pct(0.99),
          "db CPU µs per pull": Math.round((dbCpu / Math.max(1, closed.counters.count)) * 1e6),
          errors: closed.counters.errors + open.counters.errors,
        },
      });
    } finally {
      await server.stop();
    }
  }
  const [p, u] = rows;
  const ratio = p!.value / u!.value;
  return {
    scenario: "partitioned-pull",
    title: "Offline pull of 100 unread messages: monthly partitions against one table",
    params: { storedMessages: users * CONVS_PER * per, ...params },
    rows,
    ratios: [{ ours: p!.server, peer: u!.server, ratio, p99Ratio: p!.p99 && u!.p99 ? p!.p99 / u!.p99 : undefined }],
    targets: [target("partitioned / unpartitioned pulls per second", "reported", ratio, undefined, 2)],
    notes: ["same rows in both databases; the partitioned one reads only this month's partition for these pulls (docs/storage.md)"],
    seconds: (performance.now() - t0) / 1000,
  };
}
