// The rooms protocol's idle rule and heartbeats as t-io clients meet them (docs/rooms.md, "Heartbeat and idle
// close"): a connection is idle by the later of the last frame it sent and the last frame it was sent, so a
// listener in a busy room (or container) stays; heartbeat texts and bare texts that are no JSON get no answer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "../helpers/client.ts";
import { protocols, type Server } from "../helpers/protocol/index.ts";
import { isNotice } from "../helpers/protocol/rooms.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const { rooms } = protocols;
// Long enough that a loaded machine's event-loop stalls (hundreds of ms on 2 busy cores) never look like 4 idle
// checks in a row to a connection that gets a frame every ~100 ms.
const IDLE_MS = 2000;
const SEED_HEARTBEAT = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97";
const isMsg = (content: string) => (f: any) => f.messageContent === content && f.messageType !== "notice" && f.messageType !== "error";

let srv: TestServer;
const open: Client[] = [];

beforeAll(async () => {
  srv = await startTestServer({ env: { ROOMS_IDLE_MS: String(IDLE_MS), SEND_RATE: "1000", SEND_BURST: "1000" } });
  for (const u of ["talker", "listener", "loner", "agent", "cust", "beat"]) await rooms.account(srv as Server, u);
}, 30_000);

afterAll(async () => {
  for (const c of open) if (!c.isClosed) c.ws.close();
  await srv.stop();
});

describe("idle", () => {
  test("a listener in a busy room and one in a busy container stay past the idle timeout; a silent one in an empty room is closed", async () => {
    const listener = await rooms.login(srv, "listener", "busy", { keep: open });
    const talker = await rooms.login(srv, "talker", "busy", { keep: open });
    // A container: the agent only listens, the customer talks (its messages reach the agent as direct sends).
    const agent = await rooms.connect(srv, "agent", "agent", { keep: open });
    const cust = await rooms.connect(srv, "cust", "agent", { extra: { containerId: "cust", targetId: "t-1" }, keep: open });
    cust.send({ messageType: "text", eventType: "createContainer", acceptId: "agent", targetId: "t-1" });
    await agent.next((f) => f.eventType === "createContainer");
    agent.send({ messageType: "text", eventType: "addContainer", containerId: "cust" });
    await cust.next(isNotice("in", undefined, 2));
    await agent.next(isNotice("in", undefined, 2));
    // The listeners send nothing from here on.
    const quietSince = Date.now();
    const loner = await rooms.login(srv, "loner", "empty", { keep: open });
    const lonerOpened = Date.now();

    // Steady traffic, a message every 100 ms in each (this paces the traffic; every check below awaits its frame).
    let i = 0;
    while (!loner.isClosed) {
      talker.send({ messageType: "text", messageContent: `room ${i}` });
      cust.send({ messageType: "text", messageContent: `container ${i}` });
      expect(await listener.next(isMsg(`room ${i}`))).toMatchObject({ createUser: "talker" });
      expect(await agent.next(isMsg(`container ${i}`))).toMatchObject({ createUser: "cust" });
      i++;
      await Bun.sleep(100);
    }
    expect(await loner.closed).toEqual({ code: 4002, reason: "idle" });
    expect(Date.now() - lonerOpened).toBeGreaterThanOrEqual(IDLE_MS);
    // The listeners have been silent longer than the loner was when it was closed, and are still here.
    expect(listener.isClosed).toBe(false);
    expect(agent.isClosed).toBe(false);
    expect(Date.now() - quietSince).toBeGreaterThan(IDLE_MS);
    // And they still take messages another idle period later.
    const until = Date.now() + IDLE_MS * 2;
    for (; Date.now() < until; i++) {
      talker.send({ messageType: "text", messageContent: `room ${i}` });
      cust.send({ messageType: "text", messageContent: `container ${i}` });
      expect(await listener.next(isMsg(`room ${i}`))).toMatchObject({ createUser: "talker" });
      expect(await agent.next(isMsg(`container ${i}`))).toMatchObject({ createUser: "cust" });
      await Bun.sleep(100);
    }
    expect(listener.isClosed).toBe(false);
    expect(agent.isClosed).toBe(false);
    // Once the room goes quiet, the listener is idle too.
    expect(await listener.closed).toEqual({ code: 4002, reason: "idle" });
  }, 30_000);
});

describe("heartbeats", () => {
  test("the seed's and the showcase's heartbeat texts, and a bare text that is no JSON, get no answer; broken JSON does", async () => {
    const c = await rooms.login(srv, "beat", "beats", { keep: open });
    const ignored = async () => Number((await (await fetch(`${srv.url}/metrics`)).text()).match(/^rooms_frames_ignored_total (\d+)$/m)?.[1] ?? 0);
    const before = await ignored();
    c.send("心跳内容");
    c.send(SEED_HEARTBEAT);
    c.send(" 心跳内容\n");
    // The answer to this probe is the next frame: nothing came for the heartbeats.
    c.send({ messageType: "text", messageContent: "probe 1" });
    expect(await c.next()).toMatchObject({ messageContent: "probe 1", createUser: "beat" });
    expect(await ignored()).toBe(before);

    // A bare text that is no JSON is dropped unanswered, as the original does (and counted).
    c.send("hello, is this thing on?");
    c.send({ messageType: "text", messageContent: "probe 2" });
    expect(await c.next()).toMatchObject({ messageContent: "probe 2", createUser: "beat" });
    expect(await ignored()).toBe(before + 1);

    // What was meant as JSON but is broken, or JSON that is not an object, is answered with an error.
    c.send('{"messageType":"text",');
    expect(await c.next()).toEqual({ messageType: "error", code: 4000, error: "bad_frame", messageContent: "a frame is a JSON object (or a heartbeat text)" });
    c.send("42");
    expect(await c.next()).toMatchObject({ messageType: "error", code: 4000, error: "bad_frame" });
    expect(c.isClosed).toBe(false);
  });

  test("ROOMS_HEARTBEATS replaces the list: a comma-separated list of texts", async () => {
    const { loadConfig } = await import("../../src/config.ts");
    expect(loadConfig({}).roomsHeartbeats).toEqual([SEED_HEARTBEAT, "心跳内容"]);
    expect(loadConfig({ ROOMS_HEARTBEATS: " ping , pong,,ping" }).roomsHeartbeats).toEqual(["ping", "pong"]);
    expect(() => loadConfig({ ROOMS_HEARTBEATS: '{"t":"hb"}' })).toThrow("ROOMS_HEARTBEATS");
  });
});
