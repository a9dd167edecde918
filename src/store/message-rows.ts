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
  return {
    id: r[0],
    conv: r[1],
    seq: r[2],
    from: r[3],
    kind: r[4],
    body: r[8] ? null : r[5],
    cmid: r[6] ?? undefined,
    ts: Math.trunc(r[7]),
    ...(r[8] ? { recalled: true } : {}),
  };
}

export function toMessage(r: MessageRow): Message {
  return {
    id: r.id.toString(),
    conv: r.convId,
    seq: Number(r.seq),
    from: r.senderId,
    kind: r.kind,
    body: r.recalledAt ? null : r.body,
    cmid: r.clientMsgId ?? undefined,
    ts: r.createdAt.getTime(),
    ...(r.recalledAt ? { recalled: true } : {}),
  };
}
