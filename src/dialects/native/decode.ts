// Native protocol frames (docs/protocol.md), client to server: bytes (JSON text or msgpack binary) to a typed
// frame, or the error that answers them. Schemas are compiled once; a frame that fails one gets an error naming
// the first bad field. Nothing here reads or changes state.
import { Type as T, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { unpack } from "msgpackr";

const Id = T.Optional(T.Union([T.String({ maxLength: 64 }), T.Integer()]));
const Conv = T.String({ minLength: 1, maxLength: 200 });
const Seq = T.Integer({ minimum: 0 });
const GroupId = T.String({ minLength: 1, maxLength: 128 });
const UserId = T.String({ minLength: 1, maxLength: 128 });
const RoomId = T.String({ minLength: 1, maxLength: 128 });
const Limit = T.Optional(T.Integer({ minimum: 1, maximum: 500 }));

export const Frames = {
  // No maxLength: a token too long to be one is a bad token (4010, close 4001), judged by the auth handler.
  auth: T.Object({ t: T.Literal("auth"), id: Id, token: T.String({ minLength: 1 }) }),
  ping: T.Object({ t: T.Literal("ping"), id: Id }),
  send: T.Object({
    t: T.Literal("send"),
    id: Id,
    to: T.Optional(T.String({ minLength: 1, maxLength: 128 })),
    conv: T.Optional(Conv),
    kind: T.Optional(T.String({ minLength: 1, maxLength: 32 })),
    body: T.Unknown(),
    cmid: T.Optional(T.String({ minLength: 1, maxLength: 64 })),
  }),
  sync: T.Object({
    t: T.Literal("sync"),
    id: Id,
    conv: T.Optional(Conv),
    limit: Limit,
    after: T.Optional(T.Object({ conv: Conv, seq: Seq })),
    /** pull and mark delivered in one step */
    mark: T.Optional(T.Boolean()),
  }),
  delivered: T.Object({ t: T.Literal("delivered"), id: Id, conv: Conv, seq: Seq }),
  read: T.Object({ t: T.Literal("read"), id: Id, conv: Conv, seq: Seq }),
  history: T.Object({
    t: T.Literal("history"),
    id: Id,
    conv: Conv,
    before: T.Optional(Seq),
    after: T.Optional(Seq),
    from: T.Optional(T.Integer()),
    to: T.Optional(T.Integer()),
    limit: Limit,
    desc: T.Optional(T.Boolean()),
  }),
  convs: T.Object({
    t: T.Literal("convs"),
    id: Id,
    kind: T.Optional(T.String({ maxLength: 16 })),
    since: T.Optional(T.Integer()),
    before: T.Optional(T.Integer()),
    awaiting: T.Optional(T.Boolean()),
    empty: T.Optional(T.Boolean()),
    limit: Limit,
  }),
  receipts: T.Object({ t: T.Literal("receipts"), id: Id, conv: Conv, from: T.Integer({ minimum: 1 }), to: T.Integer({ minimum: 1 }) }),
  readers: T.Object({ t: T.Literal("readers"), id: Id, conv: Conv, seq: T.Integer({ minimum: 1 }) }),
  recall: T.Object({
    t: T.Literal("recall"),
    id: Id,
    msg: T.Optional(T.String({ pattern: "^[0-9]{1,19}$" })),
    cmid: T.Optional(T.String({ minLength: 1, maxLength: 64 })),
  }),
  group_create: T.Object({
    t: T.Literal("group_create"),
    id: Id,
    group: T.Optional(GroupId),
    kind: T.String({ maxLength: 16 }),
    name: T.Optional(T.String({ maxLength: 200 })),
    avatar: T.Optional(T.String({ maxLength: 2000 })),
    attributes: T.Optional(T.Record(T.String(), T.Unknown())),
    members: T.Optional(T.Array(UserId, { maxItems: 1000 })),
  }),
  group_info: T.Object({ t: T.Literal("group_info"), id: Id, group: GroupId }),
  group_members: T.Object({ t: T.Literal("group_members"), id: Id, group: GroupId }),
  group_join: T.Object({ t: T.Literal("group_join"), id: Id, group: GroupId }),
  group_leave: T.Object({ t: T.Literal("group_leave"), id: Id, group: GroupId }),
  group_add: T.Object({ t: T.Literal("group_add"), id: Id, group: GroupId, users: T.Array(UserId, { minItems: 1, maxItems: 1000 }) }),
  group_remove: T.Object({ t: T.Literal("group_remove"), id: Id, group: GroupId, user: UserId }),
  group_role: T.Object({ t: T.Literal("group_role"), id: Id, group: GroupId, user: UserId, role: T.String({ maxLength: 16 }) }),
  group_mute: T.Object({ t: T.Literal("group_mute"), id: Id, group: GroupId, user: UserId, seconds: T.Integer({ minimum: 0 }) }),
  group_update: T.Object({
    t: T.Literal("group_update"),
    id: Id,
    group: GroupId,
    name: T.Optional(T.String({ maxLength: 200 })),
    avatar: T.Optional(T.String({ maxLength: 2000 })),
    attributes: T.Optional(T.Record(T.String(), T.Unknown())),
  }),
  group_dissolve: T.Object({ t: T.Literal("group_dissolve"), id: Id, group: GroupId }),
  join_room: T.Object({ t: T.Literal("join_room"), id: Id, room: RoomId }),
  leave_room: T.Object({ t: T.Literal("leave_room"), id: Id, room: RoomId }),
  room_send: T.Object({
    t: T.Literal("room_send"),
    id: Id,
    room: RoomId,
    class: T.Optional(T.Union([T.Literal("droppable"), T.Literal("must")])),
    kind: T.Optional(T.String({ minLength: 1, maxLength: 32 })),
    body: T.Unknown(),
    cmid: T.Optional(T.String({ minLength: 1, maxLength: 64 })),
  }),
  group_discover: T.Object({ t: T.Literal("group_discover"), id: Id, kind: T.String({ maxLength: 16 }), area: T.Optional(T.String({ maxLength: 200 })) }),
  friend_request: T.Object({ t: T.Literal("friend_request"), id: Id, user: UserId, note: T.Optional(T.String({ maxLength: 200 })) }),
  friend_answer: T.Object({ t: T.Literal("friend_answer"), id: Id, user: UserId, accept: T.Boolean() }),
  friend_requests: T.Object({
    t: T.Literal("friend_requests"),
    id: Id,
    dir: T.Optional(T.Union([T.Literal("in"), T.Literal("out")])),
    status: T.Optional(T.String({ maxLength: 16 })),
  }),
  friends: T.Object({ t: T.Literal("friends"), id: Id }),
  friend_remove: T.Object({ t: T.Literal("friend_remove"), id: Id, user: UserId }),
  friend_remark: T.Object({ t: T.Literal("friend_remark"), id: Id, user: UserId, remark: T.String({ maxLength: 100 }) }),
  block: T.Object({ t: T.Literal("block"), id: Id, user: UserId }),
  unblock: T.Object({ t: T.Literal("unblock"), id: Id, user: UserId }),
  blocks: T.Object({ t: T.Literal("blocks"), id: Id }),
  follow: T.Object({ t: T.Literal("follow"), id: Id, user: UserId }),
  unfollow: T.Object({ t: T.Literal("unfollow"), id: Id, user: UserId }),
  followers: T.Object({ t: T.Literal("followers"), id: Id, user: T.Optional(UserId), limit: T.Optional(T.Integer({ minimum: 1, maximum: 1000 })), after: T.Optional(UserId) }),
  following: T.Object({ t: T.Literal("following"), id: Id, user: T.Optional(UserId), limit: T.Optional(T.Integer({ minimum: 1, maximum: 1000 })), after: T.Optional(UserId) }),
} as const;

export type FrameType = keyof typeof Frames;
export type FrameOf<K extends FrameType> = Static<(typeof Frames)[K]>;

// A Map: `t` comes from the client, so `constructor`, `toString` or `__proto__` must not find anything.
const checks = new Map<string, TypeCheck<TSchema>>(Object.entries(Frames).map(([k, s]) => [k, TypeCompiler.Compile(s as TSchema)]));

/** How `t` is shown in an error: any decoded value (a msgpack BigInt, a Map, a cycle-free object) without throwing. */
function show(t: unknown): string {
  if (typeof t === "string") return JSON.stringify(t.length > 64 ? `${t.slice(0, 64)}…` : t);
  if (typeof t === "bigint") return `${t}n`;
  if (t === undefined || t === null || typeof t === "number" || typeof t === "boolean") return String(t);
  return `of type ${typeof t}`;
}

/** Validates a decoded frame: the typed frame, or an error message naming the first bad field. */
export function check(frame: Record<string, unknown>): { type: FrameType; frame: any } | { error: string; unknown?: true } {
  const t = frame.t;
  const c = typeof t === "string" ? checks.get(t) : undefined;
  if (!c) return { error: `unknown frame type ${show(t)}`, unknown: true };
  if (c.Check(frame)) return { type: t as FrameType, frame };
  const e = c.Errors(frame).First();
  return { error: `${e?.path || "frame"}: ${e?.message ?? "invalid"}` };
}

export type Decoded =
  | { type: FrameType; frame: any; id: string | number | undefined }
  | { error: "bad_frame" | "unknown_type" | "bad_request"; message: string; id?: string | number };

const idOf = (f: unknown) => {
  const id = (f as { id?: unknown } | null)?.id;
  return typeof id === "string" || typeof id === "number" ? id : undefined;
};

/** One frame off the wire: JSON in a text frame, msgpack in a binary one, an object with a known `t`. */
export function decode(data: string | Uint8Array): Decoded {
  let f: unknown;
  try {
    f = typeof data === "string" ? JSON.parse(data) : unpack(data);
  } catch {
    return { error: "bad_frame", message: typeof data === "string" ? "text frames must be JSON" : "binary frames must be msgpack" };
  }
  if (typeof f !== "object" || f === null || Array.isArray(f)) return { error: "bad_frame", message: "a frame is an object with a `t` field" };
  const c = check(f as Record<string, unknown>);
  if ("error" in c) return { error: c.unknown ? "unknown_type" : "bad_request", message: c.error, id: idOf(f) };
  return { type: c.type, frame: c.frame, id: idOf(f) };
}

/** Only the id of a frame (to answer one that is not handled); undefined when it has none or is unreadable. */
export function frameId(data: string | Uint8Array): string | number | undefined {
  try {
    return idOf(typeof data === "string" ? JSON.parse(data) : unpack(data));
  } catch {
    return undefined;
  }
}

/** The compact heartbeat with an id: `{"t":"ping","id":` then the id then `}`. */
const PING_ID = '{"t":"ping","id":';

/**
 * A heartbeat of the documented shape written compactly: `{"t":"ping"}`, `{"t":"ping","id":<integer>}` (at most 15
 * digits, no leading zero) or `{"t":"ping","id":"<string>"}` (at most 64 characters, no escape, quote or control
 * character). Read as text, without JSON or the schema check: the commonest frame costs a few character tests.
 * Returns the id as the client wrote it (its JSON text, put back as is in the pong), null when there is none, or
 * undefined for anything else, which then takes the full path (a ping written otherwise is answered there the same).
 */
export function quickPing(data: string | Uint8Array): string | null | undefined {
  if (typeof data !== "string") return undefined;
  const n = data.length;
  if (n === 12) return data === '{"t":"ping"}' ? null : undefined;
  if (n < 19 || n > 84 || data.charCodeAt(n - 1) !== 125 /* } */ || !data.startsWith(PING_ID)) return undefined;
  const end = n - 1;
  let i = 17;
  if (data.charCodeAt(i) === 34 /* " */) {
    if (end - 1 === i || data.charCodeAt(end - 1) !== 34) return undefined;
    for (i++; i < end - 1; i++) {
      const c = data.charCodeAt(i);
      if (c === 34 || c === 92 /* \ */ || c < 32) return undefined;
    }
    return data.slice(17, end);
  }
  if (data.charCodeAt(i) === 45 /* - */) i++;
  const first = i;
  for (; i < end; i++) {
    const c = data.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  const digits = end - first;
  if (digits === 0 || digits > 15 || (digits > 1 && data.charCodeAt(first) === 48)) return undefined;
  return data.slice(17, end);
}
