// Native protocol frames, server to client: replies and pushed events as JSON text or msgpack binary
// (docs/protocol.md). Pure functions of their input: the hub encodes an event once per codec and shares the bytes.
import { pack } from "msgpackr";
import { ErrorCodes, type ErrorName } from "../../core/errors.ts";
import { roomIdOf } from "../../core/conv-ids.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import type { Frame } from "../../hub/session.ts";

/** The two wire formats (Session.codec): the hub encodes each event once per format in use. */
export const JSON_CODEC = "native/json";
export const MSGPACK = "native/mp";

export const serialize = (obj: unknown, binary: boolean): Frame => (binary ? pack(obj) : JSON.stringify(obj));

/** An error reply: the core's code as is, its name in `error` (docs/protocol.md "Errors"). */
export function errorFrame(id: unknown, name: ErrorName, message: string, extra?: object): Record<string, unknown> {
  return { t: "error", ...(id !== undefined ? { id } : {}), code: ErrorCodes[name], error: name, message, ...extra };
}

/** The answer to a compact heartbeat, written by hand (it is most of the frames): `id` is the id's JSON text (quickPing). */
export const pong = (id: string | null, now = Date.now()): string => (id === null ? `{"t":"pong","ts":${now}}` : `{"t":"pong","id":${id},"ts":${now}}`);

/** Room events as native frames; undefined for other events. */
export function roomEvent(ev: CoreEvent): Record<string, unknown> | undefined {
  if (ev.type === "room") {
    const items = ev.items.map((it) =>
      it.type === "msg" ? { t: "msg", msg: it.msg } : it.type === "recall" ? { t: "recall", msg: it.id, seq: it.seq, from: it.from } : { t: it.type, user: it.user },
    );
    return { t: "room", room: roomIdOf(ev.conv), ...(ev.online !== undefined ? { online: ev.online } : {}), items };
  }
  if (ev.type === "resync") return { t: "resync", room: roomIdOf(ev.conv), conv: ev.conv, after: ev.after, dropped: ev.dropped };
  return undefined;
}

/** A core event as the frame a client receives; undefined for events this protocol does not show. */
export function eventFrame(ev: CoreEvent): Record<string, unknown> | undefined {
  switch (ev.type) {
    case "message":
      return { t: "msg", msg: ev.msg satisfies Message };
    case "cursor":
      return { t: "receipt", conv: ev.conv, user: ev.user, field: ev.field, seq: ev.seq };
    case "receipts":
      return { t: "receipts", conv: ev.conv, counts: ev.counts };
    case "recall":
      return { t: "recall", conv: ev.conv, msg: ev.id, seq: ev.seq, from: ev.from };
    case "friend": {
      const { type: _t, to: _to, ...rest } = ev;
      return { t: "friend", ...rest };
    }
    case "member": {
      const { type: _t, to: _to, ...rest } = ev;
      return { t: "member", ...rest };
    }
    case "room":
    case "resync":
      return roomEvent(ev);
    case "gap":
      return { t: "gap" };
  }
  return undefined;
}

/** Dialect.encode: an event in one wire format. */
export function encode(ev: CoreEvent, codec: string): Frame | undefined {
  const f = eventFrame(ev);
  return f && serialize(f, codec === MSGPACK);
}
