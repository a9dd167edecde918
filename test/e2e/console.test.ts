// The operator's console (docs/console.md) in headless Chromium (Debian `chromium`, driven by playwright-core)
// against a real two-node cluster in this process (one Postgres database, one Redis prefix). Skipped, with a
// message, only where no Chromium is installed (test/run.sh installs it when it can).
// CONSOLE_SCREENSHOTS=<dir> saves a screenshot of each page there (docs/console/ holds the committed ones).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { API_KEY, startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPgUrl } from "../helpers/services.ts";
import { openSse } from "../helpers/sse.ts";

const { desk } = protocols;
const CHROMIUM = process.env.CHROMIUM_PATH || Bun.which("chromium") || Bun.which("chromium-browser") || undefined;
if (!CHROMIUM) console.warn("console.test.ts: SKIPPED, no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)");
const SHOTS = process.env.CONSOLE_SCREENSHOTS;

let a: TestServer;
let b: TestServer;
let browser: Browser;
let page: Page;
const clients: Client[] = [];
/** every URL the signed-in page asked for, and every console error or uncaught exception in it */
const requests: string[] = [];
const errors: string[] = [];

async function shot(name: string): Promise<void> {
  if (!SHOTS) return;
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}/${name}.png` });
}

/** The server API requests the page made from `from` on in its request log (paths with their queries). */
const apiCalls = (from: number) =>
  requests
    .slice(from)
    .map((u) => new URL(u))
    .filter((u) => u.pathname.startsWith("/api/"))
    .map((u) => u.pathname + u.search);

/** Waits (at most `ms`) until the text of `selector` on the page is `want`. */
async function textIs(selector: string, want: string, ms = 5000): Promise<void> {
  await page.waitForFunction(([sel, w]) => document.querySelector(sel!)?.textContent?.trim() === w, [selector, want], { timeout: ms, polling: 50 });
}

describe.skipIf(!CHROMIUM)("operator's console in headless Chromium", () => {
  beforeAll(async () => {
    const databaseUrl = await freshPgUrl();
    const env = { SEND_RATE: "1000", SEND_BURST: "1000", REDIS_PREFIX: `con${process.pid}${Date.now().toString(36)}:` };
    a = await startTestServer({ databaseUrl, bus: "redis", env });
    b = await startTestServer({ databaseUrl, bus: "redis", env });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.ws.close();
    await browser?.close();
    await a?.stop();
    await b?.stop();
  });

  test("a wrong key is refused, and nothing of the cluster is shown", async () => {
    const other = await browser.newPage();
    await other.goto(`${a.url}/console`);
    await other.fill("#key", "not-the-key");
    await other.click("#login");
    await other.waitForFunction(() => document.querySelector("#login-error")?.textContent === "Wrong API key.", undefined, { timeout: 5000 });
    expect(await other.$("#nodes")).toBeNull();
    expect(await other.$("#nav-cluster")).toBeNull();
    // The page itself holds no data: the API refuses the wrong key.
    expect((await a.api("/api/console/cluster", { key: "not-the-key" })).status).toBe(401);
    await other.close();
  });

  test("signed in, the cluster page shows both nodes, live over one stream", async () => {
    await page.goto(`${a.url}/console`);
    const from = requests.length;
    await page.fill("#key", API_KEY);
    await page.click("#login");
    for (const n of [a, b]) await page.waitForSelector(`[data-node="${n.app.cfg.nodeId}"]`, { timeout: 5000 });
    expect(await page.$$eval(".node", (els) => els.length)).toBe(2);
    await textIs("#live", "live");
    // The uptime shown moves on (the page is pushed new data) while the page asks nothing more.
    const uptime = () => page.$eval(`[data-node="${a.app.cfg.nodeId}"] .kv span:nth-child(2)`, (el) => el.textContent);
    const before = await uptime();
    await page.waitForFunction(([sel, was]) => document.querySelector(sel!)?.textContent !== was, [`[data-node="${a.app.cfg.nodeId}"] .kv span:nth-child(2)`, before], { timeout: 3000, polling: 50 });
    // The sign-in check, then the page's one stream.
    expect(apiCalls(from)).toEqual(["/api/console/cluster", "/api/console/stream?page=cluster"]);
  });

  test("clients joining a room raise its online count on the page within two seconds", async () => {
    const users = ["v1", "v2", "v3"];
    const tokens = await Promise.all(users.map((u) => a.user(u)));
    const from = requests.length;
    await page.click("#nav-rooms");
    const first = await Client.native(a.wsUrl, tokens[0]!, "v1");
    clients.push(first);
    await first.request({ t: "join_room", room: "stage" });
    await textIs('[data-room="stage"] .online', "1", 2000);
    // Two more, one of them on the other node.
    for (const [i, srv] of [[1, b], [2, a]] as const) {
      const c = await Client.native(srv.wsUrl, tokens[i]!, users[i]!);
      clients.push(c);
      await c.request({ t: "join_room", room: "stage" });
    }
    await textIs('[data-room="stage"] .online', "3", 2000);
    // Pushed: one stream request, and no repeated data requests, while the count rose.
    expect(apiCalls(from)).toEqual(["/api/console/stream?page=rooms"]);
    // Danmaku published to the room show as a rate.
    for (let i = 0; i < 20; i++) expect((await b.api("/api/rooms/stage/messages", { body: { from: "v3", class: "droppable", kind: "danmaku", body: { text: `666 #${i}` } } })).status).toBe(200);
    await page.waitForFunction(() => Number(document.querySelector('[data-room="stage"] .danmaku')?.textContent) > 0, undefined, { timeout: 3000, polling: 50 });
    await shot("rooms");
    const roomFrom = requests.length;
    await page.click('[data-room="stage"]');
    await textIs("#room-online", "3", 2000);
    await page.fill("#slow-sec", "5");
    await page.click("#slow-set");
    await textIs("#room-slow", "5 s", 3000);
    expect((await a.api("/api/rooms/stage")).body.slowModeSec).toBe(5);
    // Mute and publish through the page: the server API carries them out.
    await page.fill("#mute-user", "v2");
    await page.click("#mute-set");
    await page.waitForSelector('[data-muted="v2"]', { timeout: 3000 });
    await page.fill("#pub-from", "v1");
    await page.selectOption("#pub-class", "must");
    await page.fill("#pub-text", "a gift for the host");
    await page.click("#pub-send");
    await page.waitForFunction(() => document.querySelector("#room-msgs")?.textContent?.includes("a gift for the host"), undefined, { timeout: 3000 });
    expect((await a.api("/api/rooms/stage/messages")).body.msgs.map((m: any) => m.body)).toEqual([{ text: "a gift for the host" }]);
    // The room's stream, and the three actions; the page read nothing else.
    expect(apiCalls(roomFrom)).toEqual([
      "/api/console/stream?page=room&room=stage",
      "/api/rooms/stage",
      "/api/rooms/stage/mutes/v2",
      "/api/rooms/stage/messages",
    ]);
    await shot("room");
  });

  test("a guest waiting in a desk queue appears, and disappears when assigned", async () => {
    await desk.group(a, "support");
    const token = await desk.agent(a, "agent1", "support");
    const from = requests.length;
    await page.click("#nav-desk");
    await page.waitForSelector('[data-group="support"]', { timeout: 3000 });
    expect(await page.$('[data-guest="guest1"]')).toBeNull();
    const guest = await desk.login(b, "guest1", { group: "support" });
    clients.push(guest);
    await page.waitForSelector('[data-group="support"] [data-guest="guest1"]', { timeout: 3000 });
    await shot("desk");
    const agent = await desk.login(a, "agent1", { agent: token });
    clients.push(agent);
    await page.waitForSelector('[data-guest="guest1"]', { state: "detached", timeout: 3000 });
    await textIs('[data-agent="agent1"] td:nth-child(3)', "1 / 10", 3000);
    expect(apiCalls(from)).toEqual(["/api/console/stream?page=desk"]);
  });

  test("a user lookup shows an unread count that changes after a send", async () => {
    await a.user("ann");
    await a.user("ben");
    expect((await a.api("/api/messages", { body: { from: "ben", to: "ann", body: { text: "one" } } })).status).toBe(200);
    const annA = await Client.native(a.wsUrl, await a.user("ann"), "ann");
    const annB = await Client.native(b.wsUrl, await a.user("ann"), "ann");
    clients.push(annA, annB);
    const from = requests.length;
    await page.click("#nav-users");
    await page.fill("#user-id", "ann");
    await page.click("#lookup");
    const conv = '[data-conv="d:ann:ben"] .unread';
    await textIs(conv, "1", 3000);
    // Online on both nodes, with the protocol of each node's connection.
    const shown = [a.app.cfg.nodeId, b.app.cfg.nodeId].sort().map((n) => `${n} (native 1)`);
    await textIs("#user-online", shown.join("; "), 3000);
    expect((await b.api("/api/messages", { body: { from: "ben", to: "ann", body: { text: "two" } } })).status).toBe(200);
    await textIs(conv, "2", 3000);
    expect(apiCalls(from)).toEqual(["/api/console/stream?page=user&user=ann"]);
    await page.click('[data-conv="d:ann:ben"]');
    await page.waitForFunction(() => document.querySelectorAll("#conv-msgs tr").length === 2, undefined, { timeout: 3000 });
    // The click opened the page's stream again, with the conversation's messages.
    expect(apiCalls(from).slice(1)).toEqual([`/api/console/stream?page=user&user=ann&conv=${encodeURIComponent("d:ann:ben")}`]);
    await shot("users");
    // Disable and enable again through the page.
    await page.click("#toggle-disabled");
    await textIs("#user-state", "disabled", 3000);
    expect((await a.api("/api/users/ann")).body.disabled).toBe(true);
    await page.click("#toggle-disabled");
    await textIs("#user-state", "active", 3000);
  });

  test("the OpenAPI reference page loads its assets from the server", async () => {
    await page.goto(`${a.url}/openapi`);
    await page.waitForFunction(() => document.querySelector(".swagger-ui .info .title")?.textContent?.includes("chatd server API"), undefined, { timeout: 10_000 });
    await page.waitForSelector('[data-path="/api/console/cluster"]', { timeout: 5000 });
    await shot("openapi");
  });

  test("the cluster page charts the last minutes of each node", async () => {
    await page.goto(`${a.url}/console`);
    await page.fill("#key", API_KEY);
    await page.click("#login");
    await page.waitForSelector(`[data-node="${b.app.cfg.nodeId}"] .chart polyline`, { timeout: 5000 });
    // Messages were sent a few seconds ago: the messages-in chart of the answering node has them.
    const points = await page.$eval(`[data-node="${a.app.cfg.nodeId}"] .chart polyline`, (el) => el.getAttribute("points")!.split(" ").length);
    expect(points).toBeGreaterThan(5);
    await shot("cluster");
  });

  test("a stream that drops shows `reconnecting`, and the page reconnects to the server back on its port", async () => {
    const databaseUrl = await freshPgUrl();
    let one = await startTestServer({ databaseUrl });
    const port = String(one.port);
    const other = await browser.newPage();
    const failures: string[] = [];
    other.on("console", (m) => m.type() === "error" && failures.push(m.text()));
    other.on("pageerror", (e) => failures.push(String(e)));
    try {
      await other.goto(`${one.url}/console`);
      await other.fill("#key", API_KEY);
      await other.click("#login");
      await other.waitForSelector(`[data-node="${one.app.cfg.nodeId}"]`, { timeout: 5000 });
      expect(await other.textContent("#live")).toBe("live");
      // The server stops: it ends the stream ("shutting down"); the page says so and tries again, backing off.
      await one.stop();
      await other.waitForFunction(() => document.querySelector("#live")?.textContent === "reconnecting", undefined, { timeout: 3000, polling: 50 });
      expect(await other.textContent(".status .error")).toContain("shutting down");
      one = await startTestServer({ databaseUrl, env: { PORT: port } });
      await other.waitForSelector(`[data-node="${one.app.cfg.nodeId}"]`, { timeout: 15_000 });
      expect(await other.textContent("#live")).toBe("live");
    } finally {
      await other.close();
      await one.stop();
    }
    // Attempts made while nothing listened failed to connect; nothing else went wrong.
    expect(failures.filter((f) => !f.includes("net::ERR_CONNECTION_REFUSED"))).toEqual([]);
  }, 30_000);

  test("the pages asked no host but the server, and logged no error", () => {
    const origin = new URL(a.url).origin;
    expect(requests.length).toBeGreaterThan(10);
    expect(requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith("data:"))).toEqual([]);
    expect(errors).toEqual([]);
  });
});

