// The webhook outbox (core/webhooks.ts WebhookOutbox): events accepted for delivery, in the store so that a
// node killed or restarted loses none of them, and shared by the nodes of a cluster. Each call is one statement
// (autocommit); rows travel as one JSON parameter. Times are the database's clock, so the nodes agree on them.
import { sql } from "drizzle-orm";
import type { OutboxEvent, OutboxRow, WebhookOutbox } from "../core/webhooks.ts";
import { rowsOf, type Db } from "./db.ts";

const ms = (n: number) => sql`(${Math.max(0, Math.round(n))}::bigint * interval '1 millisecond')`;

export class WebhookOutboxStore implements WebhookOutbox {
  constructor(private readonly db: Db) {}

  async add(events: OutboxEvent[], retryForMs: number, max: number): Promise<number> {
    if (!events.length) return 0;
    // At most `max` rows in the table: the ones past it are not inserted (the caller counts them dropped).
    // Two nodes inserting at the same instant may each see room for their batch: the bound is that close.
    const rows = rowsOf<{ id: string }>(
      await this.db.execute(sql`
        insert into webhook_outbox (id, kind, body, next_attempt_at, expires_at)
        select e.v->>'id', e.v->>'kind', e.v->>'body', now(), now() + ${ms(retryForMs)}
          from jsonb_array_elements(${JSON.stringify(events)}::jsonb) with ordinality as e(v, n)
         order by e.n
         limit greatest(0, ${max}::bigint - (select count(*) from webhook_outbox))
        on conflict (id) do nothing
        returning id`),
    );
    return rows.length;
  }

  async claim(n: number, leaseMs: number): Promise<OutboxRow[]> {
    if (n <= 0) return [];
    // SKIP LOCKED: nodes claiming at once take different rows instead of waiting for each other.
    const rows = rowsOf<{ id: string; kind: string; body: string; attempts: number | string }>(
      await this.db.execute(sql`
        update webhook_outbox o set next_attempt_at = now() + ${ms(leaseMs)}, attempts = o.attempts + 1
         where o.id in (
           select id from webhook_outbox
            where next_attempt_at <= now() and expires_at >= now()
            order by next_attempt_at
            limit ${n}
            for update skip locked)
        returning o.id, o.kind, o.body, o.attempts`),
    );
    return rows.map((r) => ({ id: r.id, kind: r.kind, body: r.body, attempts: Number(r.attempts) }));
  }

  async remove(ids: string[]): Promise<number> {
    if (!ids.length) return 0;
    const rows = rowsOf<{ id: string }>(
      await this.db.execute(sql`delete from webhook_outbox where id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb)) returning id`),
    );
    return rows.length;
  }

  async retry(items: { id: string; waitMs: number }[]): Promise<{ kept: number; expired: number }> {
    if (!items.length) return { kept: 0, expired: 0 };
    // A next attempt past the event's expiry is none: the row is deleted (given up) instead.
    const [row] = rowsOf<{ kept: number | string; expired: number | string }>(
      await this.db.execute(sql`
        with r as (select * from jsonb_to_recordset(${JSON.stringify(items)}::jsonb) as x(id text, "waitMs" bigint)),
        gone as (
          delete from webhook_outbox o using r
           where o.id = r.id and now() + r."waitMs" * interval '1 millisecond' > o.expires_at
          returning o.id),
        kept as (
          update webhook_outbox o set next_attempt_at = now() + r."waitMs" * interval '1 millisecond'
            from r
           where o.id = r.id and now() + r."waitMs" * interval '1 millisecond' <= o.expires_at
          returning o.id)
        select (select count(*) from kept) as kept, (select count(*) from gone) as expired`),
    );
    return { kept: Number(row?.kept ?? 0), expired: Number(row?.expired ?? 0) };
  }

  async expire(): Promise<number> {
    // Only rows not claimed now (due): a claimed row is its node's until the lease runs out.
    const rows = rowsOf<{ id: string }>(
      await this.db.execute(sql`delete from webhook_outbox where expires_at < now() and next_attempt_at <= now() returning id`),
    );
    return rows.length;
  }

  async count(): Promise<number> {
    const [row] = rowsOf<{ n: number | string }>(await this.db.execute(sql`select count(*) as n from webhook_outbox`));
    return Number(row?.n ?? 0);
  }
}
