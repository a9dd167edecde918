// Webhooks and the moderation hook (docs/webhooks.md) against a real HTTP receiver started here (Bun.serve on
// port 0): every event kind arrives signed, a failing receiver gets the event on a later try, a wrong signature
// is detected, an overflowing queue drops and counts without slowing sends; moderation allows, rejects,
// rewrites, and a hung receiver is cut at the timeout with the configured outcome.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FrameQueue } from "../helpers/frames.ts";
import { protocols } from "../helpers/protocol/index.ts";
import type { Client } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { signature, verifyWebhook, WebhookHeaders } from "../../src/core/webhook-signing.ts";
import { Webhooks } from "../../src/core/webhooks.ts";
import { fetchSender } from "../../src/adapters/http-sender.ts";
import { openDb } from "../../src/store/db.ts";
import { WebhookOutboxStore } from "../../src/store/webhook-outbox.ts";
import { renderMetrics } from "../../src/core/metrics.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";

const { native, desk } = protocols;
const SECRET = "webhook-secret-0123456789";

/** A receiver: every request is queued with its verified signature; `answer` decides the response. */
function receiver(answer: (path: string, body: any, n: number) => Response | Promise<Response> = () => new Response("ok")) {
  const got = new FrameQueue();
  let n = 0;
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const raw = await req.text();
      const body = JSON.parse(raw);
      const path = new URL(req.url).pathname;
      got.push({ path, body, headers: Object.fromEntries(req.headers), verified: verifyWebhook(SECRET, req.headers, raw) });
      return answer(path, body, ++n);
    },
  });
  return { got, server, url: `http://127.0.0.1:${server.port}` };
}

function metricValue(name: string, labels = ""): number {
  const line = renderMetrics()
    .split("\n")
    .find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(" ").pop()) : 0;
}

describe("webhooks: every kind arrives signed", () => {
  let srv: TestServer;
  const rx = receiver();
  const open: Client[] = [];
  beforeAll(async () => {
    srv = await startTestServer({
      bus: "redis",
      env: {
        WEBHOOK_URL: `${rx.url}/all`,
        WEBHOOK_URL_MESSAGE_RECALLED: `${rx.url}/recalls`,
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_BATCH_MS: "50",
        WEBHOOK_DESK_WAIT_MS: "100",
        REDIS_PREFIX: `wh${Math.random().toString(36).slice(2, 8)}:`,
      },
    });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
    rx.server.stop(true);
  });

  const event = (kind: string, pred: (d: any) => boolean = () => true) => rx.got.next((r) => r.body.kind === kind && pred(r.body.data));

  test("user online/offline, message to an offline user (batched), recall (on its own URL), room first/last viewer, desk guest waiting", async () => {
    const alice = await native.login(srv, "wh-alice", { keep: open });
    const on = await event("user.online", (d) => d.user === "wh-alice");
    expect(on.verified).toBe(true);
    expect(on.path).toBe("/all");
    expect(on.headers[WebhookHeaders.id]).toBe(on.body.id);
    expect(on.headers[WebhookHeaders.kind]).toBe("user.online");
    expect(on.body).toMatchObject({ kind: "user.online", node: srv.app.cfg.nodeId, data: { user: "wh-alice" } });

    await srv.user("wh-bob");
    const a1 = await alice.ok({ t: "send", to: "wh-bob", body: { text: "one" }, cmid: "m1" });
    await alice.ok({ t: "send", to: "wh-bob", body: { text: "two" }, cmid: "m2" });
    const off = await event("message.offline", (d) => d.user === "wh-bob");
    expect(off.verified).toBe(true);
    // Both messages in one event (gathered for WEBHOOK_BATCH_MS).
    expect(off.body.data.messages.map((m: any) => m.body.text)).toEqual(["one", "two"]);
    // The sender is online: no event for it.
    expect(rx.got.pending().some((r) => r.body.kind === "message.offline" && r.body.data.user === "wh-alice")).toBe(false);

    await alice.ok({ t: "recall", msg: a1.msg.id });
    const rc = await event("message.recalled");
    expect(rc.path).toBe("/recalls");
    expect(rc.body.data).toMatchObject({ conv: a1.msg.conv, msg: a1.msg.id, seq: 1, from: "wh-alice" });

    await alice.ok({ t: "join_room", room: "wh-live" });
    expect((await event("room.first_viewer")).body.data).toEqual({ room: "wh-live", conv: "r:wh-live" });
    const carol = await native.login(srv, "wh-carol", { keep: open });
    await carol.ok({ t: "join_room", room: "wh-live" });
    await carol.ok({ t: "leave_room", room: "wh-live" });
    await alice.ok({ t: "leave_room", room: "wh-live" });
    expect((await event("room.last_viewer")).body.data).toEqual({ room: "wh-live", conv: "r:wh-live" });
    // One first and one last, for two viewers.
    expect(rx.got.pending().filter((r) => r.body.kind.startsWith("room.")).length).toBe(0);

    await desk.group(srv, "wh-g");
    await desk.login(srv, "wh-guest", { group: "wh-g", keep: open });
    const w = await event("desk.guest_waiting");
    expect(w.body.data).toMatchObject({ guest: "wh-guest", group: "wh-g", position: 1 });
    expect(w.body.data.waitingMs).toBeGreaterThanOrEqual(100);

    alice.ws.close();
    expect((await event("user.offline", (d) => d.user === "wh-alice")).verified).toBe(true);
  });

  test("a wrong signature, a changed body or an old timestamp is detectable", async () => {
    const body = JSON.stringify({ id: "x", kind: "user.online" });
    const ts = String(Math.floor(Date.now() / 1000));
    const good = { [WebhookHeaders.timestamp]: ts, [WebhookHeaders.signature]: signature(SECRET, ts, body) };
    expect(verifyWebhook(SECRET, good, body)).toBe(true);
    expect(verifyWebhook("another-secret-0123456789", good, body)).toBe(false);
    expect(verifyWebhook(SECRET, good, body.replace("x", "y"))).toBe(false);
    const old = String(Number(ts) - 3600);
    expect(verifyWebhook(SECRET, { [WebhookHeaders.timestamp]: old, [WebhookHeaders.signature]: signature(SECRET, old, body) }, body)).toBe(false);
  });
});

