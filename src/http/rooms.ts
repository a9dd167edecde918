// Server API of the rooms protocol (`/api/rooms-protocol`, apikey; docs/rooms.md): client projects' login
// accounts, auto-replies, a room's and a container's state, and containers shared by several users.
import { createHash } from "node:crypto";
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { checkKey } from "../core/containers.ts";
import { fail } from "../core/errors.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { roomsConvId } from "../core/conv-ids.ts";
import type { AutoReplyRow, ContainerRow } from "../core/records.ts";
import { serverAuth } from "./auth.ts";
import { ErrorBody, Text } from "./schemas.ts";

const Errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
const tags = ["rooms protocol"];
const Key = (description: string) => Text(128, description);

const AccountOut = t.Object({ clientType: t.String(), account: t.String(), user: t.String() });
const ReplyOut = t.Object({ code: t.String(), content: t.String(), name: t.String(), icon: t.String() });
const ContainerOut = t.Object({
  id: t.String(),
  conv: t.String({ description: "`c:rooms:<id>`: history and offline pull through any protocol" }),
  open: t.Boolean(),
  accept: t.Union([t.String(), t.Null()], { description: "the agent the latest createContainer asked for" }),
  target: t.Union([t.String(), t.Null()], { description: "business key" }),
  room: t.Union([t.String(), t.Null()], { description: "roomName it was opened under" }),
  members: t.Array(t.Object({ user: t.String(), nick: t.String(), role: t.String({ description: "member (user side) or agent" }) })),
  online: t.Integer({ description: "connections in it across the cluster" }),
  lastSeq: t.Integer(),
});
const replyOut = (r: AutoReplyRow) => ({ code: r.code, content: r.content, name: r.name, icon: r.icon });

export function roomsHttp(app: Pick<App, "containers" | "memberships" | "presence" | "store">, apiKey: string | undefined) {
  const { containers, memberships, presence, store } = app;
  const records = containers.records;

  async function containerOut(c: ContainerRow) {
    const members = (await memberships.listMembers(c.conv)).map((m) => ({ user: m.user, nick: m.nick, role: m.role }));
    return {
      id: c.id,
      conv: c.conv,
      open: !c.closed,
      accept: c.attrs.accept ?? null,
      target: c.attrs.target ?? null,
      room: c.attrs.room ?? null,
      members,
      online: await presence.roomCount(c.conv),
      lastSeq: c.lastSeq,
    };
  }

  return new Elysia({ prefix: "/api/rooms-protocol" })
    .use(serverAuth(apiKey))
    .put(
      "/accounts/:clientType/:account",
      async ({ params, body }) => {
        if (!(await store.getUser(body.user))) fail("not_found", `no user ${body.user}`);
        const digest = body.passwordMd5?.toLowerCase() ?? (body.password !== undefined ? createHash("md5").update(body.password).digest("hex") : undefined);
        if (!digest) fail("bad_request", "give `password` or `passwordMd5`");
        const a = await records.putAccount({ clientType: params.clientType, account: params.account, userId: body.user, passwordHash: await Bun.password.hash(digest!) });
        return { clientType: a.clientType, account: a.account, user: a.userId };
      },
      {
        params: t.Object({ clientType: Key("client project (`clientType` of the connect URL; `default` when a client sends none)"), account: Key("login name") }),
        body: t.Object({
          user: t.String({ pattern: USER_ID_RE.source, description: "the user this account logs in as" }),
          password: t.Optional(t.String({ minLength: 1, maxLength: 256, description: "the password; clients send its MD5 hex digest" })),
          passwordMd5: t.Optional(t.String({ pattern: "^[0-9a-fA-F]{32}$", description: "or the digest itself" })),
        }),
        response: { 200: AccountOut, ...Errors },
        detail: { summary: "Create or change a login account of a client project", tags },
      },
    )
    .delete(
      "/accounts/:clientType/:account",
      async ({ params }) => {
        if (!(await records.deleteAccount(params.clientType, params.account))) fail("not_found", `no account ${params.account} of ${params.clientType}`);
        return { deleted: true };
      },
      { response: { 200: t.Object({ deleted: t.Boolean() }), ...Errors }, detail: { summary: "Delete a login account", tags } },
    )
    .get("/auto-replies", async () => (await records.autoReplies()).map(replyOut), {
      response: { 200: t.Array(ReplyOut), ...Errors },
      detail: { summary: "Auto-replies, by code", tags },
    })
    .put("/auto-replies/:code", async ({ params, body }) => replyOut(await records.putAutoReply({ code: params.code, ...body })), {
      params: t.Object({ code: Key("what a client sends as messageContent of autoReturn") }),
      body: t.Object({
        content: t.String({ minLength: 1, maxLength: 10_000, description: "the reply's text" }),
        name: t.Optional(t.String({ maxLength: 64, description: "its nickName (default: the serving agent's nick)" })),
        icon: t.Optional(t.String({ maxLength: 1024, description: "its userIcon (default: the serving agent's avatar)" })),
      }),
      response: { 200: ReplyOut, ...Errors },
      detail: { summary: "Create or change an auto-reply", tags },
    })
    .delete(
      "/auto-replies/:code",
      async ({ params }) => {
        if (!(await records.deleteAutoReply(params.code))) fail("not_found", `no auto-reply ${params.code}`);
        return { deleted: true };
      },
      { response: { 200: t.Object({ deleted: t.Boolean() }), ...Errors }, detail: { summary: "Delete an auto-reply", tags } },
    )
    .get(
      "/rooms/:room",
      async ({ params }) => {
        const conv = roomsConvId(checkKey(params.room, "room"));
        const c = await store.getConversation(conv);
        if (!c || c.subtype !== "rooms") fail("not_found", `no room ${params.room}`);
        return { room: params.room, conv, online: await presence.roomCount(conv), members: await memberships.memberCount(conv), lastSeq: Number(c!.lastSeq) };
      },
      {
        params: t.Object({ room: Key("roomName") }),
        response: {
          200: t.Object({
            room: t.String(),
            conv: t.String({ description: "`g:rooms:<room>`" }),
            online: t.Integer({ description: "connections in the room across the cluster" }),
            members: t.Integer({ description: "users who entered it and did not move away" }),
            lastSeq: t.Integer(),
          }),
          ...Errors,
        },
        detail: { summary: "A room's online count, members and last seq", tags },
      },
    )
    .get(
      "/containers/:id",
      async ({ params }) => {
        const c = await records.container(checkKey(params.id, "container id"));
        if (!c) fail("not_found", `no container ${params.id}`);
        return containerOut(c!);
      },
      { params: t.Object({ id: Key("containerId") }), response: { 200: ContainerOut, ...Errors }, detail: { summary: "A container: state, members, online count", tags } },
    )
    .put("/containers/:id", async ({ params, body }) => containerOut(await containers.share(params.id, body.users, { accept: body.accept, target: body.target, room: body.room })), {
      params: t.Object({ id: Key("containerId") }),
      body: t.Object({
        users: t.Array(t.String({ pattern: USER_ID_RE.source }), { minItems: 1, maxItems: 1000, description: "user-side members: any of them may open it with createContainer" }),
        accept: t.Optional(t.String({ pattern: USER_ID_RE.source, description: "the agent to serve it" })),
        target: t.Optional(Key("business key")),
        room: t.Optional(Key("roomName its notices show")),
      }),
      response: { 200: ContainerOut, ...Errors },
      detail: { summary: "Create a container shared by several users, or add users to one", tags },
    });
}
