// Message rows as the core's Message: from drizzle's rows, and from a page read as JSON (store/messages.ts).
import type { Message } from "../core/types.ts";
import type { messages } from "./schema.ts";

type MessageRow = typeof messages.$inferSelect;

/** A message of a pending page, as the statement builds it in JSON: [id, conv, seq, from, kind, body, cmid, ts ms, recalled]. */
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
