// The operator's console (docs/console.md): its page at /console, built from src/console/web/ by Bun's bundler
// on the first request and kept in memory (nothing is fetched from elsewhere), and the server API routes only it
// needs (`/api/console`, apikey like every /api route). The page holds no data: it asks for the API key and reads
// everything through the server API with it, each page over one live stream (`/api/console/stream`, server-sent
// events made of the page's server API reads: src/console/stream.ts).
import { resolve } from "node:path";
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import type { ConsoleStats, NodeSnapshot } from "../console/stats.ts";
import type { ConsoleStreams, Part } from "../console/stream.ts";
import { ROOM_ID_RE } from "../core/live.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { serverAuth } from "./auth.ts";
import { ConvId, ErrorBody, errorBody, Int, RoomId, UserId } from "./schemas.ts";

const WEB = resolve(import.meta.dir, "../console/web");

/** Nothing but this server: scripts, styles and calls; no inline script, no frames. */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const pageHeaders = (type: string) => ({
  "content-type": type,
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
});

let built: Promise<{ js: string; css: string; html: string }> | undefined;
/** The page's files, bundled once per process. */
function assets(): Promise<{ js: string; css: string; html: string }> {
  built ??= (async () => {
    const out = await Bun.build({ entrypoints: [`${WEB}/main.ts`], target: "browser", minify: true });
    if (!out.success) throw new Error(`console bundle: ${out.logs.map(String).join("\n")}`);
    return {
      js: await out.outputs[0]!.text(),
      css: await Bun.file(`${WEB}/console.css`).text(),
      html: await Bun.file(`${WEB}/index.html`).text(),
    };
  })();
  built.catch(() => (built = undefined));
  return built;
}

const Rates = t.Object({
  t: t.Number(),
  msgsIn: t.Number(),
  framesIn: t.Number(),
  framesOut: t.Number(),
  roomMsgs: t.Number(),
  busIn: t.Number(),
  busOut: t.Number(),
  batchRows: t.Number({ description: "mean messages per writer batch in that second" }),
  batchMs: t.Number({ description: "mean ms per writer batch in that second" }),
  drops: t.Number(),
});
const RoomStat = t.Object({
  room: t.String(),
  conv: t.String(),
  online: t.Integer({ description: "connections in the room across the cluster" }),
  danmaku: t.Number({ description: "droppable messages per second (10 s mean)" }),
  must: t.Number({ description: "must-deliver messages per second (10 s mean)" }),
  dropped: t.Integer({ description: "droppable items skipped for slow consumers, summed over the nodes" }),
});
const Node = t.Object({
  node: t.String(),
  stale: t.Optional(t.Boolean({ description: "its lease holds but it wrote no snapshot for 5 s: numbers absent" })),
  startedAt: t.Optional(t.Number()),
  uptimeSec: t.Optional(t.Integer()),
  connections: t.Optional(t.Record(t.String(), t.Integer(), { description: "open connections per protocol" })),
  bus: t.Optional(t.Object({ kind: t.String(), state: t.String() })),
  writerQueue: t.Optional(t.Number()),
  drops: t.Optional(t.Object({ send: t.Number(), bus: t.Number(), roomOverflow: t.Number(), roomSkipped: t.Number() })),
  history: t.Optional(t.Array(Rates, { description: "one sample a second, oldest first, the last 10 minutes" })),
});
const Errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody };
const tags = ["console"];
const RoomParams = t.Object({ id: t.String({ pattern: ROOM_ID_RE.source, description: "room id (the conversation is `r:<id>`)" }) });

/** The rooms of the cluster's snapshots: online counts summed over nodes, rates the highest one node saw. */
function mergeRooms(nodes: (NodeSnapshot | { node: string; stale: true })[]) {
  const rooms = new Map<string, { room: string; conv: string; online: number; danmaku: number; must: number; dropped: number }>();
  for (const n of nodes) {
    if ("stale" in n) continue;
    for (const r of n.rooms) {
      let m = rooms.get(r.conv);
      if (!m) rooms.set(r.conv, (m = { room: r.conv.slice(2), conv: r.conv, online: 0, danmaku: 0, must: 0, dropped: 0 }));
      m.online += r.local;
      // Every node holding members sees each message once: the busiest node's view is the room's rate.
      m.danmaku = Math.max(m.danmaku, r.danmaku);
      m.must = Math.max(m.must, r.must);
      m.dropped += r.dropped;
    }
  }
  return rooms;
}

