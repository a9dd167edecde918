// Server API of the livepush protocol (`/api/livepush/*`, apikey; docs/livepush.md): the app backend publishes
// messages of chat_type 1-11 (calls, gifts, service lines), reports a VIP purchase (23), sets a host's hosting
// and asks her hosting to send one of her lines (27, 41, 42, 44).
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { serverAuth } from "./auth.ts";
import { ErrorBody, UserId } from "./schemas.ts";

const tags = ["livepush"];
const Errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
const Lines = t.Optional(t.Array(t.String({ maxLength: 500 }), { maxItems: 20 }));
const Hosting = t.Object({
  on: t.Optional(t.Boolean()),
  greeting: t.Optional(t.String({ maxLength: 500 })),
  replies: Lines,
  lines: Lines,
  scripts: Lines,
  declines: Lines,
  behaviours: Lines,
});
const HostingOut = t.Object({
  on: t.Boolean(),
  greeting: t.String(),
  replies: t.Array(t.String()),
  lines: t.Array(t.String()),
  scripts: t.Array(t.String()),
  declines: t.Array(t.String()),
  behaviours: t.Array(t.String()),
});
const Small = t.Optional(t.Integer({ minimum: 0, maximum: 1 }));

export function livepushApi(app: Pick<App, "livepush">, apiKey: string | undefined) {
  const { livepush } = app;
  return new Elysia({ prefix: "/api/livepush" })
    .use(serverAuth(apiKey))
    .post(
      "/messages",
      async ({ body }) => {
        const to = Array.isArray(body.receive_uid) ? body.receive_uid : [body.receive_uid];
        const r = await livepush.publish(body.uid, to, body.chat_type, body);
        return { msg_ids: r.acks.map((a) => a.id), pushed: r.pushed };
      },
      {
        body: t.Object({
          chat_type: t.Integer({ minimum: 1, maximum: 11 }),
          uid: UserId("the sender"),
          receive_uid: t.Union([UserId("the recipient"), t.Array(UserId(), { minItems: 1, maxItems: 1000, description: "recipients (a group dial, 8)" })]),
          content: t.Optional(t.String({ maxLength: 4000 })),
          content_type: t.Optional(t.Integer({ minimum: 1, maximum: 7 })),
          audio_time: t.Optional(t.Integer({ minimum: 0, maximum: 86400 })),
          charge_photo: Small,
          is_hello: Small,
          is_recommend: Small,
          redpacket: Small,
          call_data: t.Optional(t.Record(t.String(), t.Unknown())),
          gift_data: t.Optional(t.Record(t.String(), t.Unknown())),
          demand_gift: t.Optional(t.Record(t.String(), t.Unknown())),
        }),
        response: { 200: t.Object({ msg_ids: t.Array(t.String()), pushed: t.Integer() }), ...Errors },
        detail: {
          summary: "Livepush: publish a message of chat_type 1-11 from `uid`",
          description:
            "Stored in the conversation of `uid` and each recipient and acked after commit; a group dial (8) is pushed to the recipients' polls only (not stored). " +
            "A group dial answered (10, with the dial's `call_data.call_id`) tells the other recipients of that dial (40). 7-10 need `call_data`, 11 `gift_data`.",
          tags,
        },
      },
    )
    .post("/users/:id/vip", async ({ params }) => ({ told: await livepush.vipBought(params.id) }), {
      params: t.Object({ id: UserId() }),
      response: { 200: t.Object({ told: t.Integer({ description: "online hosts told (23)" }) }), ...Errors },
      detail: { summary: "Livepush: a user bought VIP (23: random online hosts are told)", tags },
    })
    .get("/hosting/:id", ({ params }) => livepush.hosting(params.id), {
      params: t.Object({ id: UserId() }),
      response: { 200: HostingOut, ...Errors },
      detail: { summary: "Livepush: a host's hosting (托管) settings", tags },
    })
    .put("/hosting/:id", ({ params, body }) => livepush.setHosting(params.id, body), {
      params: t.Object({ id: UserId() }),
      body: Hosting,
      response: { 200: HostingOut, ...Errors },
      detail: { summary: "Livepush: set a host's hosting (the fields given replace the stored ones)", tags },
    })
    .post(
      "/hosting/:id/send",
      async ({ params, body }) => {
        const ack = await livepush.hostingSend(params.id, body.receive_uid, body.chat_type);
        return { msg_id: ack?.id ?? null };
      },
      {
        params: t.Object({ id: UserId() }),
        body: t.Object({ receive_uid: UserId(), chat_type: t.Union([t.Literal(27), t.Literal(41), t.Literal(42), t.Literal(44)]) }),
        response: { 200: t.Object({ msg_id: t.Union([t.String(), t.Null()], { description: "null when the user blocked her" }) }), ...Errors },
        detail: {
          summary: "Livepush: the host's hosting sends one of her lines to a user (27 lines, 41 new-user scripts, 42 decline lines, 44 behaviour messages)",
          description: "409 when her hosting is off, 404 when she has no line of that kind.",
          tags,
        },
      },
    );
}
