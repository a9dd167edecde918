// The rooms protocol (seed 004, docs/rooms.md) end to end: real servers, real Postgres (and PGlite) and Redis,
// WebSocket clients speaking the protocol with their parameters in the query string.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { protocols } from "../helpers/protocol/index.ts";
import { isNotice, md5 } from "../helpers/protocol/rooms.ts";
import { RawWs } from "../helpers/raw-ws.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const HEARTBEAT = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97";
const { rooms } = protocols;
const isMsg = (content: string) => (f: any) => f.messageContent === content && f.messageType !== "notice" && f.messageType !== "error";
const isEvent = (eventType: string) => (f: any) => f.eventType === eventType && f.messageType !== "error";
const isError = (code?: number) => (f: any) => f.messageType === "error" && (code === undefined || f.code === code);

for (const store of ["pg", "pglite"] as const) describe(`on ${store}`, () => {
  let srv: TestServer;
  const open: Client[] = [];

  beforeAll(async () => {
    srv = await startTestServer({ store, bus: "redis", env: { ROOMS_PORT: "0", SEND_RATE: "1000", SEND_BURST: "1000" } });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await srv.stop();
  });

  describe("rooms (NtoN)", () => {
    test("in and out notices carry the seed's JSON and text, and the room's real count", async () => {
      for (const u of ["ann", "bob", "cat"]) await rooms.account(srv, `${store}-${u}`);
      const [ann, bob, cat] = ["ann", "bob", "cat"].map((u) => `${store}-${u}`);
      const room = `${store}-lobby`;
      const a = await rooms.login(srv, ann!, room, { keep: open });
      const notice = a.login;
      expect(notice).toEqual({
        messageType: "notice",
        nickName: ann!.toUpperCase(),
        count: 1,
        userId: ann,
        action: "in",
        messageContent: `${ann!.toUpperCase()} 进来了，现在共有【1】人在线`,
        roomName: room,
      });
      const b = await rooms.login(srv, bob!, room, { keep: open });
      expect(await a.next(isNotice("in", room))).toMatchObject({ userId: bob, count: 2, messageContent: `${bob!.toUpperCase()} 进来了，现在共有【2】人在线` });
      // The any-path port of original clients: ws://host:ROOMS_PORT?...
      const c3 = await rooms.login(srv, cat!, room, { base: `ws://127.0.0.1:${srv.roomsPort}`, keep: open });
      for (const x of [a, b]) expect(await x.next(isNotice("in", room))).toMatchObject({ userId: cat, count: 3 });
      expect((await srv.api(`/api/rooms-protocol/rooms/${room}`)).body).toMatchObject({ room, conv: `g:rooms:${room}`, online: 3, members: 3 });

      await b.close();
      for (const x of [a, c3]) {
        expect(await x.next(isNotice("out", room))).toEqual({
          messageType: "notice",
          nickName: bob!.toUpperCase(),
          count: 2,
          userId: bob,
          action: "out",
          messageContent: `${bob!.toUpperCase()}, 离开了，现在共有【2】人在线`,
          roomName: room,
        });
      }
      // Another path on ROOMS_PORT serves the same protocol.
      const again = await rooms.connect(srv, bob!, room, { base: `ws://127.0.0.1:${srv.roomsPort}/any/path`, keep: open });
      expect(await again.next(isNotice("in", room))).toMatchObject({ userId: bob, count: 3 });
      expect((await srv.api(`/api/rooms-protocol/rooms/${room}`)).body.online).toBe(3);
    });

    test("every message type reaches everyone in the room with nickName, createUser, createTime, userIcon", async () => {
      for (const u of ["dan", "eve", "fay"]) await rooms.account(srv, `${store}-${u}`);
      const [dan, eve, fay] = ["dan", "eve", "fay"].map((u) => `${store}-${u}`);
      const room = `${store}-types`;
      const d = await rooms.login(srv, dan!, room, { keep: open });
      const e = await rooms.login(srv, eve!, room, { keep: open });
      const other = await rooms.login(srv, fay!, `${store}-elsewhere`, { keep: open });
      const sends = [
        { messageType: "text", messageContent: "你好 hello" },
        { messageType: "picture", messageContent: "", accessoryContent: { file: "http://f/p.jpg", previewUrl: "http://f/p_s.jpg" } },
        { messageType: "video", messageContent: "clip", accessoryContent: { file: "http://f/v.mp4", previewUrl: "http://f/v.jpg", duration: 12 } },
        { messageType: "voice", messageContent: "say", accessoryContent: { file: "http://f/a.amr", duration: 3 } },
        { messageType: "event", messageContent: "ev", accessoryContent: { eventType: "gift", eventDescription: "a rose", customContent: "{\"n\":1}" } },
      ];
      for (const [i, frame] of sends.entries()) {
        d.send({ ...frame, eventType: "ordinary", userIcon: "http://icon/dan-now" });
        const pred = (f: any) => f.messageType === frame.messageType && f.createUser === dan;
        const got = await e.next(pred);
        expect(got).toEqual({
          messageContent: frame.messageContent,
          messageType: frame.messageType,
          eventType: "ordinary",
          nickName: dan!.toUpperCase(),
          createUser: dan,
          createTime: expect.any(Number),
          roomName: room,
          userIcon: "http://icon/dan-now",
          ...(frame.accessoryContent ? { accessoryContent: frame.accessoryContent } : {}),
          messageId: expect.any(String),
          seq: i + 1,
        });
        // The sender gets its own message back once it is stored: the protocol's only acknowledgement.
        expect(await d.next(pred)).toEqual(got);
      }
      // Another room hears nothing of it.
      other.send({ messageType: "text", messageContent: "ping other" });
      expect(await other.next(isMsg("ping other"))).toMatchObject({ createUser: fay, roomName: `${store}-elsewhere` });
      expect(other.pending().filter((f) => f.createUser === dan)).toEqual([]);
    });

    test("the heartbeat is not answered; bad frames get an error and the connection stays", async () => {
      await rooms.account(srv, `${store}-gus`);
      const gus = `${store}-gus`;
      const c = await rooms.login(srv, gus, `${store}-bad`, { keep: open });
      c.send(HEARTBEAT);
      // A bare text that is no JSON is dropped unanswered (the next answer is the one to the frame after it).
      c.send("not json");
      c.send("{not json");
      expect(await c.next()).toEqual({ messageType: "error", code: 4000, error: "bad_frame", messageContent: "a frame is a JSON object (or a heartbeat text)" });
      c.send("[1,2]");
      expect(await c.next()).toMatchObject({ messageType: "error", code: 4000, error: "bad_frame" });
      c.send({ messageType: "gif", messageContent: "x" });
      expect(await c.next()).toMatchObject({ messageType: "error", code: 4001, error: "unknown_type", messageContent: expect.stringContaining('"gif"') });
      c.send({ eventType: "teleport", messageType: "text", messageContent: "x" });
      expect(await c.next()).toMatchObject({ messageType: "error", code: 4001, eventType: "teleport", messageContent: expect.stringContaining('"teleport"') });
      const missing: [Record<string, unknown>, string][] = [
        [{ messageContent: "no type" }, "messageType is required: one of text, picture, video, voice, event"],
        [{ messageType: "text" }, "a text message needs messageContent"],
        [{ messageType: "picture" }, "a picture message needs accessoryContent, an object"],
        [{ messageType: "video", accessoryContent: { previewUrl: "x" } }, "a video message needs accessoryContent.file"],
        [{ messageType: "voice", accessoryContent: { file: "f", duration: "long" } }, "accessoryContent.duration of a voice message must be a number of seconds"],
        [{ messageType: "text", messageContent: { nested: true } }, "messageContent must be a string"],
        [{ eventType: "updateRoomName" }, "updateRoomName needs the new roomName in messageContent"],
        [{ eventType: "updateRoomName", messageContent: "no spaces allowed" }, "roomName must be 1-128 letters, digits or _ . @ : -"],
        [{ eventType: "updateUserInfo" }, "updateUserInfo needs the new name in messageContent or the new icon in userIconUpdate"],
        [{ eventType: "createContainer", targetId: "t" }, "createContainer needs acceptId: the agent to serve you"],
        [{ eventType: "addContainer" }, "addContainer needs containerId"],
        [{ eventType: "removeContainer" }, "removeContainer needs containerId"],
        [{ eventType: "autoReturn", containerId: "x" }, "autoReturn needs the reply's code in messageContent"],
        [{ eventType: "addContainer", containerId: "nobody-has-this" }, "no container nobody-has-this"],
      ];
      for (const [frame, message] of missing) {
        c.send(frame);
        expect(await c.next()).toMatchObject({ messageType: "error", messageContent: message });
      }
      // Still connected, still in the room, nothing answered the heartbeat.
      c.send({ messageType: "text", messageContent: "still here" });
      expect(await c.next()).toMatchObject({ messageContent: "still here", createUser: gus });
      expect(c.isClosed).toBe(false);
    });

    test("updateRoomName moves the connection with out and in notices; updateUserInfo tells the room", async () => {
      for (const u of ["hal", "ivy", "jon"]) await rooms.account(srv, `${store}-${u}`);
      const [hal, ivy, jon] = ["hal", "ivy", "jon"].map((u) => `${store}-${u}`);
      const [r1, r2] = [`${store}-r1`, `${store}-r2`];
      const h = await rooms.login(srv, hal!, r1, { keep: open });
      const i = await rooms.login(srv, ivy!, r1, { keep: open });
      await h.next(isNotice("in", r1, 2));
      const j = await rooms.login(srv, jon!, r2, { keep: open });

      h.send({ messageType: "text", eventType: "updateRoomName", messageContent: r2 });
      expect(await i.next(isNotice("out", r1))).toMatchObject({ userId: hal, count: 1, roomName: r1 });
      for (const x of [h, j]) expect(await x.next(isNotice("in", r2))).toMatchObject({ userId: hal, count: 2, roomName: r2 });
      // Moved away: no longer a member of r1 (its messages are not the user's offline messages any more).
      expect((await srv.api(`/api/rooms-protocol/rooms/${r1}`)).body).toMatchObject({ online: 1, members: 1 });

      h.send({ messageType: "text", messageContent: "in r2 now" });
      expect(await j.next(isMsg("in r2 now"))).toMatchObject({ createUser: hal, roomName: r2 });
      i.send({ messageType: "text", messageContent: "r1 only" });
      expect(await i.next(isMsg("r1 only"))).toMatchObject({ roomName: r1 });

      h.send({ eventType: "updateUserInfo", messageContent: "Hally", userIconUpdate: "http://icon/new" });
      for (const x of [h, j]) {
        expect(await x.next(isEvent("updateUserInfo"))).toEqual({
          messageContent: "Hally",
          messageType: "text",
          eventType: "updateUserInfo",
          nickName: "Hally",
          createUser: hal,
          createTime: expect.any(Number),
          roomName: r2,
          userIcon: "http://icon/new",
          userIconUpdate: "http://icon/new",
        });
      }
      h.send({ messageType: "text", messageContent: "new name" });
      expect(await j.next(isMsg("new name"))).toMatchObject({ nickName: "Hally", userIcon: "http://icon/new" });
      // h, which was in r1, never hears r1's messages again.
      expect(h.pending().filter((f) => f.messageContent === "r1 only")).toEqual([]);
      await h.close();
      expect(await j.next(isNotice("out", r2))).toMatchObject({ nickName: "Hally", count: 1 });
    });
  });

  describe("login", () => {
    test("a failed login gets a clear notice and is closed; a token logs in too", async () => {
      await rooms.account(srv, `${store}-kim`);
      await rooms.account(srv, `${store}-kip`, "KIP", "shop-app");
      const kim = `${store}-kim`;
      const refused = async (q: Record<string, string>, code: number, message: string, close: number) => {
        const c = await Client.connect(rooms.url(srv, q));
        expect(await c.next()).toEqual({ messageType: "error", code, error: code === 4010 ? "unauthorized" : "bad_request", messageContent: message });
        expect((await c.closed).code).toBe(close);
      };
      await refused(rooms.query(kim, "r", { password: md5("wrong") }), 4010, "登录失败 login failed: wrong account or password", 4001);
      await refused(rooms.query(kim, "r", { password: `pw-${kim}` }), 4010, "登录失败 login failed: wrong account or password", 4001);
      await refused(rooms.query(kim, "r", { clientType: "shop-app" }), 4010, "登录失败 login failed: wrong account or password", 4001);
      await refused(rooms.query(kim, "r", { userId: "someone-else" }), 4010, "登录失败 login failed: userId is not the user of this login", 4001);
      await refused({ name: "x", userId: kim, roomName: "r" }, 4010, "登录失败 login failed: log in with account and password (or token)", 4001);
      await refused(rooms.query(kim, "r", { account: "", password: "", token: "garbage" }), 4010, "登录失败 login failed: invalid or expired token", 4001);
      await refused(rooms.query(kim, "r", { senderType: "SINGLE" }), 4002, "senderType SINGLE is not supported: use GROUP", 1008);
      await refused(rooms.query(kim, ""), 4002, "roomName must be 1-128 letters, digits or _ . @ : -", 1008);

      // Accounts are per client project; a server token works instead of an account.
      const kip = `${store}-kip`;
      const byAccount = await rooms.connect(srv, kip, `${store}-login`, { extra: { clientType: "shop-app" }, keep: open });
      expect(await byAccount.next(isNotice("in"))).toMatchObject({ userId: kip, nickName: kip.toUpperCase() });
      // A changed password takes effect at once, though a verified one is remembered for a while.
      await srv.api(`/api/rooms-protocol/accounts/shop-app/${kip}`, { method: "PUT", body: { user: kip, passwordMd5: md5("new-pw").toUpperCase() } });
      await refused(rooms.query(kip, "r", { clientType: "shop-app" }), 4010, "登录失败 login failed: wrong account or password", 4001);
      const renewed = await rooms.connect(srv, kip, `${store}-login`, { extra: { clientType: "shop-app", password: md5("new-pw") }, keep: open });
      expect(await renewed.next((f) => isNotice("in")(f) && f.count === 2)).toMatchObject({ userId: kip });
      renewed.ws.close();
      const token = (await srv.api(`/api/users/${kim}/token`, { body: {} })).body.token;
      const byToken = await Client.connect(rooms.url(srv, { name: "Kimmy", senderType: "GROUP", userId: kim, roomName: `${store}-login`, icon: "", token }));
      open.push(byToken);
      expect(await byToken.next(isNotice("in"))).toMatchObject({ userId: kim, nickName: "Kimmy" });
    });
  });

  describe("containers (1toN)", () => {
    test("createContainer → addContainer → messages → removeContainer between a user and an agent", async () => {
      await rooms.account(srv, `${store}-agent`, "Agent Smith");
      await rooms.account(srv, `${store}-cust`, "Customer");
      const [agent, cust] = [`${store}-agent`, `${store}-cust`];
      // The single side connects with roomName = its own id; the user side names that room, its container and target.
      const g = await rooms.connect(srv, agent, agent, { keep: open });
      const u = await rooms.connect(srv, cust, agent, { extra: { containerId: cust, targetId: "order-42" }, keep: open });

      u.send({ messageType: "text", eventType: "createContainer", acceptId: agent, targetId: "order-42" });
      const created = await g.next(isEvent("createContainer"));
      expect(created).toEqual({
        messageContent: "",
        messageType: "text",
        eventType: "createContainer",
        acceptId: agent,
        nickName: cust.toUpperCase(),
        createUser: cust,
        createTime: expect.any(Number),
        containerId: cust,
        targetId: "order-42",
        userIcon: `http://icon/${cust}`,
        messageId: expect.any(String),
        seq: 1,
      });
      expect(await u.next(isNotice("in"))).toMatchObject({ userId: cust, count: 1, containerId: cust, roomName: agent });
      // The user writes before the agent is in: it waits in the container.
      u.send({ messageType: "text", messageContent: "anyone?" });
      expect(await u.next(isMsg("anyone?"))).toMatchObject({ createUser: cust, containerId: cust });

      g.send({ messageType: "text", eventType: "addContainer", containerId: cust });
      expect(await u.next(isEvent("addContainer"))).toMatchObject({ createUser: agent, containerId: cust, nickName: agent.toUpperCase() });
      for (const x of [u, g]) expect(await x.next(isNotice("in"))).toMatchObject({ userId: agent, count: 2, containerId: cust });
      // What the user wrote before reaches the agent as it comes in.
      expect(await g.next(isMsg("anyone?"))).toMatchObject({ createUser: cust, containerId: cust, seq: 2 });

      g.send({ messageType: "text", messageContent: "how can I help?", containerId: cust });
      expect(await u.next(isMsg("how can I help?"))).toMatchObject({ createUser: agent, containerId: cust, nickName: agent.toUpperCase() });
      u.send({ messageType: "picture", accessoryContent: { file: "http://f/broken.jpg", previewUrl: "http://f/b.jpg" } });
      expect(await g.next((f) => f.messageType === "picture")).toMatchObject({ createUser: cust, containerId: cust, accessoryContent: { file: "http://f/broken.jpg" } });
      // An agent names the container of every message.
      g.send({ messageType: "text", messageContent: "which one?" });
      expect(await g.next(isError(4002))).toMatchObject({ messageContent: "containerId is required: name the container this message is for" });

      const state = (await srv.api(`/api/rooms-protocol/containers/${cust}`)).body;
      expect(state).toMatchObject({ id: cust, conv: `c:rooms:${cust}`, open: true, accept: agent, target: "order-42", room: agent, online: 2 });
      expect(state.members.map((m: any) => [m.user, m.role]).sort()).toEqual([[agent, "agent"], [cust, "member"]].sort());

      u.send({ messageType: "text", eventType: "removeContainer", containerId: cust });
      for (const x of [u, g]) {
        expect(await x.next(isEvent("removeContainer"))).toMatchObject({ createUser: cust, containerId: cust });
        expect(await x.next(isNotice("outAll"))).toEqual({
          messageType: "notice",
          nickName: cust.toUpperCase(),
          count: 0,
          userId: cust,
          action: "outAll",
          messageContent: `${cust.toUpperCase()} 关闭了容器，所有人已退出，现在共有【0】人在线`,
          roomName: agent,
          containerId: cust,
        });
      }
      g.send({ messageType: "text", messageContent: "hello?", containerId: cust });
      expect(await g.next(isError(4030))).toMatchObject({ messageContent: `container ${cust} is closed` });
      expect((await srv.api(`/api/rooms-protocol/containers/${cust}`)).body).toMatchObject({ open: false, online: 0, members: [{ user: cust, role: "member" }] });

      // Everything is in the container's conversation: the user reads it through the native protocol.
      const token = (await srv.api(`/api/users/${cust}/token`, { body: {} })).body.token;
      const n = await Client.native(srv.wsUrl, token, cust);
      open.push(n);
      const h = await n.ok({ t: "history", conv: `c:rooms:${cust}`, after: 0 });
      expect(h.msgs.map((m: any) => [m.kind, m.from])).toEqual([
        ["createContainer", cust],
        ["text", cust],
        ["addContainer", agent],
        ["text", agent],
        ["picture", cust],
        ["removeContainer", cust],
      ]);
    });

    test("only the asked agent may add itself; a user opens only its own container; reopening keeps history", async () => {
      for (const u of ["ag1", "ag2", "cu1", "cu2"]) await rooms.account(srv, `${store}-${u}`);
      const [ag1, ag2, cu1, cu2] = ["ag1", "ag2", "cu1", "cu2"].map((u) => `${store}-${u}`);
      const a1 = await rooms.connect(srv, ag1!, ag1!, { keep: open });
      const a2 = await rooms.connect(srv, ag2!, ag2!, { keep: open });
      const u1 = await rooms.connect(srv, cu1!, ag1!, { extra: { targetId: "t1" }, keep: open });
      const u2 = await rooms.connect(srv, cu2!, ag1!, { extra: { targetId: "t2" }, keep: open });
      u1.send({ eventType: "createContainer", acceptId: ag1 });
      expect(await a1.next(isEvent("createContainer"))).toMatchObject({ containerId: cu1, targetId: "t1" });
      a2.send({ eventType: "addContainer", containerId: cu1 });
      expect(await a2.next(isError(4030))).toMatchObject({ messageContent: `container ${cu1} asked another agent to serve it` });
      a2.send({ messageType: "text", messageContent: "let me in", containerId: cu1 });
      expect(await a2.next(isError(4033))).toMatchObject({ messageContent: `you are not in container ${cu1}` });
      u2.send({ eventType: "createContainer", acceptId: ag1, containerId: cu1 });
      expect(await u2.next(isError(4030))).toMatchObject({ messageContent: expect.stringContaining(`container ${cu1} is not yours`) });
      u1.send({ eventType: "createContainer", acceptId: cu1 });
      expect(await u1.next(isError(4002))).toMatchObject({ messageContent: "acceptId is the agent to serve you, not yourself" });

      // Closed and reopened (to another agent): the history stays, the new agent reads from the new request on.
      a1.send({ eventType: "addContainer", containerId: cu1 });
      expect(await u1.next(isEvent("addContainer"))).toMatchObject({ createUser: ag1 });
      u1.send({ messageType: "text", messageContent: "first visit" });
      await a1.next(isMsg("first visit"));
      a1.send({ eventType: "removeContainer", containerId: cu1 });
      await u1.next(isNotice("outAll"));
      u1.send({ eventType: "createContainer", acceptId: ag2, targetId: "t1b" });
      expect(await a2.next(isEvent("createContainer"))).toMatchObject({ containerId: cu1, targetId: "t1b", seq: 5 });
      u1.send({ messageType: "text", messageContent: "second visit" });
      await u1.next(isMsg("second visit"));
      a2.send({ eventType: "addContainer", containerId: cu1 });
      expect(await a2.next(isMsg("second visit"))).toMatchObject({ seq: 6 });
      expect(a2.pending().filter((f) => f.messageContent === "first visit")).toEqual([]);
      // The old agent is out: it hears nothing of the reopened container.
      a2.send({ messageType: "text", messageContent: "welcome back", containerId: cu1 });
      expect(await u1.next(isMsg("welcome back"))).toMatchObject({ createUser: ag2 });
      expect(a1.pending().filter((f) => f.messageContent === "welcome back" || f.messageContent === "second visit")).toEqual([]);
    });

    test("autoReturn answers with the stored auto-reply, managed through the server API", async () => {
      await rooms.account(srv, `${store}-helper`, "Helper");
      await rooms.account(srv, `${store}-asker`);
      const [helper, asker] = [`${store}-helper`, `${store}-asker`];
      expect(await srv.api("/api/rooms-protocol/auto-replies/hours", { method: "PUT", body: { content: "我们的营业时间是 9:00-18:00", name: "小助手", icon: "http://icon/bot" } })).toMatchObject({
        status: 200,
        body: { code: "hours", content: "我们的营业时间是 9:00-18:00", name: "小助手", icon: "http://icon/bot" },
      });
      await srv.api("/api/rooms-protocol/auto-replies/bye", { method: "PUT", body: { content: "再见" } });
      expect((await srv.api("/api/rooms-protocol/auto-replies")).body.map((r: any) => r.code)).toEqual(expect.arrayContaining(["bye", "hours"]));

      const g = await rooms.connect(srv, helper, helper, { keep: open });
      const u = await rooms.connect(srv, asker, helper, { extra: { containerId: asker, targetId: "shop-1" }, keep: open });
      u.send({ eventType: "createContainer", acceptId: helper });
      await g.next(isEvent("createContainer"));
      g.send({ eventType: "addContainer", containerId: asker });
      await u.next(isEvent("addContainer"));

      u.send({ messageType: "text", eventType: "autoReturn", messageContent: "hours" });
      for (const x of [u, g]) {
        expect(await x.next(isEvent("autoReturn"))).toMatchObject({
          messageContent: "我们的营业时间是 9:00-18:00",
          messageType: "text",
          eventType: "autoReturn",
          code: "hours",
          nickName: "小助手",
          userIcon: "http://icon/bot",
          createUser: helper,
          containerId: asker,
        });
      }
      // The agent may send it too; a reply without its own name shows the agent's.
      g.send({ eventType: "autoReturn", messageContent: "bye", containerId: asker });
      expect(await u.next(isEvent("autoReturn"))).toMatchObject({ messageContent: "再见", nickName: "Helper", createUser: helper });
      u.send({ eventType: "autoReturn", messageContent: "no-such-code" });
      expect(await u.next(isError(4040))).toMatchObject({ messageContent: "no auto-reply with code no-such-code", eventType: "autoReturn" });
      expect((await srv.api("/api/rooms-protocol/auto-replies/bye", { method: "DELETE" })).body).toEqual({ deleted: true });
      g.send({ eventType: "autoReturn", messageContent: "bye", containerId: asker });
      expect(await g.next(isError(4040))).toBeTruthy();
    });

    test("an agent back online gets what it missed, and its open containers again", async () => {
      await rooms.account(srv, `${store}-late-agent`);
      await rooms.account(srv, `${store}-early-user`);
      const [agent, user] = [`${store}-late-agent`, `${store}-early-user`];
      const g = await rooms.connect(srv, agent, agent, { keep: open });
      const u = await rooms.connect(srv, user, agent, { extra: { targetId: "x" }, keep: open });
      u.send({ eventType: "createContainer", acceptId: agent });
      await g.next(isEvent("createContainer"));
      g.send({ eventType: "addContainer", containerId: user });
      await g.next(isNotice("in", agent, 2));
      u.send({ messageType: "text", messageContent: "seen live" });
      await g.next(isMsg("seen live"));
      await g.close();
      expect(await u.next(isNotice("out"))).toMatchObject({ userId: agent, count: 1, containerId: user });
      u.send({ messageType: "text", messageContent: "while you were away" });
      await u.next(isMsg("while you were away"));

      const g2 = await rooms.connect(srv, agent, agent, { keep: open });
      expect(await g2.next(isNotice("in"))).toMatchObject({ userId: agent, containerId: user, count: 2 });
      expect(await g2.next(isMsg("while you were away"))).toMatchObject({ createUser: user, containerId: user });
      expect(g2.pending().filter((f) => f.messageContent === "seen live")).toEqual([]);
      expect(await u.next((f) => isNotice("in")(f) && f.userId === agent)).toMatchObject({ count: 2 });
      g2.send({ messageType: "text", messageContent: "back", containerId: user });
      expect(await u.next(isMsg("back"))).toMatchObject({ createUser: agent });
    });
  });

  describe("persistence", () => {
    test("room messages are history, and what a user missed is its offline pull in the native protocol", async () => {
      await rooms.account(srv, `${store}-liv`);
      await rooms.account(srv, `${store}-max`);
      const [liv, max] = [`${store}-liv`, `${store}-max`];
      const room = `${store}-kept`;
      const l = await rooms.login(srv, liv, room, { keep: open });
      const m = await rooms.login(srv, max, room, { keep: open });
      l.send({ messageType: "text", messageContent: "m1" });
      await m.next(isMsg("m1"));
      await m.close();
      // The out notice comes after the leaver's delivered cursor is written.
      await l.next(isNotice("out", room, 1));
      l.send({ messageType: "voice", accessoryContent: { file: "http://f/m2.amr", duration: 2 } });
      await l.next((f) => f.messageType === "voice");

      const token = (await srv.api(`/api/users/${max}/token`, { body: {} })).body.token;
      const n = await Client.native(srv.wsUrl, token, max);
      open.push(n);
      const sync = await n.ok({ t: "sync" });
      expect(sync.msgs.map((x: any) => [x.conv, x.kind, x.from])).toEqual([[`g:rooms:${room}`, "voice", liv]]);
      expect(sync.msgs[0].body).toMatchObject({ messageType: "voice", accessoryContent: { file: "http://f/m2.amr", duration: 2 }, nickName: liv.toUpperCase() });
      const h = await n.ok({ t: "history", conv: `g:rooms:${room}`, after: 0 });
      expect(h.msgs.map((x: any) => x.kind)).toEqual(["text", "voice"]);

      // Back in the room through the rooms protocol, the missed message arrives first.
      const m2 = await rooms.login(srv, max, room, { keep: open });
      expect(await m2.next((f) => f.messageType === "voice")).toMatchObject({ createUser: liv, roomName: room, accessoryContent: { file: "http://f/m2.amr" } });
    });
  });
});