/** What a page of the console shows: the server API reads of its stream (src/console/web/main.ts renders them). */
const PAGES = ["cluster", "rooms", "room", "desk", "user"] as const;
function pageParts(q: { page: (typeof PAGES)[number]; room?: string; user?: string; conv?: string }): readonly Part[] | string {
  const e = encodeURIComponent;
  switch (q.page) {
    case "cluster":
      return [["cluster", "/api/console/cluster"]];
    case "rooms":
      return [["rooms", "/api/console/rooms?limit=50"]];
    case "desk":
      return [["desk", "/api/console/desk"]];
    case "room": {
      if (!q.room) return "room: required with page=room";
      const r = e(q.room);
      return [
        ["info", `/api/rooms/${r}`],
        ["stat", `/api/console/rooms/${r}`],
        ["mutes", `/api/rooms/${r}/mutes`],
        ["msgs", `/api/rooms/${r}/messages?before=${Number.MAX_SAFE_INTEGER}&limit=20`],
      ];
    }
    case "user": {
      if (!q.user) return "user: required with page=user";
      const u = e(q.user);
      const parts: Part[] = [
        ["user", `/api/users/${u}`],
        ["online", `/api/console/users/${u}/online`],
        ["convs", `/api/users/${u}/conversations?empty=true&limit=100`],
      ];
      if (q.conv) parts.push(["msgs", `/api/conversations/${e(q.conv)}/messages?user=${u}&desc=true&limit=20`]);
      return parts;
    }
  }
}

