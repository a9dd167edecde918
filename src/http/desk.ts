// Server API for the customer-service desk (`/api/desk`, apikey): agent groups and agents, and a group's
// live state (online agents, waiting guests).
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { fail } from "../core/errors.ts";
import { USER_ID_RE } from "../core/ids.ts";
import type { DeskAgentRow, DeskGroupRow } from "../core/records.ts";
import { serverAuth } from "./auth.ts";

import { ErrorBody, GroupId } from "./schemas.ts";

const GroupParams = t.Object({ id: GroupId("agent group id: 1-128 characters of [A-Za-z0-9_.@-]") });
const GroupOut = t.Object({ id: t.String(), name: t.String(), disabled: t.Boolean() });
const AgentOut = t.Object({ user: t.String(), group: t.String(), capacity: t.Integer(), disabled: t.Boolean() });
const Status = t.Object({
  id: t.String(),
  nick: t.String(),
  avatar: t.String(),
  group: t.String(),
  online: t.Boolean(),
  suspended: t.Boolean(),
  load: t.Integer(),
  capacity: t.Integer(),
});
const Errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
const tags = ["desk"];
const groupOut = (g: DeskGroupRow) => ({ id: g.id, name: g.name, disabled: g.disabled });
const agentOut = (a: DeskAgentRow) => ({ user: a.userId, group: a.groupId, capacity: a.capacity, disabled: a.disabled });

export function deskHttp(app: Pick<App, "desk" | "store">, apiKey: string | undefined) {
  const { desk, store } = app;
  return new Elysia({ prefix: "/api/desk" })
    .use(serverAuth(apiKey))
    .put("/groups/:id", async ({ params, body }) => groupOut(await desk.records.putGroup({ id: params.id, ...body })), {
      params: GroupParams,
      body: t.Object({ name: t.Optional(t.String({ maxLength: 200 })), disabled: t.Optional(t.Boolean({ description: "a disabled group's agents cannot log in (-31004) and it takes no guests" })) }),
      response: { 200: GroupOut, ...Errors },
      detail: { summary: "Create or update an agent group", tags },
    })
    .get("/groups", async () => (await desk.records.groups()).map(groupOut), {
      response: { 200: t.Array(GroupOut), ...Errors },
      detail: { summary: "Agent groups", tags },
    })
    .get(
      "/groups/:id/state",
      async ({ params }) => {
        if (!(await desk.records.group(params.id))) fail("not_found", `no agent group ${params.id}`);
        return { agents: await desk.agentList(params.id), queue: await desk.queued(params.id) };
      },
      {
        params: GroupParams,
        response: { 200: t.Object({ agents: t.Array(Status), queue: t.Array(t.String({ description: "waiting guests, first first" })) }), ...Errors },
        detail: { summary: "A group's agents (online, suspended, load) and its queue of waiting guests, over the whole cluster", tags },
      },
    )
    .put(
      "/agents/:user",
      async ({ params, body }) => {
        if (!(await store.getUser(params.user))) fail("not_found", `no user ${params.user}`);
        if (body.group !== undefined && !(await desk.records.group(body.group))) fail("not_found", `no agent group ${body.group}`);
        const existing = await desk.records.agent(params.user);
        if (!existing && body.group === undefined) fail("bad_request", "a new agent needs a `group`");
        return agentOut((await desk.records.putAgent({ userId: params.user, groupId: body.group, capacity: body.capacity, disabled: body.disabled }))!);
      },
      {
        params: t.Object({ user: t.String({ pattern: USER_ID_RE.source }) }),
        body: t.Object({
          group: t.Optional(GroupId("the agent group (required for a new agent)")),
          capacity: t.Optional(t.Integer({ minimum: 1, maximum: 1000, description: "most online guests served at once (10)" })),
          disabled: t.Optional(t.Boolean({ description: "a disabled agent cannot log in (-31003)" })),
        }),
        response: { 200: AgentOut, ...Errors },
        detail: { summary: "Make an existing user an agent, or change its group, capacity or disabled state", tags },
      },
    )
    .get("/agents", async ({ query }) => (await desk.records.agents(query.group)).map(agentOut), {
      query: t.Object({ group: t.Optional(GroupId()) }),
      response: { 200: t.Array(AgentOut), ...Errors },
      detail: { summary: "Agents, of one group or all", tags },
    });
}