describe("a stalled rooms client", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ store: "pglite", env: { BACKPRESSURE_BYTES: "65536", SEND_RATE: "100000", SEND_BURST: "100000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("is closed with 4100 instead of losing messages, and gets what it missed when it enters again", async () => {
    for (const u of ["fast", "slow"]) {
      await srv.api("/api/users", { body: { id: u, nick: u } });
      await srv.api(`/api/rooms-protocol/accounts/default/${u}`, { method: "PUT", body: { user: u, passwordMd5: md5(u) } });
    }
    const q = (u: string) => new URLSearchParams({ name: u, senderType: "GROUP", userId: u, roomName: "jam", icon: "", account: u, password: md5(u) });
    const fast = await Client.connect(`${srv.wsUrl}/rooms?${q("fast")}`);
    await fast.next(isNotice("in", "jam", 1));
    const slow = await RawWs.connect(`${srv.wsUrl}/rooms?${q("slow")}`);
    await slow.next(isNotice("in", "jam", 2));
    await fast.next(isNotice("in", "jam", 2));
    slow.pause();
    // Messages until the server gives up on the stalled socket (its out notice reaches the room).
    const filler = "x".repeat(9000);
    const sent: string[] = [];
    const gone = () => fast.pending().some((f) => isNotice("out", "jam")(f) && f.userId === "slow");
    while (!gone() && sent.length < 2000) {
      const text = `m${sent.length} ${filler}`;
      fast.send({ messageType: "text", messageContent: text });
      await fast.next(isMsg(text));
      sent.push(text);
    }
    expect(gone()).toBe(true);
    slow.resume();
    const before: string[] = [];
    try {
      for (;;) {
        const f = await slow.next();
        if (f.messageType === "text") before.push(f.messageContent);
      }
    } catch {}
    expect((await slow.closed).code).toBe(4100);
    // Back in the room it gets, in order, everything from its delivered cursor on: every message it never
    // got is there (some it did get may come again: the protocol has no acknowledgement, `messageId` dedups).
    const missed = sent.slice(before.length);
    expect(missed.length).toBeGreaterThan(0);
    expect(sent.slice(0, before.length)).toEqual(before);
    const again = await Client.connect(`${srv.wsUrl}/rooms?${q("slow")}`);
    const text = async () => (await again.next((f) => f.messageType === "text")).messageContent as string;
    const got = [await text()];
    const from = sent.indexOf(got[0]!);
    expect(from).toBeGreaterThanOrEqual(0);
    expect(from).toBeLessThanOrEqual(before.length);
    // (at most 200 on entering: the rest is history)
    const want = sent.slice(from, from + 200);
    while (got.length < want.length) got.push(await text());
    expect(got).toEqual(want);
    again.ws.close();
    fast.ws.close();
  }, 60_000);
});