export function consoleHttp(app: Pick<App, "desk" | "presence" | "cfg">, apiKey: string | undefined, stats: ConsoleStats, streams?: ConsoleStreams) {
  const { desk, presence } = app;
  /** group \0 guest → when this node's console first saw the guest waiting (the queue keeps no times). */
  const firstSeen = new Map<string, number>();

  const page = new Elysia()
    .get("/console", async () => new Response((await assets()).html, { headers: pageHeaders("text/html; charset=utf-8") }), {
      detail: { summary: "The operator's console (asks for the API key; reads the server API)", tags },
    })
    .get("/console/app.js", async () => new Response((await assets()).js, { headers: pageHeaders("text/javascript; charset=utf-8") }), {
      detail: { hide: true },
    })
    .get("/console/app.css", async () => new Response((await assets()).css, { headers: pageHeaders("text/css; charset=utf-8") }), {
      detail: { hide: true },
    });

  const api = new Elysia({ prefix: "/api/console" })
    .use(serverAuth(apiKey))
    .get(
      "/cluster",
      async () => ({ now: Date.now(), self: app.cfg.nodeId, nodes: (await stats.cluster()).map((n) => ("stale" in n ? n : { ...n, rooms: undefined })) }),
      {
        response: { 200: t.Object({ now: t.Number(), self: t.String({ description: "the node that answered" }), nodes: t.Array(Node) }), 401: ErrorBody },
        detail: {
          summary: "Every live node (presence leases): uptime, connections per protocol, rates of the last 10 minutes, writer, bus, drops",
          description: "Counters are per process. Other nodes' numbers are at most a second old; with Redis away, this node only.",
          tags,
        },
      },
    )
    .get(
      "/rooms",
      async ({ query }) => {
        const rooms = [...mergeRooms(await stats.cluster()).values()];
        // Online counts read now from presence (the snapshots of other nodes may be a second old).
        await Promise.all(rooms.map(async (r) => (r.online = await presence.roomCount(r.conv))));
        rooms.sort((a, b) => b.online - a.online || b.danmaku + b.must - a.danmaku - a.must || (a.room < b.room ? -1 : 1));
        return { rooms: rooms.slice(0, query.limit ?? 50) };
      },
      {
        query: t.Object({ limit: Int("how many, 1-200 (50)", 1, 200) }),
        response: { 200: t.Object({ rooms: t.Array(RoomStat) }), ...Errors },
        detail: { summary: "The busiest live rooms: by online count, then message rate", tags },
      },
    )
    .get(
      "/rooms/:id",
      async ({ params }) => {
        const conv = `r:${params.id}`;
        const m = mergeRooms(await stats.cluster()).get(conv);
        return { room: params.id, conv, online: await presence.roomCount(conv), danmaku: m?.danmaku ?? 0, must: m?.must ?? 0, dropped: m?.dropped ?? 0 };
      },
      {
        params: RoomParams,
        response: { 200: RoomStat, ...Errors },
        detail: { summary: "One live room's online count, message rates and drops (settings, mutes, messages: /api/rooms/{id})", tags },
      },
    )
    .get(
      "/desk",
      async () => {
        const now = Date.now();
        const seen = new Set<string>();
        const groups = [];
        for (const g of await desk.records.groups()) {
          const queue = (await desk.queued(g.id)).map((guest) => {
            const key = `${g.id}\0${guest}`;
            seen.add(key);
            if (!firstSeen.has(key)) firstSeen.set(key, now);
            return { guest, waitingSec: Math.round((now - firstSeen.get(key)!) / 1000) };
          });
          groups.push({ id: g.id, name: g.name, disabled: g.disabled, agents: await desk.agentList(g.id), queue });
        }
        for (const k of firstSeen.keys()) if (!seen.has(k)) firstSeen.delete(k);
        return { groups };
      },
      {
        response: {
          200: t.Object({
            groups: t.Array(
              t.Object({
                id: t.String(),
                name: t.String(),
                disabled: t.Boolean(),
                agents: t.Array(
                  t.Object({ id: t.String(), nick: t.String(), avatar: t.String(), group: t.String(), online: t.Boolean(), suspended: t.Boolean(), load: t.Integer(), capacity: t.Integer() }),
                ),
                queue: t.Array(t.Object({ guest: t.String(), waitingSec: t.Integer({ description: "since this node first answered with the guest waiting" }) })),
              }),
            ),
          }),
          401: ErrorBody,
        },
        detail: { summary: "Every agent group with its agents (online, load, suspended) and waiting guests, cluster-wide", tags },
      },
    )
    .get(
      "/users/:id/online",
      async ({ params }) => {
        const nodes = await stats.userNodes(params.id);
        return { online: nodes.length > 0, nodes };
      },
      {
        params: t.Object({ id: t.String({ pattern: USER_ID_RE.source }) }),
        response: {
          200: t.Object({
            online: t.Boolean(),
            nodes: t.Array(t.Object({ node: t.String(), protocols: t.Optional(t.Record(t.String(), t.Integer(), { description: "connections per protocol; another node's within a second of the first ask" })) })),
          }),
          ...Errors,
        },
        detail: {
          summary: "The nodes a user is connected to, with its connections per protocol on each",
          description: "Asking marks the user wanted for 10 s: every node reports its connections of the user at its next sample, so another node's protocols appear within a second of the first ask.",
          tags,
        },
      },
    )
    .get(
      "/stream",
      ({ query, headers, request, set }) => {
        const parts = pageParts(query);
        if (typeof parts === "string") {
          set.status = 400;
          return errorBody("bad_request", parts);
        }
        // HEAD: the headers a stream would have, and no stream (its body would never end).
        if (request.method === "HEAD") return new Response(null, { headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store" } });
        // The key itself (checked before this) is the credential: `APIKEY  k` and `apikey k` count as one.
        const key = headers.authorization?.match(/^apikey\s+(.+)$/i)?.[1] ?? "";
        const opened = streams?.open(`apikey ${key}`, parts, request.signal) ?? { status: 503, error: "unavailable" as const, message: "no console streams here" };
        if (opened instanceof Response) return opened;
        set.status = opened.status;
        set.headers["retry-after"] = "1";
        return errorBody(opened.error, opened.message);
      },
      {
        query: t.Object({
          page: t.Union(PAGES.map((p) => t.Literal(p)), { description: "the page: what it reads (see the description)" }),
          room: t.Optional(RoomId("page=room: the room")),
          user: t.Optional(UserId("page=user: the user looked up")),
          conv: t.Optional(ConvId("page=user: the conversation whose recent messages are shown")),
        }),
        response: { 400: ErrorBody, 401: ErrorBody, 429: ErrorBody, 503: ErrorBody },
        detail: {
          summary: "A console page's data, pushed as server-sent events while the stream is open (at most once a second)",
          description:
            "`text/event-stream`. Every event's data is one JSON object of the answers of the server API routes the page reads, " +
            "made with this request's own `Authorization`: cluster `{cluster}` (GET /api/console/cluster); rooms `{rooms}` " +
            "(GET /api/console/rooms?limit=50); room `{info, stat, mutes, msgs}` (GET /api/rooms/{room}, /api/console/rooms/{room}, " +
            "/api/rooms/{room}/mutes, /api/rooms/{room}/messages?before=…&limit=20); desk `{desk}` (GET /api/console/desk); user " +
            "`{user, online, convs, msgs?}` (GET /api/users/{user}, /api/console/users/{user}/online, /api/users/{user}/conversations, " +
            "and with `conv` /api/conversations/{conv}/messages). Events: `data` (sent when it differs from the last one), " +
            "`error` `{status, part, body}` (a read failed; the stream goes on and reads again a second later), `end` (an error body: " +
            "`unauthorized` when the key is no longer accepted, `unavailable` when the server shuts down; the stream closes). " +
            "Streams of one page and key share their reads (one round a second). Open streams are capped per key " +
            "(CONSOLE_STREAMS_PER_KEY) and per node (CONSOLE_STREAMS_MAX): 429 `rate_limited` past either; 503 while the server stops.",
          tags,
        },
      },
    );
  return new Elysia().use(page).use(api);
}
