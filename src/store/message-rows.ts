// Message rows as the core's Message: from drizzle's rows, and from raw SQL rows (ids and bodies read as text).
import type { Message } from "../core/types.ts";
import type { messages } from "./schema.ts";

type MessageRow = typeof messages.$inferSelect;

/** A message row read with raw SQL (ids and bodies as text, so both drivers return the same). */
export interface RawMessage {
  id: string;
  conv_id: string;
  seq: string | number;
  sender_id: string;
  kind: string;
  body: string;
  client_msg_id: string | null;
  /** a timestamp, or its epoch milliseconds (the pull's page: cheaper to read than a timestamp's text) */
  created_at: string | Date | number;
  recalled_at: string | Date | null;
}

export function fromRaw(r: RawMessage): Message {
  return toMessage({
    id: BigInt(r.id),
    convId: r.conv_id,
    seq: Number(r.seq),
    senderId: r.sender_id,
    kind: r.kind,
    body: JSON.parse(r.body),
    clientMsgId: r.client_msg_id,
    createdAt: new Date(r.created_at),
    recalledAt: r.recalled_at ? new Date(r.recalled_at) : null,
  });
}

/** A message of the pull's page, as the statement builds it in JSON: [id, conv, seq, from, kind, body, cmid, ts ms, recalled]. */
export type PulledRow = [string, string, number, string, string, unknown, string | null, number, boolean];

export function fromPulled(r: PulledRow): Message {
  return message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], Math.trunc(r[7]), r[8]);
}

export function toMessage(r: MessageRow): Message {
  return message(r.id.toString(), r.convId, Number(r.seq), r.senderId, r.kind, r.body, r.clientMsgId, r.createdAt.getTime(), !!r.recalledAt);
}

/** The core's Message: a recalled message keeps its place but not its body. */
export function message(id: string, conv: string, seq: number, from: string, kind: string, body: unknown, cmid: string | null, ts: number, recalled: boolean): Message {
  return { id, conv, seq, from, kind, body: recalled ? null : body, cmid: cmid ?? undefined, ts, ...(recalled ? { recalled: true } : {}) };
}