describe("webhooks: a cluster of two nodes sends each event once", () => {
  test("a user on both nodes is online once and offline once; a room viewed on both has one first and one last viewer", async () => {
    const rx = receiver();
    const { freshPgUrl } = await import("../helpers/services.ts");
    const databaseUrl = await freshPgUrl();
    const env = { WEBHOOK_URL: rx.url, WEBHOOK_SECRET: SECRET, WEBHOOK_BATCH_MS: "10", REDIS_PREFIX: `whc${Math.random().toString(36).slice(2, 8)}:` };
    const a = await startTestServer({ bus: "redis", databaseUrl, env: { ...env, NODE_ID: "wha" } });
    const b = await startTestServer({ bus: "redis", databaseUrl, env: { ...env, NODE_ID: "whb" } });
    const open: Client[] = [];
    try {
      const kinds = (user: string) => rx.got.pending().filter((r) => r.body.data.user === user || r.body.data.room === user).map((r) => r.body.kind);
      const onA = await native.login(a, "cl-alice", { keep: open });
      await rx.got.next((r) => r.body.kind === "user.online" && r.body.data.user === "cl-alice");
      const onB = await native.login(b, "cl-alice", { keep: open });
      // A later event of node B: had B reported alice online, that came before this.
      await native.login(b, "cl-sentinel1", { keep: open });
      await rx.got.next((r) => r.body.kind === "user.online" && r.body.data.user === "cl-sentinel1");
      expect(kinds("cl-alice")).toEqual([]);

      await onA.ok({ t: "join_room", room: "cl-live" });
      await rx.got.next((r) => r.body.kind === "room.first_viewer" && r.body.data.room === "cl-live");
      await onB.ok({ t: "join_room", room: "cl-live" });
      await onA.ok({ t: "leave_room", room: "cl-live" });
      await onB.ok({ t: "leave_room", room: "cl-live" });
      const last = await rx.got.next((r) => r.body.kind === "room.last_viewer" && r.body.data.room === "cl-live");
      expect(last.body.node).toBe("whb");
      expect(kinds("cl-live")).toEqual([]);

      onA.ws.close();
      await onA.closed;
      await native.login(a, "cl-sentinel2", { keep: open });
      await rx.got.next((r) => r.body.kind === "user.online" && r.body.data.user === "cl-sentinel2");
      expect(kinds("cl-alice")).toEqual([]);
      onB.ws.close();
      const off = await rx.got.next((r) => r.body.kind === "user.offline" && r.body.data.user === "cl-alice");
      expect(off.body.node).toBe("whb");
    } finally {
      for (const c of open) c.ws.close();
      await Promise.all([a.stop(), b.stop()]);
      rx.server.stop(true);
    }
  }, 30_000);
});