describe("idle timeout", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ store: "pglite", env: { ROOMS_IDLE_MS: "2000" } });
  }, 30_000);
  afterAll(() => srv.stop());

  test("the heartbeat keeps a connection open; a silent one is closed with 4002", async () => {
    await srv.api("/api/users", { body: { id: "idler", nick: "Idler" } });
    await srv.api("/api/rooms-protocol/accounts/default/idler", { method: "PUT", body: { user: "idler", passwordMd5: md5("pw") } });
    const q = new URLSearchParams({ name: "Idler", senderType: "GROUP", userId: "idler", roomName: "quiet", icon: "", account: "idler", password: md5("pw") });
    const c = await Client.connect(`${srv.wsUrl}/rooms?${q}`);
    await c.next(isNotice("in", "quiet", 1));
    // Heartbeats for longer than the idle timeout: the connection stays.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      c.send(HEARTBEAT);
      await Bun.sleep(100);
    }
    expect(c.isClosed).toBe(false);
    c.send({ messageType: "text", messageContent: "alive" });
    expect(await c.next(isMsg("alive"))).toMatchObject({ createUser: "idler" });
    // Then silence.
    expect(await c.closed).toEqual({ code: 4002, reason: "idle" });
  }, 15_000);
});

describe("across two nodes", () => {
  let n1: TestServer;
  let n2: TestServer;
  const open: Client[] = [];
  beforeAll(async () => {
    n1 = await startTestServer({ store: "pg", bus: "redis" });
    n2 = await startTestServer({ store: "pg", bus: "redis", databaseUrl: n1.app.cfg.databaseUrl });
  }, 30_000);
  afterAll(async () => {
    for (const c of open) c.ws.close();
    await n1.stop();
    await n2.stop();
  });

  /** The logins of this test: password "pw", the user id as the name, no icon. */
  const connect = (srv: TestServer, user: string, roomName: string, extra: Record<string, string> = {}) =>
    rooms.connect(srv, user, roomName, { extra: { name: user, icon: "", password: md5("pw"), ...extra }, keep: open });

  test("a room's count and messages, and a container's whole life, span the nodes", async () => {
    for (const u of ["x1", "x2", "x3", "xa", "xu"]) {
      await n1.api("/api/users", { body: { id: u, nick: u } });
      await n1.api(`/api/rooms-protocol/accounts/default/${u}`, { method: "PUT", body: { user: u, password: "pw" } });
    }
    const a = await connect(n1, "x1", "wide");
    await a.next(isNotice("in", "wide", 1));
    const b = await connect(n2, "x2", "wide");
    expect(await a.next(isNotice("in", "wide"))).toMatchObject({ userId: "x2", count: 2 });
    expect(await b.next(isNotice("in", "wide"))).toMatchObject({ userId: "x2", count: 2 });
    const c = await connect(n1, "x3", "wide");
    expect(await b.next(isNotice("in", "wide"))).toMatchObject({ userId: "x3", count: 3 });
    b.send({ messageType: "text", messageContent: "from node 2" });
    for (const x of [a, c]) expect(await x.next(isMsg("from node 2"))).toMatchObject({ createUser: "x2", roomName: "wide" });
    await a.close();
    expect(await b.next(isNotice("out", "wide"))).toMatchObject({ userId: "x1", count: 2 });
    // A node's own count is exact at once; another node's reaches Redis within a few milliseconds.
    expect((await n1.api("/api/rooms-protocol/rooms/wide")).body.online).toBe(2);

    // The agent on node 2, the user on node 1.
    const g = await connect(n2, "xa", "xa");
    const u = await connect(n1, "xu", "xa", { targetId: "deal-7" });
    u.send({ eventType: "createContainer", acceptId: "xa" });
    expect(await g.next(isEvent("createContainer"))).toMatchObject({ createUser: "xu", containerId: "xu", targetId: "deal-7" });
    g.send({ eventType: "addContainer", containerId: "xu" });
    for (const x of [u, g]) expect(await x.next((f) => isNotice("in")(f) && f.userId === "xa")).toMatchObject({ count: 2, containerId: "xu" });
    u.send({ messageType: "text", messageContent: "cross-node hello" });
    expect(await g.next(isMsg("cross-node hello"))).toMatchObject({ createUser: "xu", containerId: "xu" });
    g.send({ messageType: "text", messageContent: "cross-node reply", containerId: "xu" });
    expect(await u.next(isMsg("cross-node reply"))).toMatchObject({ createUser: "xa" });
    g.send({ eventType: "removeContainer", containerId: "xu" });
    expect(await u.next(isNotice("outAll"))).toMatchObject({ userId: "xa", count: 0 });
    expect(await g.next(isNotice("outAll"))).toMatchObject({ userId: "xa", count: 0 });
    expect((await n1.api("/api/rooms-protocol/containers/xu")).body).toMatchObject({ open: false, members: [{ user: "xu", role: "member" }] });
    // Both nodes took their connections out of the closed container's topic: a reopened one is not heard there.
    u.send({ eventType: "createContainer", acceptId: "x2" });
    expect(await b.next(isEvent("createContainer"))).toMatchObject({ createUser: "xu", containerId: "xu" });
    u.send({ messageType: "text", messageContent: "new agent please" });
    await u.next(isMsg("new agent please"));
    expect(g.pending().filter((f) => f.messageContent === "new agent please" || (f.messageType === "notice" && f.action !== "outAll" && f.containerId === "xu"))).toEqual([]);
  });
});
