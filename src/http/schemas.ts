// Shared schemas of the HTTP API: ids as the core defines them, and numbers in their real range. Every path
// parameter and query value that reaches the store goes through one of these, so bad input (a NUL character,
// `1e300`, `10.5` where a seq is meant) is a 400 with a message, never a store error. And the one error body
// of every route, with the HTTP status of each core error.
import { t } from "elysia";
import { ErrorCodes } from "../core/errors.ts";
import { GROUP_ID_RE } from "../core/groups.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { ROOM_ID_RE } from "../core/live.ts";

export const ErrorBody = t.Object({ code: t.Integer(), error: t.String(), message: t.String() });

export function errorBody(name: keyof typeof ErrorCodes, message: string) {
  return { code: ErrorCodes[name], error: name, message };
}

/** The HTTP status of a core error (400 for one not named here). */
export const httpStatus: Partial<Record<keyof typeof ErrorCodes, number>> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  blocked: 403,
  muted: 403,
  not_member: 403,
  not_found: 404,
  conflict: 409,
  recall_expired: 409,
  rate_limited: 429,
  slow_mode: 429,
  unavailable: 503,
};

export const UserId = (description = "a user id: 1-128 characters of [A-Za-z0-9_.@-]") => t.String({ pattern: USER_ID_RE.source, description });
export const GroupId = (description = "a group id: 1-128 characters of [A-Za-z0-9_.@-]") => t.String({ pattern: GROUP_ID_RE.source, description });
export const RoomId = (description = "a room id (the conversation is `r:<id>`)") => t.String({ pattern: ROOM_ID_RE.source, description });
/** Text without control characters (NUL and the like), 1-`max` characters: conversation ids, keys of the rooms protocol. */
export const Text = (max: number, description?: string) => t.String({ minLength: 1, maxLength: max, pattern: "^[^\\u0000-\\u001f\\u007f]*$", description });
export const ConvId = (description = "a conversation id (`d:<a>:<b>`, `g:<group>`, `r:<room>`, …)") => Text(400, description);

/** An integer query value from `min` to `max` (a seq, a time in ms, a page size). */
export const Int = (description: string, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  t.Optional(t.Numeric({ minimum: min, maximum: max, multipleOf: 1, description }));
/** A time in ms since the epoch (up to year 275760, the largest a Date holds). */
export const TimeMs = (description: string) => Int(description, 0, 8.64e15);

/** A stored message as the API returns it. */
export const Msg = t.Object({
  id: t.String(),
  conv: t.String(),
  seq: t.Integer(),
  from: t.String(),
  kind: t.String(),
  body: t.Unknown(),
  cmid: t.Optional(t.String()),
  ts: t.Number(),
  recalled: t.Optional(t.Boolean()),
});