describe("webhooks: retries and the bounded queue", () => {
  test("a receiver that fails twice gets the event on the third try, with the same event id", async () => {
    const rx = receiver((_p, _b, n) => new Response("no", { status: n <= 2 ? 503 : 200 }));
    const db = await openDb({ memory: true });
    const wh = new Webhooks(
      { urls: { "*": rx.url }, secret: SECRET, timeoutMs: 1000, retryForMs: 10_000, queueMax: 10, batchMs: 10, deskWaitMs: 1000, flushMs: 5 },
      { sender: fetchSender, outbox: new WebhookOutboxStore(db.db), node: "t", onlineOf: async () => new Set(), roomCount: async () => 0, guestPosition: async () => undefined, log: () => {} },
    );
    const delivered = metricValue("chat_webhooks_delivered_total");
    wh.presence("u1", "online");
    const tries = [await rx.got.next(), await rx.got.next(), await rx.got.next()];
    expect(tries.map((t) => t.body.id)).toEqual([tries[0].body.id, tries[0].body.id, tries[0].body.id]);
    expect(tries.every((t) => t.verified)).toBe(true);
    await wh.settled();
    expect(metricValue("chat_webhooks_delivered_total")).toBe(delivered + 1);
    // Delivered: its row is gone from the outbox.
    expect(await new WebhookOutboxStore(db.db).count()).toBe(0);
    await wh.stop();
    await db.close();
    rx.server.stop(true);
  });

  test("while the store is unreachable events wait in memory (bounded, overflow counted) and are written and sent once it is back", async () => {
    const rx = receiver();
    const db = await openDb({ memory: true });
    const real = new WebhookOutboxStore(db.db);
    let down = true;
    const outbox = Object.assign(Object.create(real), {
      add: (...args: Parameters<WebhookOutboxStore["add"]>) => (down ? Promise.reject(new Error("store unreachable")) : real.add(...args)),
    }) as WebhookOutboxStore;
    let failed!: () => void;
    const insertFailed = new Promise<void>((r) => (failed = r));
    const wh = new Webhooks(
      { urls: { "*": rx.url }, secret: SECRET, timeoutMs: 1000, retryForMs: 10_000, queueMax: 3, batchMs: 10, deskWaitMs: 1000, flushMs: 5, pollMs: 50 },
      { sender: fetchSender, outbox, node: "t", onlineOf: async () => new Set(), roomCount: async () => 0, guestPosition: async () => undefined, log: (m) => void (m.includes("store unreachable") && failed()) },
    );
    const overflow = metricValue("chat_webhooks_dropped_total", '{reason="overflow"}');
    const accepted = ["u1", "u2", "u3", "u4", "u5"].map((user) => wh.emit("user.online", { user }));
    // Three held in memory (the bound), two dropped and counted; nothing sent while the insert fails.
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(metricValue("chat_webhooks_dropped_total", '{reason="overflow"}')).toBe(overflow + 2);
    await insertFailed;
    expect(rx.got.pending()).toEqual([]);
    down = false;
    const users = new Set<string>();
    for (let i = 0; i < 3; i++) users.add((await rx.got.next()).body.data.user);
    expect([...users].sort()).toEqual(["u1", "u2", "u3"]);
    await wh.settled();
    await wh.stop();
    await db.close();
    rx.server.stop(true);
  });

  test("an overflowing queue drops and counts, and sends do not wait for it", async () => {
    // A receiver that never answers: every event stays held.
    const hung = receiver(() => new Promise<Response>(() => {}));
    const srv = await startTestServer({
      env: { WEBHOOK_URL: hung.url, WEBHOOK_SECRET: SECRET, WEBHOOK_QUEUE_MAX: "5", DRAIN_TIMEOUT_SEC: "1", WEBHOOK_BATCH_MS: "0", SEND_RATE: "1000", SEND_BURST: "1000" },
    });
    try {
      // One offline recipient per message: each message is its own message.offline event (the messages of one
      // recipient that arrive together are batched into one event, however fast the sends commit).
      for (let i = 0; i < 40; i++) await srv.user(`ov-bob${i}`);
      const alice = await native.login(srv, "ov-alice");
      const dropped = metricValue("chat_webhooks_dropped_total", '{reason="overflow"}');
      const t0 = performance.now();
      // 40 events: at most 5 held, the rest (at least 35) dropped.
      for (let i = 0; i < 40; i++) {
        await alice.ok({ t: "send", to: `ov-bob${i}`, body: { i }, cmid: `o${i}` });
      }
      const ms = performance.now() - t0;
      // Sends were answered at their normal pace: 40 round trips well under the receiver's (infinite) time.
      expect(ms).toBeLessThan(5000);
      alice.ws.close();
      // The drain writes the batches gathered (after the offline checks under way): every event is counted by then.
      await srv.stop();
      expect(metricValue("chat_webhooks_dropped_total", '{reason="overflow"}')).toBeGreaterThanOrEqual(dropped + 35);
    } finally {
      await srv.stop();
      hung.server.stop(true);
    }
  }, 30_000);
});

