// Server API for presence across the cluster (`/api/presence`, apikey): who of a list is online, and a
// random sample of the online users of a role ("10 random online hosts, each once").
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { serverAuth } from "./auth.ts";
import { ErrorBody } from "./schemas.ts";

const tags = ["presence"];

export function presenceHttp(app: Pick<App, "presence">, apiKey: string | undefined) {
  const { presence } = app;
  return new Elysia({ prefix: "/api/presence" })
    .use(serverAuth(apiKey))
    .get(
      "/",
      async ({ query }) => {
        const ids = [...new Set(query.users.split(",").filter((u) => USER_ID_RE.test(u)))].slice(0, 1000);
        const on = await presence.onlineOf(ids);
        return { online: ids.filter((u) => on.has(u)) };
      },
      {
        query: t.Object({ users: t.String({ description: "comma-separated user ids (at most 1000)" }) }),
        response: { 200: t.Object({ online: t.Array(t.String(), { description: "those of them connected to any node" }) }), 401: ErrorBody },
        detail: { summary: "Which of these users are online anywhere in the cluster", tags },
      },
    )
    .get(
      "/roles/:role/sample",
      async ({ params, query }) => ({ users: await presence.sampleRole(params.role, query.n ?? 10) }),
      {
        params: t.Object({ role: t.String({ pattern: "^[\\w.-]{1,64}$" }) }),
        query: t.Object({ n: t.Optional(t.Numeric({ minimum: 1, maximum: 1000, description: "how many (10)" })) }),
        response: { 200: t.Object({ users: t.Array(t.String(), { description: "distinct, in random order; fewer when fewer are online" }) }), 401: ErrorBody },
        detail: { summary: "Up to n distinct random online users of a role, across the cluster", tags },
      },
    );
}
