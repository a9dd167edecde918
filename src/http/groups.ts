// Server API for messaging (`/api`, apikey): publish to a user or a group, manage groups, members and
// mutes, read a user's conversation list and a conversation's history. The backend acts with full rights
// (actor `null` in core/groups.ts); a message it publishes names its sender.
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { serverAuth } from "./auth.ts";
import { ConvId, ErrorBody, GroupId, Int, Msg, Text, TimeMs, UserId as UserIdOf } from "./schemas.ts";

const UserId = UserIdOf();
const GroupParams = t.Object({ id: GroupId() });
const MemberParams = t.Object({ id: GroupId(), user: UserIdOf() });
const GroupKind = t.Union([t.Literal("user"), t.Literal("interest"), t.Literal("neighbourhood"), t.Literal("service")]);
const Attrs = t.Record(t.String(), t.Unknown());

const GroupOut = t.Object({
  id: t.String(),
  conv: t.String({ description: "conversation id `g:<id>`, used by send/sync/history" }),
  kind: GroupKind,
  name: t.String(),
  avatar: t.String(),
  owner: t.Union([t.String(), t.Null()]),
  attributes: Attrs,
  members: t.Integer({ description: "member count" }),
  lastSeq: t.Integer(),
  createdAt: t.Number(),
  closed: t.Optional(t.Boolean()),
});
const MemberOut = t.Object({
  user: t.String(),
  nick: t.String(),
  role: t.String(),
  mutedUntil: t.Union([t.Number(), t.Null()]),
  readSeq: t.Integer(),
  deliveredSeq: t.Integer(),
});
const AckOut = t.Object({
  id: t.String(),
  conv: t.String(),
  seq: t.Optional(t.Integer({ description: "absent only for a live room's droppable message (not stored)" })),
  ts: t.Number(),
  dup: t.Boolean(),
});
const InboxOut = t.Object(
  {
    conv: t.String(),
    kind: t.String(),
    subtype: t.Union([t.String(), t.Null()]),
    name: t.String(),
    avatar: t.String(),
    role: t.String(),
    lastSeq: t.Integer(),
    lastMsgAt: t.Union([t.Number(), t.Null()]),
    unread: t.Integer(),
    awaiting: t.Boolean(),
    last: t.Optional(Msg),
  },
  { additionalProperties: true },
);
const tags = ["messaging"];