describe("webhooks: a node stopping (SIGTERM) sends what it holds", () => {
  test("offline messages gathered for a minute go out during the drain", async () => {
    const rx = receiver();
    const srv = await startTestServer({ env: { WEBHOOK_URL_MESSAGE_OFFLINE: rx.url, WEBHOOK_SECRET: SECRET, WEBHOOK_BATCH_MS: "60000", DRAIN_TIMEOUT_SEC: "5" } });
    try {
      await srv.user("dr-bob");
      const alice = await native.login(srv, "dr-alice");
      await alice.ok({ t: "send", to: "dr-bob", body: { text: "before the stop" } });
      alice.ws.close();
    } finally {
      await srv.stop();
    }
    // Already there when stop() resolved: no waiting.
    expect(rx.got.pending().map((r) => r.body.data.messages?.[0]?.body)).toEqual([{ text: "before the stop" }]);
    rx.server.stop(true);
  }, 30_000);
});

describe("moderation hook", () => {
  let srv: TestServer;
  let hungSrv: TestServer;
  let openSrv: TestServer;
  const open: Client[] = [];
  const rx = receiver((path, body) => {
    if (path === "/hang") return new Promise<Response>(() => {});
    const text = body.message.body?.text ?? "";
    if (text.includes("spam")) return Response.json({ action: "reject", reason: "spam" });
    if (text.includes("darn")) return Response.json({ action: "replace", body: { text: text.replaceAll("darn", "****") } });
    return Response.json({ action: "allow" });
  });
  beforeAll(async () => {
    srv = await startTestServer({ env: { MODERATION_URL: `${rx.url}/mod`, MODERATION_URL_ROOM: `${rx.url}/room`, WEBHOOK_SECRET: SECRET } });
    hungSrv = await startTestServer({ env: { MODERATION_URL_DIRECT: `${rx.url}/hang`, MODERATION_TIMEOUT_MS: "200", WEBHOOK_SECRET: SECRET } });
    openSrv = await startTestServer({ env: { MODERATION_URL_DIRECT: `${rx.url}/hang`, MODERATION_TIMEOUT_MS: "200", MODERATION_FAIL_OPEN: "1", WEBHOOK_SECRET: SECRET } });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await Promise.all([srv.stop(), hungSrv.stop(), openSrv.stop()]);
    rx.server.stop(true);
  });

  test("allows, rejects with 4030 and the app's reason, and rewrites the body the recipient sees; rooms on their own URL", async () => {
    const bob = await native.login(srv, "md-bob", { keep: open });
    const alice = await native.login(srv, "md-alice", { keep: open });
    await alice.ok({ t: "send", to: "md-bob", body: { text: "hello" } });
    const req = await rx.got.next((r) => r.path === "/mod");
    expect(req.verified).toBe(true);
    expect(req.body).toEqual({ kind: "direct", from: "md-alice", to: "md-bob", message: { kind: "text", body: { text: "hello" } } });
    expect((await bob.next((f) => f.t === "msg")).msg.body).toEqual({ text: "hello" });

    const no = await alice.request({ t: "send", to: "md-bob", body: { text: "buy spam" }, cmid: "s1" });
    expect(no).toMatchObject({ t: "error", code: 4030, error: "forbidden", message: "the message was refused by moderation: spam" });

    const ack = await alice.ok({ t: "send", conv: "d:md-alice:md-bob", body: { text: "oh darn it" } });
    expect((await bob.next((f) => f.t === "msg")).msg.body).toEqual({ text: "oh **** it" });
    const hist = await bob.ok({ t: "history", conv: ack.msg.conv, limit: 10 });
    expect(hist.msgs.map((m: any) => m.body.text)).toEqual(["oh **** it", "hello"]);

    await alice.ok({ t: "join_room", room: "md-live" });
    await alice.ok({ t: "room_send", room: "md-live", body: { text: "hi room" } });
    expect((await rx.got.next((r) => r.path === "/room")).body).toMatchObject({ kind: "room", conv: "r:md-live", from: "md-alice" });
  });

  test("a hung receiver is cut at the timeout: fail-closed refuses with 5030, fail-open lets the message through", async () => {
    const a = await native.login(hungSrv, "hg-alice", { keep: open });
    await hungSrv.user("hg-bob");
    const t0 = performance.now();
    expect(await a.request({ t: "send", to: "hg-bob", body: { text: "x" }, cmid: "h1" })).toMatchObject({ t: "error", code: 5030, error: "unavailable" });
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(2000);
    // Not configured for groups there: no call, no wait.
    const g = await a.ok({ t: "group_create", kind: "user", name: "G", members: ["hg-bob"] });
    await a.ok({ t: "send", conv: g.group.conv, body: { text: "free" } });

    const o = await native.login(openSrv, "op-alice", { keep: open });
    await openSrv.user("op-bob");
    const ack = await o.ok({ t: "send", to: "op-bob", body: { text: "through" } });
    expect(ack.msg.seq).toBe(1);
  });
});

