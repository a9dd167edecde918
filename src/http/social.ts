// Server API for the social graph (`/api/users/{id}/…`, apikey): the app backend acts for user `id`.
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { serverAuth } from "./auth.ts";

import { ErrorBody, UserId } from "./schemas.ts";

const Id = UserId();
const Params = t.Object({ id: Id });
const OtherParams = t.Object({ id: Id, other: Id });
const UserRef = t.Object({ user: t.String(), nick: t.String(), avatar: t.String(), since: t.Number() });
const Friend = t.Object({ user: t.String(), nick: t.String(), avatar: t.String(), remark: t.String(), since: t.Number() });
const Request = t.Object({ from: t.String(), to: t.String(), status: t.String(), note: t.String(), nick: t.String(), updatedAt: t.Number() });
const Errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody };
const tags = ["social"];

export function socialHttp(app: Pick<App, "social">, apiKey: string | undefined) {
  const { social } = app;
  return new Elysia({ prefix: "/api/users/:id" })
    .use(serverAuth(apiKey))
    .get("/friends", ({ params }) => social.friends(params.id), {
      params: Params,
      response: { 200: t.Array(Friend), ...Errors },
      detail: { summary: "A user's friends", tags },
    })
    .delete("/friends/:other", async ({ params }) => ({ removed: await social.remove(params.id, params.other) }), {
      params: OtherParams,
      response: { 200: t.Object({ removed: t.Boolean() }), ...Errors },
      detail: { summary: "End a friendship (both ways; the other user is told)", tags },
    })
    .put(
      "/friends/:other",
      async ({ params, body }) => {
        await social.remark(params.id, params.other, body.remark);
        return { remark: body.remark };
      },
      {
        params: OtherParams,
        body: t.Object({ remark: t.String({ maxLength: 100 }) }),
        response: { 200: t.Object({ remark: t.String() }), ...Errors },
        detail: { summary: "Set the remark (private display name) of a friend", tags },
      },
    )
    .get("/friend-requests", ({ params, query }) => social.requests(params.id, query.dir, query.status), {
      params: Params,
      query: t.Object({
        dir: t.Optional(t.Union([t.Literal("in"), t.Literal("out")], { description: "received (default) or sent" })),
        status: t.Optional(t.Union([t.Literal("pending"), t.Literal("accepted"), t.Literal("refused")])),
      }),
      response: { 200: t.Array(Request), ...Errors },
      detail: { summary: "Friend requests a user received or sent", tags },
    })
    .post("/friend-requests", async ({ params, body }) => ({ status: await social.request(params.id, body.to, body.note) }), {
      params: Params,
      body: t.Object({ to: Id, note: t.Optional(t.String({ maxLength: 200 })) }),
      response: {
        200: t.Object({ status: t.Union([t.Literal("pending"), t.Literal("accepted"), t.Literal("friends")]) }),
        ...Errors,
      },
      detail: { summary: "Send a friend request (accepts at once when `to` had asked first)", tags },
    })
    .post(
      "/friend-requests/:from",
      async ({ params, body }) => {
        await social.answer(params.id, params.from, body.accept);
        return { status: body.accept ? "accepted" : "refused" };
      },
      {
        params: t.Object({ id: Id, from: Id }),
        body: t.Object({ accept: t.Boolean() }),
        response: { 200: t.Object({ status: t.String() }), ...Errors },
        detail: { summary: "Accept or refuse a pending request from `from`", tags },
      },
    )
    .get("/blocks", ({ params }) => social.blocked(params.id), {
      params: Params,
      response: { 200: t.Array(UserRef), ...Errors },
      detail: { summary: "Users this user blocked", tags },
    })
    .put(
      "/blocks/:other",
      async ({ params }) => {
        await social.block(params.id, params.other);
        return { blocked: true };
      },
      { params: OtherParams, response: { 200: t.Object({ blocked: t.Boolean() }), ...Errors }, detail: { summary: "Block a user: its 1:1 messages, its messages in a desk or container conversation this user serves, and its friend requests are refused", tags } },
    )
    .delete("/blocks/:other", async ({ params }) => ({ unblocked: await social.unblock(params.id, params.other) }), {
      params: OtherParams,
      response: { 200: t.Object({ unblocked: t.Boolean() }), ...Errors },
      detail: { summary: "Unblock a user", tags },
    })
    .put("/follows/:host", async ({ params }) => ({ followed: await social.follow(params.id, params.host) }), {
      params: t.Object({ id: Id, host: Id }),
      response: { 200: t.Object({ followed: t.Boolean() }), ...Errors },
      detail: { summary: "Follow a host", tags },
    })
    .delete("/follows/:host", async ({ params }) => ({ unfollowed: await social.unfollow(params.id, params.host) }), {
      params: t.Object({ id: Id, host: Id }),
      response: { 200: t.Object({ unfollowed: t.Boolean() }), ...Errors },
      detail: { summary: "Stop following a host", tags },
    })
    .get("/followers", ({ params, query }) => followPage(params.id, "followers", query), followDoc("A user's followers, in id order, with both counts"))
    .get("/following", ({ params, query }) => followPage(params.id, "following", query), followDoc("The hosts a user follows, in id order, with both counts"));

  async function followPage(id: string, side: "followers" | "following", query: { limit?: number; after?: string }) {
    return { users: await social.follows(id, side, query.limit ?? 100, query.after), ...(await social.followCounts(id)) };
  }
}

function followDoc(summary: string) {
  return {
    params: t.Object({ id: UserId() }),
    query: t.Object({
      limit: t.Optional(t.Numeric({ minimum: 1, maximum: 1000, multipleOf: 1 })),
      after: t.Optional(UserId("the last user id of the previous page")),
    }),
    response: { 200: t.Object({ users: t.Array(UserRef), followers: t.Integer(), following: t.Integer() }), ...Errors },
    detail: { summary, tags },
  };
}