export function messagingHttp(app: Pick<App, "chat" | "groups" | "messaging">, apiKey: string | undefined) {
  const { chat, groups, messaging } = app;
  return new Elysia({ prefix: "/api" })
    .use(serverAuth(apiKey))
    .post(
      "/messages",
      ({ body: b }) =>
        // The server API sends as any existing user; in a group, roles and mutes do not apply (core/send.ts).
        messaging.send(b.from, { to: b.to, conv: b.conv }, { kind: b.kind, body: b.body, cmid: b.cmid }, { trusted: true }),
      {
        body: t.Object({
          from: UserIdOf("the sender (an existing user, e.g. a system account)"),
          to: t.Optional(UserIdOf("a user: a 1:1 message from `from`")),
          conv: t.Optional(ConvId("a conversation: `g:<group>` (mutes and roles do not apply), `d:<a>:<b>`, `c:desk:<guest>` (from the guest or the agent serving it), or `r:<room>` (a live room, droppable: see /api/rooms/{id}/messages for must-deliver)")),
          kind: t.Optional(t.String({ maxLength: 32 })),
          body: t.Unknown(),
          cmid: t.Optional(t.String({ minLength: 1, maxLength: 64, description: "idempotency key: a retry returns the first ack" })),
        }),
        response: { 200: AckOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Publish a message to a user or a group (acknowledged after commit)", tags },
      },
    )
    .get(
      "/users/:id/conversations",
      ({ params, query: q }) =>
        chat.inbox(params.id, { kind: q.kind, since: q.since, before: q.before, awaiting: q.awaiting, empty: q.empty, limit: q.limit }),
      {
        params: t.Object({ id: UserId }),
        query: t.Object({
          kind: t.Optional(t.String({ maxLength: 32, description: "direct | group | room | container" })),
          since: TimeMs("only conversations with a message at or after this time (ms)"),
          before: TimeMs("only conversations whose last message is older (ms): the next page"),
          awaiting: t.Optional(t.BooleanString({ description: "only those awaiting the user's reply" })),
          empty: t.Optional(t.BooleanString({ description: "include conversations without messages" })),
          limit: Int("page size, 1-500 (100)", 1, 500),
        }),
        response: { 200: t.Array(InboxOut), 400: ErrorBody, 401: ErrorBody },
        detail: { summary: "A user's conversation list: last message, unread count, awaiting reply, last contact", tags },
      },
    )
    .get(
      "/conversations/:conv/messages",
      ({ params, query: q }) => chat.history(q.user, params.conv, { before: q.before, after: q.after, from: q.from, to: q.to, limit: q.limit, desc: q.desc }),
      {
        params: t.Object({ conv: ConvId() }),
        query: t.Object({
          user: UserIdOf("read as this member"),
          before: Int("seq: messages below it"),
          after: Int("seq: messages above it (oldest first)"),
          from: TimeMs("time range start (ms)"),
          to: TimeMs("time range end (ms)"),
          limit: Int("page size, 1-500 (50)", 1, 500),
          desc: t.Optional(t.BooleanString()),
        }),
        response: { 200: t.Object({ msgs: t.Array(Msg), more: t.Boolean() }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
        detail: { summary: "History of a conversation, by seq or time range, as one of its members", tags },
      },
    )
    .post(
      "/groups",
      ({ body: b }) => groups.create(b.owner, { id: b.id, kind: b.kind, name: b.name, avatar: b.avatar, attributes: b.attributes, members: b.members }),
      {
        body: t.Object({
          id: t.Optional(t.String({ pattern: "^[\\w.@-]{1,128}$", description: "default: a new server id" })),
          kind: GroupKind,
          owner: UserId,
          name: t.Optional(t.String({ maxLength: 200 })),
          avatar: t.Optional(t.String({ maxLength: 2000 })),
          attributes: t.Optional(Attrs),
          members: t.Optional(t.Array(UserId, { maxItems: 1000 })),
        }),
        response: { 200: GroupOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        detail: { summary: "Create a group (user, interest, neighbourhood — needs attributes.area — or service)", tags },
      },
    )
    .get("/groups", ({ query: q }) => groups.discover(q.kind, q.area, q.limit ?? 100), {
      query: t.Object({ kind: GroupKind, area: t.Optional(Text(200)), limit: Int("page size, 1-500 (100)", 1, 500) }),
      response: { 200: t.Array(GroupOut), 400: ErrorBody, 401: ErrorBody },
      detail: { summary: "Discover open groups of a kind (neighbourhood groups by area)", tags },
    })
    .get("/groups/:id", ({ params }) => groups.info(null, params.id), {
      params: GroupParams,
      response: { 200: GroupOut, 401: ErrorBody, 404: ErrorBody },
      detail: { summary: "Read a group", tags },
    })
    .patch(
      "/groups/:id",
      ({ params, body }) => groups.update(null, params.id, body),
      {
        params: GroupParams,
        body: t.Object(
          { name: t.Optional(t.String({ maxLength: 200 })), avatar: t.Optional(t.String({ maxLength: 2000 })), attributes: t.Optional(Attrs) },
          { minProperties: 1, description: "at least one of name, avatar, attributes" },
        ),
        response: { 200: GroupOut, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
        detail: { summary: "Rename a group, change its avatar or attributes", tags },
      },
    )
    .delete(
      "/groups/:id",
      async ({ params }) => {
        await groups.dissolve(null, params.id);
        return { ok: true };
      },
      { params: GroupParams, response: { 200: t.Object({ ok: t.Boolean() }), 400: ErrorBody, 401: ErrorBody, 404: ErrorBody }, detail: { summary: "Dissolve a group (members are told)", tags } },
    )
    .get("/groups/:id/members", ({ params }) => groups.members(null, params.id), {
      params: GroupParams,
      response: { 200: t.Array(MemberOut), 401: ErrorBody, 404: ErrorBody },
      detail: { summary: "Members of a group with roles and mutes", tags },
    })
    .post(
      "/groups/:id/members",
      async ({ params, body }) => ({ added: await groups.add(null, params.id, body.users) }),
      {
        params: GroupParams,
        body: t.Object({ users: t.Array(UserId, { minItems: 1, maxItems: 1000 }) }),
        response: { 200: t.Object({ added: t.Array(t.String()) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
        detail: { summary: "Add members (existing users; those already in are skipped)", tags },
      },
    )
    .delete(
      "/groups/:id/members/:user",
      async ({ params }) => ({ removed: await groups.remove(null, params.id, params.user) }),
      {
        params: MemberParams,
        response: { 200: t.Object({ removed: t.Boolean() }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
        detail: { summary: "Remove a member", tags },
      },
    )
    .put(
      "/groups/:id/members/:user",
      async ({ params, body }) => {
        if (body.role) await groups.setRole(null, params.id, params.user, body.role);
        const mutedUntil = body.muteSec !== undefined ? await groups.mute(null, params.id, params.user, body.muteSec) : undefined;
        return { user: params.user, ...(body.role ? { role: body.role } : {}), ...(mutedUntil !== undefined ? { mutedUntil } : {}) };
      },
      {
        params: MemberParams,
        body: t.Object({
          role: t.Optional(t.Union([t.Literal("owner"), t.Literal("admin"), t.Literal("member")], { description: "`owner` hands ownership over" })),
          muteSec: t.Optional(t.Integer({ minimum: 0, maximum: 366 * 86400, description: "mute for this long; 0 lifts the mute" })),
        }),
        response: {
          200: t.Object({ user: t.String(), role: t.Optional(t.String()), mutedUntil: t.Optional(t.Union([t.Number(), t.Null()])) }),
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
        },
        detail: { summary: "Set a member's role or a timed mute", tags },
      },
    );
}