describe("settings", () => {
  test("URLs per kind and for all; a URL without WEBHOOK_SECRET is refused; moderation per kind falls back to MODERATION_URL", () => {
    const c = loadConfig({ WEBHOOK_URL: "http://a/all", WEBHOOK_URL_USER_ONLINE: "http://a/on", WEBHOOK_SECRET: SECRET, MODERATION_URL: "http://m/all", MODERATION_URL_ROOM: "http://m/room" });
    expect(c.webhookUrls).toEqual({ "*": "http://a/all", "user.online": "http://a/on" });
    expect(c.moderationUrls).toEqual({ direct: "http://m/all", group: "http://m/all", room: "http://m/room" });
    expect(c.moderationFailOpen).toBe(false);
    expect(() => loadConfig({ WEBHOOK_URL: "http://a/all" })).toThrow(ConfigError);
    expect(() => loadConfig({ MODERATION_URL_GROUP: "http://m/g", WEBHOOK_SECRET: "short" })).toThrow(/WEBHOOK_SECRET/);
    expect(() => loadConfig({ WEBHOOK_URL: "ftp://a", WEBHOOK_SECRET: SECRET })).toThrow(ConfigError);
    expect(loadConfig({}).webhookUrls).toEqual({});
  });
});

describe("webhooks: the outbox survives a kill (SIGKILL) and a restart", () => {
  for (const store of ["postgres", "pglite"] as const) {
    test(`${store}: events queued for a failing receiver all arrive after the node is killed and started again on the same ${store === "pglite" ? "data dir" : "database"}`, async () => {
      const { startNode, userToken } = await import("../helpers/procs.ts");
      const { Client } = await import("../helpers/client.ts");
      let failing = true;
      const attempts = new FrameQueue();
      const delivered = new FrameQueue();
      const rx = Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        async fetch(req) {
          const raw = await req.text();
          const body = JSON.parse(raw);
          const rec = { id: body.id, kind: body.kind, user: body.data.user, verified: verifyWebhook(SECRET, req.headers, raw) };
          if (failing) {
            attempts.push(rec);
            return new Response("down", { status: 503 });
          }
          delivered.push(rec);
          return new Response("ok");
        },
      });
      const dataDir = store === "pglite" ? (await import("node:fs")).mkdtempSync("/tmp/chatd-wh-") : "";
      const env: Record<string, string> = {
        NODE_ID: `whk${store}`,
        WEBHOOK_URL: `http://127.0.0.1:${rx.port}`,
        WEBHOOK_SECRET: SECRET,
        WEBHOOK_BATCH_MS: "10",
        WEBHOOK_TIMEOUT_MS: "1000",
        ...(store === "pglite"
          ? { DATA_DIR: dataDir }
          : { DATABASE_URL: await (await import("../helpers/services.ts")).freshPgUrl(), REDIS_URL: (await import("../helpers/services.ts")).redisUrl(), REDIS_PREFIX: `whk${Math.random().toString(36).slice(2, 8)}:`, PRESENCE_TTL_SEC: "1" }),
      };
      let node = await startNode(env);
      try {
        const users = ["k-ann", "k-ben", "k-cat"];
        const tokens = new Map<string, string>();
        for (const u of [...users, "k-bob"]) tokens.set(u, await userToken(node, u));
        // Each user comes online and goes offline; ann also writes to bob, who is offline.
        for (const u of users) {
          const c = await Client.native(node.wsUrl, tokens.get(u)!, u);
          if (u === "k-ann") await c.ok({ t: "send", to: "k-bob", body: { text: "while you were away" }, cmid: "k1" });
          c.ws.close();
          await c.closed;
        }
        const want = [...users.flatMap((u) => [`user.online ${u}`, `user.offline ${u}`]), "message.offline k-bob"];
        // Every event reached the receiver at least once (and was refused): each was written to the outbox.
        const ids = new Map<string, string>();
        while (!want.every((w) => ids.has(w))) {
          const a = await attempts.next();
          expect(a.verified).toBe(true);
          ids.set(`${a.kind} ${a.user}`, a.id);
        }
        node.proc.kill("SIGKILL");
        await node.proc.exited;
        failing = false;
        node = await startNode(env);
        // After the restart every one of them arrives (deduped by id: a retry may come twice), signed as before.
        const got = new Set<string>();
        const wantIds = new Set(want.map((w) => ids.get(w)!));
        while (![...wantIds].every((id) => got.has(id))) {
          const d = await delivered.next(() => true, 20_000);
          expect(d.verified).toBe(true);
          got.add(d.id);
        }
        expect([...wantIds].filter((id) => !got.has(id))).toEqual([]);
      } finally {
        node.proc.kill("SIGKILL");
        await node.proc.exited;
        rx.stop(true);
        if (dataDir) (await import("node:fs")).rmSync(dataDir, { recursive: true, force: true });
      }
    }, 60_000);
  }
});

