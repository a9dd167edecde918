// Frames in flight per connection are capped for every protocol (MAX_FRAMES_IN_FLIGHT): a pipelining client
// gets its protocol's busy error past the cap and is closed if it keeps flooding, while other users are served.
// Reads take READ_COST tokens from the connection's rate bucket.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

describe("frames in flight (native)", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { READ_COST: "0" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("a connection pipelining 5,000 reads gets 4290 past the cap and another user's send is answered meanwhile", async () => {
    const flooder = await Client.native(srv.wsUrl, await srv.user("flooder"), "flooder");
    const ann = await Client.native(srv.wsUrl, await srv.user("ann"), "ann");
    await srv.user("ben");
    const N = 5000;
    for (let i = 0; i < N; i++) flooder.send({ t: "convs", id: i, limit: 500 });
    // (20 frames with a cap of 2: under the flood limit of 16 × the cap, so every frame is answered)
    // the server is at work on the flood: now another user sends
    await flooder.next((f) => f.t === "convs" || f.t === "error");
    const ack = await ann.ok({ t: "send", to: "ben", body: "hi", cmid: "during-flood" });
    expect(ack.t).toBe("ack");
    // Taken when the ack arrived: at most the cap's worth of the flood was served ahead of it.
    const servedBefore = flooder.pending().filter((f) => f.t === "convs").length + 1;
    expect(servedBefore).toBeLessThanOrEqual(64);
    // Frames past the cap were answered with the documented error, by id; the flood goes on, so it is closed.
    const busy = await flooder.next((f) => f.t === "error");
    expect(busy).toMatchObject({ t: "error", code: 4290, error: "rate_limited" });
    expect(typeof busy.id).toBe("number");
    expect(busy.message).toContain("in flight");
    expect((await flooder.closed).code).toBe(1008);
    // The other user's connection is untouched.
    expect((await ann.ok({ t: "convs" })).t).toBe("convs");
    ann.close();
  });

  test("frames that wait for replies are all served", async () => {
    const c = await Client.native(srv.wsUrl, await srv.user("calm"), "calm");
    for (let i = 0; i < 200; i++) expect((await c.ok({ t: "convs", limit: 5 })).t).toBe("convs");
    c.close();
  });
});

describe("reads cost the rate limiter (READ_COST)", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ env: { SEND_RATE: "1", SEND_BURST: "3", READ_COST: "1" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("reads past the bucket get 4290 with retryAfterMs", async () => {
    const c = await Client.native(srv.wsUrl, await srv.user("reader"), "reader");
    for (let i = 0; i < 3; i++) expect((await c.request({ t: "convs" })).t).toBe("convs");
    const r = await c.request({ t: "history", conv: "d:reader:x" });
    expect(r).toMatchObject({ t: "error", code: 4290, error: "rate_limited" });
    expect(r.retryAfterMs).toBeGreaterThan(0);
    c.close();
  });
});

describe("busy errors of the other protocols", () => {
  let srv: TestServer;
  const open: Client[] = [];
  beforeAll(async () => {
    srv = await startTestServer({ env: { MAX_FRAMES_IN_FLIGHT: "2", READ_COST: "0", SEND_RATE: "1000", SEND_BURST: "1000" } });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
  });
  const connect = async (url: string) => {
    const c = await Client.connect(url);
    open.push(c);
    return c;
  };

  test("J-IM: a frame past the cap gets its command's failure answer", async () => {
    const c = await connect(`${srv.wsUrl}/jim?token=${await srv.user("jann")}`);
    expect((await c.next()).code).toBe(10007);
    for (let i = 0; i < 20; i++) c.send({ cmd: 19, type: 0, userId: "jann" });
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await c.next((f) => f.command === 20));
    expect(answers.filter((a) => a.code === 10016).length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.code === 10015).length).toBeGreaterThan(0);
  });

  test("desk: a request past the cap gets -10004", async () => {
    expect((await srv.api("/api/desk/groups/busy", { method: "PUT", body: { name: "busy" } })).status).toBe(200);
    const c = await connect(`${srv.wsUrl}/desk`);
    c.send({ api_key: 31000, call_type: 1, token: await srv.user("dguest"), group_id: "busy" });
    expect((await c.next((f) => f.api_key === 31000)).code).toBe(200);
    for (let i = 0; i < 20; i++) c.send({ api_key: 32100, page_size: 5 });
    const answers = [];
    for (let i = 0; i < 20; i++) answers.push(await c.next((f) => f.api_key === 32100));
    expect(answers.filter((a) => a.code === 200).length).toBeGreaterThan(0);
    const busy = answers.find((a) => a.code === -10004);
    expect(busy).toMatchObject({ api_key: 32100, code: -10004, status: "Fail" });
  });

  test("rooms: a frame past the cap gets 4290 (replacing the protocol's own queue limit)", async () => {
    const token = await srv.user("rann");
    const c = await connect(`${srv.wsUrl}/rooms?${new URLSearchParams({ token, userId: "rann", roomName: "busyroom", name: "Ann" })}`);
    await c.next(); // its own in notice: it is in the room
    for (let i = 0; i < 20; i++) c.send({ messageType: "text", messageContent: `m${i}` });
    const busy = await c.next((f) => f.messageType === "error");
    expect(busy).toMatchObject({ messageType: "error", code: 4290, error: "rate_limited" });
    expect(busy.messageContent).toContain("too many frames waiting");
  });
});