// The console's server API on one node alone (no Redis), without a browser.
describe("the console's server API on a single node", () => {
  let one: TestServer;
  const mine: Client[] = [];
  beforeAll(async () => {
    one = await startTestServer({ store: "pglite" });
  });
  afterAll(async () => {
    for (const c of mine) c.ws.close();
    await one?.stop();
  });

  test("needs the API key; lists this node alone; a room's count and a user's protocols come from this node", async () => {
    for (const path of ["/api/console/cluster", "/api/console/rooms", "/api/console/desk", "/api/console/users/x/online"]) {
      expect((await one.api(path, { key: null })).status).toBe(401);
    }
    const c = (await one.api("/api/console/cluster")).body;
    expect(c.nodes.map((n: any) => n.node)).toEqual([one.app.cfg.nodeId]);
    expect(c.nodes[0]).toMatchObject({ bus: { kind: "memory", state: "ok" }, connections: {} });
    const v = await Client.native(one.wsUrl, await one.user("solo"), "solo");
    mine.push(v);
    await v.request({ t: "join_room", room: "alone" });
    expect((await one.api("/api/console/rooms")).body.rooms).toEqual([{ room: "alone", conv: "r:alone", online: 1, danmaku: 0, must: 0, dropped: 0 }]);
    expect((await one.api("/api/console/cluster")).body.nodes[0]).toMatchObject({ connections: { native: 1 } });
    expect((await one.api("/api/console/users/solo/online")).body).toEqual({ online: true, nodes: [{ node: one.app.cfg.nodeId, protocols: { native: 1 } }] });
    expect((await one.api("/api/console/rooms/bad%20id")).status).toBe(400);
    const page = await fetch(`${one.url}/console`);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(await page.text()).not.toContain("http");
  });

  test("the live stream needs the key, pushes what the page's server API reads answer, and their changes", async () => {
    const url = `${one.url}/api/console/stream`;
    expect((await openSse(`${url}?page=rooms`)).status).toBe(401);
    expect((await openSse(`${url}?page=rooms`, "apikey wrong")).status).toBe(401);
    for (const q of ["page=nope", "page=room", "page=room&room=bad%20id", "page=user", "page=user&user=a%00b"]) {
      expect(await openSse(`${url}?${q}`, `apikey ${API_KEY}`)).toMatchObject({ status: 400, body: { error: "bad_request" } });
    }
    const rooms = (await openSse(`${url}?page=rooms`, `apikey ${API_KEY}`)).stream!;
    const first = await rooms.next();
    expect(first).toMatchObject({ event: "data", data: { rooms: (await one.api("/api/console/rooms?limit=50")).body } });
    const w = await Client.native(one.wsUrl, await one.user("watcher"), "watcher");
    mine.push(w);
    await w.request({ t: "join_room", room: "alone" });
    const next = await rooms.next(3000);
    expect(next.data.rooms.rooms.find((r: any) => r.room === "alone").online).toBe(2);
    expect(next.at - first.at).toBeGreaterThanOrEqual(990);
    await rooms.close();

    // A user's page: the profile, the nodes, the conversations, the clicked conversation's messages.
    expect((await one.api("/api/messages", { body: { from: "watcher", to: "solo", body: { text: "hi" } } })).status).toBe(200);
    const user = (await openSse(`${url}?page=user&user=solo&conv=d:solo:watcher`, `apikey ${API_KEY}`)).stream!;
    const u = (await user.next()).data;
    expect(u.user).toEqual((await one.api("/api/users/solo")).body);
    expect(u.online).toEqual({ online: true, nodes: [{ node: one.app.cfg.nodeId, protocols: { native: 1 } }] });
    expect(u.convs.map((c: any) => [c.conv, c.unread])).toEqual([["d:solo:watcher", 1]]);
    expect(u.msgs.msgs.map((m: any) => m.body)).toEqual([{ text: "hi" }]);
    await user.close();
    // A read the API refuses is an `error` event; the stream stays open.
    const nobody = (await openSse(`${url}?page=user&user=nobody`, `apikey ${API_KEY}`)).stream!;
    expect(await nobody.next()).toMatchObject({ event: "error", data: { status: 404, part: "user", body: { error: "not_found" } } });
    await nobody.close();
  });

  test("open streams of one key are capped (CONSOLE_STREAMS_PER_KEY): one more is refused 429 `rate_limited`; HEAD opens none", async () => {
    const small = await startTestServer({ env: { CONSOLE_STREAMS_PER_KEY: "1" } });
    try {
      // HEAD answers at once with a stream's headers, and takes no place.
      const head = await fetch(`${small.url}/api/console/stream?page=desk`, { method: "HEAD", headers: { authorization: `apikey ${API_KEY}` }, signal: AbortSignal.timeout(3000) });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-type")).toStartWith("text/event-stream");
      const first = (await openSse(`${small.url}/api/console/stream?page=desk`, `apikey ${API_KEY}`)).stream!;
      expect((await first.next()).data).toEqual({ desk: { groups: [] } });
      // The same key written otherwise is the same credential.
      const res = await fetch(`${small.url}/api/console/stream?page=cluster`, { headers: { authorization: `APIKEY   ${API_KEY}` } });
      expect(res.status).toBe(429);
      expect(res.headers.get("retry-after")).toBe("1");
      const body = await res.json();
      expect(body).toMatchObject({ error: "rate_limited" });
      expect(body.message).toContain("CONSOLE_STREAMS_PER_KEY");
      await first.close();
    } finally {
      await small.stop();
    }
  });

  test("shutting the server down ends its streams with `unavailable`", async () => {
    const cluster = (await openSse(`${one.url}/api/console/stream?page=cluster`, `apikey ${API_KEY}`)).stream!;
    expect((await cluster.next()).data.cluster.nodes.map((n: any) => n.node)).toEqual([one.app.cfg.nodeId]);
    for (const c of mine.splice(0)) c.ws.close();
    const stopped = one.stop();
    expect(await cluster.next()).toMatchObject({ event: "end", data: { error: "unavailable" } });
    await cluster.ended;
    await stopped;
  });
});