describe("webhooks: the outbox shared by nodes (Postgres)", () => {
  test("two nodes claiming at once take different rows; a claimed row is due again once its lease runs out; inserts stop at the bound", async () => {
    const { freshPgUrl } = await import("../helpers/services.ts");
    const url = await freshPgUrl();
    const [a, b] = [await openDb({ databaseUrl: url }), await openDb({ databaseUrl: url })];
    try {
      const [oa, ob] = [new WebhookOutboxStore(a.db), new WebhookOutboxStore(b.db)];
      const evs = Array.from({ length: 10 }, (_, i) => ({ id: `e${i}`, kind: "user.online" as const, body: `{"i":${i}}` }));
      // The bound: 10 rows at most; 3 more are refused.
      expect(await oa.add(evs, 60_000, 10)).toBe(10);
      expect(await ob.add([{ id: "x1", kind: "user.online", body: "{}" }, { id: "x2", kind: "user.online", body: "{}" }], 60_000, 10)).toBe(0);
      const [ca, cb] = await Promise.all([oa.claim(6, 300), ob.claim(6, 300)]);
      const ids = [...ca, ...cb].map((r) => r.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(10);
      expect([...ca, ...cb].every((r) => r.attempts === 1)).toBe(true);
      // Claimed: nobody else gets them while the lease runs.
      expect(await ob.claim(10, 300)).toEqual([]);
      // Node a delivered its rows, node b "died" with its claims: they come back after the lease.
      expect(await oa.remove(ca.map((r) => r.id))).toBe(ca.length);
      await Bun.sleep(350); // the lease's length (the store's clock), not a synchronisation
      const again = await oa.claim(10, 300);
      expect(again.map((r) => r.id).sort()).toEqual(cb.map((r) => r.id).sort());
      expect(again.every((r) => r.attempts === 2)).toBe(true);
      // A failure reschedules; one whose next attempt is past its expiry is given up.
      expect(await oa.retry([{ id: again[0]!.id, waitMs: 10 }, { id: again[1]!.id, waitMs: 3_600_000 }])).toEqual({ kept: 1, expired: 1 });
      expect(await oa.count()).toBe(again.length - 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
