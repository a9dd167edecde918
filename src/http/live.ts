// Server API for live rooms (`/api/rooms`, apikey): create a room or set its slow mode, publish to it
// (droppable or must-deliver), mute and unmute viewers, read its online count and stored messages.
// The backend is trusted: its publishes skip mutes, slow mode and rate limits (a paid gift is not throttled).
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { roomConvId } from "../core/conv-ids.ts";
import { ROOM_ID_RE } from "../core/live.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { serverAuth } from "./auth.ts";
import { ErrorBody, Int, Msg } from "./schemas.ts";

const RoomParams = t.Object({ id: t.String({ pattern: ROOM_ID_RE.source, description: "room id (the conversation is `r:<id>`)" }) });
const MuteParams = t.Object({ id: t.String({ pattern: ROOM_ID_RE.source }), user: t.String({ pattern: USER_ID_RE.source }) });
const Class = t.Union([t.Literal("droppable"), t.Literal("must")], {
  description: "droppable (danmaku, typing: not stored, skipped for slow viewers) or must (gifts, paid messages: stored, never dropped silently)",
});

const RoomOut = t.Object({
  room: t.String(),
  conv: t.String({ description: "`r:<id>`: the conversation of the room's stored messages" }),
  name: t.String(),
  owner: t.Union([t.String(), t.Null()], { description: "exempt from slow mode" }),
  online: t.Integer({ description: "connections in the room across the cluster" }),
  lastSeq: t.Integer({ description: "seq of the latest must-deliver message" }),
  slowModeSec: t.Integer(),
  createdAt: t.Number(),
});
const AckOut = t.Object({
  id: t.String(),
  conv: t.String(),
  seq: t.Optional(t.Integer({ description: "must-deliver only: its position in the room's history" })),
  ts: t.Number(),
  dup: t.Boolean(),
});
const MuteOut = t.Object({ room: t.String(), user: t.String(), mutedUntil: t.Union([t.Number(), t.Null()]) });
const tags = ["rooms"];

export function liveHttp(app: Pick<App, "live" | "messaging">, apiKey: string | undefined) {
  const { live, messaging } = app;
  return new Elysia({ prefix: "/api/rooms" })
    .use(serverAuth(apiKey))
    .put("/:id", ({ params, body }) => live.update(params.id, { name: body.name, owner: body.owner, slowModeSec: body.slowModeSec }), {
      params: RoomParams,
      body: t.Object({
        name: t.Optional(t.String({ maxLength: 200 })),
        owner: t.Optional(t.Union([t.String({ pattern: USER_ID_RE.source }), t.Null()], { description: "the host; exempt from slow mode" })),
        slowModeSec: t.Optional(t.Integer({ minimum: 0, maximum: 86400, description: "one message per this many seconds per viewer; 0 turns slow mode off" })),
      }),
      response: { 200: RoomOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      detail: { summary: "Create a room, or set its name, owner or slow mode", tags },
    })
    .get("/:id", ({ params }) => live.info(params.id), {
      params: RoomParams,
      response: { 200: RoomOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      detail: { summary: "A room's settings and online count (connections across the cluster)", tags },
    })
    .post(
      "/:id/messages",
      ({ params, body: b }) => messaging.send(b.from, { conv: roomConvId(params.id) }, { class: b.class, kind: b.kind, body: b.body, cmid: b.cmid }, { trusted: true }),
      {
        params: RoomParams,
        body: t.Object({
          from: t.String({ pattern: USER_ID_RE.source, description: "the sender (an existing user, e.g. the gift's giver or a system account)" }),
          class: t.Optional(Class),
          kind: t.Optional(t.String({ maxLength: 32, description: "e.g. danmaku, gift (default text)" })),
          body: t.Unknown(),
          cmid: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "must-deliver only: a retry returns the first ack" })),
        }),
        response: { 200: AckOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Publish to a room (a must-deliver message is acknowledged after its commit); creates the room", tags },
      },
    )
    .get("/:id/messages", ({ params, query: q }) => live.history(params.id, { after: q.after, before: q.before, limit: q.limit }), {
      params: RoomParams,
      query: t.Object({
        after: Int("seq: messages above it, oldest first (a resync)"),
        before: Int("seq: messages below it, newest first"),
        limit: Int("page size, 1-500 (50)", 1, 500),
      }),
      response: { 200: t.Object({ msgs: t.Array(Msg), more: t.Boolean() }), 400: ErrorBody, 401: ErrorBody },
      detail: { summary: "A room's stored (must-deliver) messages by seq", tags },
    })
    .get("/:id/mutes", ({ params }) => live.mutes(params.id), {
      params: RoomParams,
      response: { 200: t.Array(t.Object({ user: t.String(), mutedUntil: t.Number() })), 400: ErrorBody, 401: ErrorBody },
      detail: { summary: "Mutes in force in a room", tags },
    })
    .put(
      "/:id/mutes/:user",
      async ({ params, body }) => ({ room: params.id, user: params.user, mutedUntil: await live.mute(params.id, params.user, body.seconds) }),
      {
        params: MuteParams,
        body: t.Object({ seconds: t.Integer({ minimum: 0, maximum: 366 * 86400, description: "mute for this long; 0 lifts the mute" }) }),
        response: { 200: MuteOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Mute a user in a room for a time (the user's connections are told)", tags },
      },
    )
    .delete("/:id/mutes/:user", async ({ params }) => ({ room: params.id, user: params.user, mutedUntil: await live.mute(params.id, params.user, 0) }), {
      params: MuteParams,
      response: { 200: MuteOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      detail: { summary: "Lift a user's mute in a room", tags },
    });
}
