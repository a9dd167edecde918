// The J-IM protocol end to end (docs/jim.md): real server, real Postgres, WebSocket clients speaking J-IM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { protocols, type JimClient } from "../helpers/protocol/index.ts";
import type { JimOpts } from "../helpers/protocol/jim.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

let srv: TestServer;
const tok: Record<string, string> = {};

const M = {
  ok: "ok 发送成功",
  offline: "offline 用户不在线",
  bad:
    "send failed 消息发送失败,数据格式不正确,请参考:{'from':来源ID,'to':目标ID,'cmd':'消息命令码','createTime':消息创建时间(Long型),'msgType':Integer消息类型,'content':内容}",
  login: "ok 登录成功!",
  loginFailed: "login failed ! 登录失败!",
  unknown: "cmd failed! 未知的cmd命令!",
  offlineOk: "get user message ok! 获取离线消息成功!",
  peekOk: "ok! 拉取离线消息成功!",
  historyOk: "get user message ok! 获取历史消息成功!",
  msgFailed: "get user message failed! 获取用户消息失败!",
};
const HEX32 = /^[0-9a-f]{32}$/;

const { jim, native } = protocols;
/** Logs a user of `beforeAll` (or registered since) in with its token. */
const login = (user: string, opts: JimOpts = {}) => jim.login(srv, user, { token: tok[user], ...opts });

const say = (c: JimClient, to: string, text: string, extra: Record<string, unknown> = {}) =>
  c.request({ cmd: 11, to, from: "someone-else", chatType: 2, msgType: 0, createTime: 1568012384, content: { asd: text }, ...extra });

beforeAll(async () => {
  srv = await startTestServer({ env: { JIM_PORT: "0", SEND_RATE: "1000", SEND_BURST: "1000" } });
  for (const u of ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal"]) tok[u] = await jim.register(srv, u);
});
afterAll(() => srv.stop());

describe("login", () => {
  test("a registered token logs in with 10007; an unknown or blank one gets 10008 and is closed", async () => {
    (await login("ann")).close();
    for (const q of ["?token=nope", "?token=", ""]) {
      const c = await Client.connect(`${srv.wsUrl}/jim${q}`);
      expect(await c.next()).toEqual({ code: 10008, command: 6, msg: M.loginFailed });
      expect((await c.closed).code).toBe(4001);
    }
  });

  test("username + password (the J-IM demo page) and the server's own JWT also log in", async () => {
    await srv.api("/api/users", { body: { id: "pwuser", nick: "PW", password: "s3cret" } });
    const c = await jim.connect(srv, { username: "pwuser", password: "s3cret" });
    expect(await c.next()).toEqual({ code: 10007, command: 6, msg: M.login });
    await c.close();
    const bad = await jim.connect(srv, { username: "pwuser", password: "wrong" });
    expect(await bad.next()).toEqual({ code: 10008, command: 6, msg: M.loginFailed });
    await bad.closed;
    const jwt = await srv.user("jwtuser");
    const j = await jim.connect(srv, { token: jwt });
    expect((await j.next()).code).toBe(10007);
    await j.close();
  });

  test("cmd 3 checks a token of the logged-in user", async () => {
    const c = await login("ann");
    const ok = await c.request({ cmd: 3, token: tok.ann });
    expect(ok).toMatchObject({ code: 10009, command: 4, msg: "ok 鉴权成功!", data: { token: tok.ann } });
    expect(typeof ok.data.createTime).toBe("number");
    expect(await c.request({ cmd: 3, token: tok.ben })).toEqual({ code: 10010, command: 4, msg: "auth failed! 鉴权失败!" });
    await c.close();
  });
});

describe("initUser", () => {
  test("without the server key a token must already prove the user, and cannot raise its role", async () => {
    const fail = { code: 500, msg: "登录IM系统失败!", data: null };
    const body = { senderId: "mallory", token: "made-up", type: 0 };
    expect(await srv.api("/im/vanke/initUser", { body, key: null })).toEqual({ status: 401, body: fail });
    // someone else's registered token cannot be claimed
    expect(await srv.api("/im/vanke/initUser", { body: { senderId: "mallory", token: tok.ann, type: 0 }, key: null })).toMatchObject({ status: 401 });
    expect(await srv.api("/im/vanke/initUser", { body: { senderId: "mallory", token: tok.ann, type: 0 } })).toMatchObject({ status: 401, body: fail });
    // a JWT of the user itself registers it (as a visitor), not as an agent
    const jwt = await srv.user("selfreg");
    expect((await srv.api("/im/vanke/initUser", { body: { senderId: "selfreg", token: jwt, type: 1 }, key: null })).status).toBe(401);
    expect(await srv.api("/im/vanke/initUser", { body: { senderId: "selfreg", token: jwt, type: "0", nick: "S" }, key: null })).toEqual({
      status: 200,
      body: { code: 200, msg: "success", data: null },
    });
    expect((await srv.api("/api/users/selfreg")).body).toMatchObject({ nick: "S", role: "user" });
    const c = await jim.connect(srv, { token: jwt });
    expect((await c.next()).code).toBe(10007);
    await c.close();
  });

  test("getReceiver assigns a visitor an online agent, or answers busy", async () => {
    const busy = await srv.api("/im/vanke/getReceiver", { body: { senderId: "visitor1", token: "v1-token", type: 0 } });
    expect(busy.body).toEqual({ code: 500, msg: "当前客服繁忙，建议您电话咨询!", data: null });
    tok.agent1 = await jim.register(srv, "agent1", { type: 1, nick: "测试客服", avatar: "ggggfff" });
    const a = await login("agent1");
    const r = await srv.api("/im/vanke/getReceiver", { body: { senderId: "visitor1", receiverId: "", token: "v1-token", nick: "v", terminal: "pc", type: 0 } });
    expect(r.body).toEqual({
      code: 200,
      msg: "success",
      data: { id: "agent1", nick: "测试客服", avatar: "ggggfff", status: "online", sign: null, terminal: "pc", friends: null, groups: null, extras: null },
    });
    await a.close();
  });
});

describe("chat (cmd 11)", () => {
  test("the seed's example: 10000 to an online peer, who gets command 11 with the sender from the login", async () => {
    const ann = await login("ann");
    const ben = await login("ben");
    const frame = {
      to: "ben",
      from: "asdfghjkl",
      cmd: "11",
      createTime: 1568012384,
      msgType: 0,
      chatType: 2,
      extras: { nickName: "昵称", headImg: "http://jjjj.img" },
      content: { asd: "hell,你2好" },
    };
    expect(await ann.request(frame, 12)).toEqual({ code: 10000, command: 12, msg: M.ok });
    const push = await ben.next((f) => f.command === 11);
    expect(push).toEqual({
      command: 11,
      data: {
        chatType: 2,
        cmd: 11,
        content: '{"asd":"hell,你2好"}',
        createTime: 1568012384,
        extras: { nickName: "昵称", headImg: "http://jjjj.img" },
        from: "ann",
        id: expect.stringMatching(HEX32),
        msgType: 0,
        to: "ben",
      },
    });
    // the client's own id is kept
    expect(await say(ann, "ben", "x", { id: "0e848234998c443ebd5657ff83cc1d42" })).toMatchObject({ code: 10000 });
    expect((await ben.next((f) => f.command === 11)).data.id).toBe("0e848234998c443ebd5657ff83cc1d42");
    await ann.close();
    await ben.close();
  });

  test("10001 to an offline peer (stored anyway), 10002 for a bad body", async () => {
    const ann = await login("ann");
    expect(await say(ann, "hal", "while you were away")).toEqual({ code: 10001, command: 12, msg: M.offline });
    expect(await ann.request({ cmd: 11, to: "hal", content: "no chatType" })).toEqual({ code: 10002, command: 12, msg: M.bad });
    expect(await ann.request({ cmd: 11, chatType: 2, content: "no to" })).toEqual({ code: 10002, command: 12, msg: M.bad });
    expect(await ann.request({ cmd: 11, chatType: 2, to: "nobody-here", content: "x" })).toEqual({ code: 10002, command: 12, msg: M.bad });
    const hal = await login("hal");
    const r = await hal.request({ cmd: 19, type: 2, userId: "hal", fromUserId: "ann" });
    expect(r.data.friends.ann.map((m: any) => m.content)).toEqual(['{"asd":"while you were away"}']);
    await ann.close();
    await hal.close();
  });
});

describe("frames", () => {
  test("heartbeat (cmd 13)", async () => {
    const c = await login("ann");
    const r = await c.request({ cmd: 13, hbbyte: "-127" });
    expect(r).toEqual({ command: 13, data: { createTime: expect.any(Number), hbbyte: -128 } });
    await c.close();
  });

  test("unknown cmd and non-JSON get 10017 and the connection stays", async () => {
    const c = await login("ann");
    const unknown = { code: 10017, command: 0, msg: M.unknown };
    expect(await c.request({ cmd: 99 })).toEqual(unknown);
    expect(await c.request("not json at all", 0)).toEqual(unknown);
    expect(await c.request("[1,2]", 0)).toEqual(unknown);
    expect((await c.request({ cmd: 13 })).data.hbbyte).toBe(-128);
    await c.close();
  });

  test("lenient names and numbers: cmd/type as strings, USERID, from_user_id", async () => {
    const ann = await login("ann");
    await say(ann, "gus", "lenient");
    const gus = await login("gus");
    const r = await gus.request({ CMD: "19", Type: "2", USER_ID: "gus", from_user_id: "ann" });
    expect(r.code).toBe(10022);
    expect(r.data.friends.ann).toHaveLength(1);
    await ann.close();
    await gus.close();
  });

  test("cmd 14 answers 10021 and closes", async () => {
    const c = await login("ann");
    expect(await c.request({ cmd: 14 })).toEqual({ code: 10021, command: 14, msg: "close ok! 关闭成功" });
    expect((await c.closed).code).toBe(1000);
  });
});

describe("messages (cmd 19)", () => {
  test("offline messages survive a reconnect, are kept by type 2 and emptied by type 0", async () => {
    const ann = await login("ann");
    for (const t of ["一", "二", "三"]) expect((await say(ann, "cat", t)).code).toBe(10001);
    let cat = await login("cat");
    await cat.close();
    cat = await login("cat");
    const req = { cmd: 19, type: "2", userId: "cat", fromUserId: "ann", offset: 1, count: 2 };
    for (let i = 0; i < 2; i++) {
      const peek = await cat.request(req, 20);
      expect(peek.code).toBe(10022);
      expect(peek.msg).toBe(M.peekOk);
      expect(peek.data.friends.ann.map((m: any) => m.content)).toEqual(['{"asd":"一"}', '{"asd":"二"}', '{"asd":"三"}']);
    }
    const pulled = await cat.request({ ...req, type: "0" }, 20);
    expect(pulled).toEqual({
      code: 10016,
      command: 20,
      msg: M.offlineOk,
      data: {
        friends: {
          ann: ["一", "二", "三"].map((t) => ({
            chatType: 2,
            cmd: 11,
            content: `{"asd":"${t}"}`,
            createTime: 1568012384,
            from: "ann",
            id: expect.stringMatching(HEX32),
            msgType: 0,
            to: "cat",
          })),
        },
        groups: {},
        userId: "cat",
        userid: "cat",
      },
    });
    expect(await cat.request({ ...req, type: "0" }, 20)).toEqual({ code: 10016, command: 20, msg: M.offlineOk, data: { friends: {}, groups: {}, userId: "cat", userid: "cat" } });
    await cat.close();
    await ann.close();
  });

  test("a push to a live J-IM connection counts as delivered; it stays unread", async () => {
    const ann = await login("ann");
    const eve = await login("eve");
    await say(ann, "eve", "pushed");
    expect((await eve.next((f) => f.command === 11)).data.content).toBe('{"asd":"pushed"}');
    const peek = await eve.request({ cmd: 19, type: 2, userId: "eve", fromUserId: "ann" });
    expect(peek.data).toEqual({ friends: {}, groups: {}, userId: "eve", userid: "eve" });
    const info = await eve.request({ cmd: 17, type: 2, userId: "eve", extras: { pullType: 1 } });
    expect(info.data.friends.find((f: any) => f.userId === "ann").unReadNum).toBe(1);
    await Promise.all([ann.close(), eve.close()]);
  });

  test("type 0 without a peer pulls everything and empties it", async () => {
    const ann = await login("ann");
    const ben = await login("ben");
    await say(ann, "dan", "from ann");
    await say(ben, "dan", "from ben");
    const dan = await login("dan");
    const all = await dan.request({ cmd: 19, type: 0, userId: "dan" });
    expect(all.code).toBe(10016);
    expect(Object.keys(all.data.friends).sort()).toEqual(["ann", "ben"]);
    expect((await dan.request({ cmd: 19, type: 0, userId: "dan" })).data.friends).toEqual({});
    await Promise.all([ann.close(), ben.close(), dan.close()]);
  });

  test("history (type 1): oldest first, paged by offset/count, filtered by time; empty history has no data", async () => {
    const fay = await login("fay");
    const t0 = Date.now();
    for (const n of [1, 2, 3, 4]) await say(fay, "gus", `h${n}`);
    const page = await fay.request({ cmd: 19, type: 1, userId: "fay", fromUserId: "gus", offset: 1, count: 2, beginTime: t0 - 1000 });
    expect(page.code).toBe(10018);
    expect(page.msg).toBe(M.historyOk);
    expect(page.data.friends.gus.map((m: any) => m.content)).toEqual(['{"asd":"h2"}', '{"asd":"h3"}']);
    const none = await fay.request({ cmd: 19, type: 1, userId: "fay", fromUserId: "gus", endTime: t0 - 60_000 });
    expect(none).toEqual({ code: 10018, command: 20, msg: M.historyOk });
    expect(await fay.request({ cmd: 19, type: 1, userId: "fay", fromUserId: "nobody" })).toEqual({ code: 10018, command: 20, msg: M.historyOk });
    await fay.close();
  });

  test("another user's messages, a missing userId and an unknown type get 10015", async () => {
    const c = await login("ann");
    const failed = { code: 10015, command: 20, msg: M.msgFailed };
    expect(await c.request({ cmd: 19, type: 0, userId: "cat" })).toEqual(failed);
    expect(await c.request({ cmd: 19, type: 0 })).toEqual(failed);
    expect(await c.request({ cmd: 19, type: 7, userId: "ann" })).toEqual(failed);
    await c.close();
  });
});

describe("user info (cmd 17) and chatInfo", () => {
  test("unread, awaiting-reply and contact counts match the sends and reads", async () => {
    tok.u1 = await jim.register(srv, "u1", { nick: "栗子" });
    tok.u2 = await jim.register(srv, "u2", { nick: "Bob" });
    tok.me1 = await jim.register(srv, "me1", { nick: "770e4" });
    const u1 = await login("u1");
    const u2 = await login("u2");
    await say(u1, "me1", "a");
    await say(u1, "me1", "b");
    await say(u2, "me1", "c");
    const me = await login("me1");
    await say(me, "u2", "reply");

    const info = await me.request({ cmd: 17, type: "2", userId: "me1", extras: { pullType: 1, searchKey: "" } });
    expect(info).toMatchObject({ code: 200, command: 18, msg: "success " });
    expect(info.data).toMatchObject({ nickname: "770e4", userId: "me1", pendingReplyNum: 1, lastedContactsNum: 2, allContactsNum: 2, pullType: 1 });
    const byId = Object.fromEntries(info.data.friends.map((f: any) => [f.userId, f]));
    expect(byId.u1).toMatchObject({ nickname: "栗子", unReadNum: 2 });
    expect(byId.u1.historyMessage.map((m: any) => m.content)).toEqual(['{"asd":"b"}', '{"asd":"a"}']);
    expect(byId.u2).toMatchObject({ nickname: "Bob", unReadNum: 1 });
    expect(byId.u2.historyMessage[0]).toMatchObject({ from: "me1", to: "u2", content: '{"asd":"reply"}' });

    const awaiting = await me.request({ cmd: 17, type: 2, userId: "me1", extras: { pullType: 2 } });
    expect(awaiting.data.friends.map((f: any) => f.userId)).toEqual(["u1"]);
    const search = await me.request({ cmd: 17, type: 2, userId: "me1", extras: { pullType: 1, searchKey: "bo" } });
    expect(search.data.friends.map((f: any) => f.userId)).toEqual(["u2"]);

    // chatInfo: the same numbers; entering the chat with u1 (isConcurrent 1) reads it
    const chatInfo = (body: Record<string, unknown>) => srv.api("/im/vanke/chatInfo", { body: { to: "me1", token: tok.me1, ...body }, key: null });
    expect((await chatInfo({ from: "u2", op: 1, isNewMember: 0, isConcurrent: 0 })).body).toEqual({
      code: 200,
      msg: "success",
      data: { to: "me1", from: "u2", pendingReplyNum: 1, lastedContactsNum: 2, allContactsNum: 2, unReadNum: 1 },
    });
    expect((await chatInfo({ from: "u1", op: 2, isConcurrent: 1 })).body.data.unReadNum).toBe(0);
    // a type-0 pull of one peer is opening that chat: read too
    await me.request({ cmd: 19, type: 0, userId: "me1", fromUserId: "u2" });
    const after = await me.request({ cmd: 17, type: 2, userId: "me1", extras: { pullType: 1 } });
    expect(after.data.friends.map((f: any) => f.unReadNum)).toEqual([0, 0]);
    // friends list (type 1)
    const list = await me.request({ cmd: 17, type: "1", userId: "me1" });
    expect(list.code).toBe(200);
    expect(list.msg).toBe("success ");
    expect(list.data.map((f: any) => f.id).sort()).toEqual(["u1", "u2"]);
    expect(list.data[0]).toEqual({ avatar: "", id: list.data[0].userId, nick: expect.any(String), terminal: "pc", userId: expect.any(String) });

    // chatInfo refuses callers without the key or the user's own token
    expect((await srv.api("/im/vanke/chatInfo", { body: { to: "me1", from: "u1", token: tok.u1 }, key: null })).status).toBe(401);
    expect((await srv.api("/im/vanke/chatInfo", { body: { to: "me1", from: "u1" } })).body.data.allContactsNum).toBe(2);
    await Promise.all([u1.close(), u2.close(), me.close()]);
  });

  test("type 0 lists groups with their online members; other users and types get 10004", async () => {
    const c = await login("eve");
    await c.request({ cmd: 7, groupId: "g-eve" });
    const r = await c.request({ cmd: 17, type: "0", userid: "eve" });
    expect(r).toMatchObject({ code: 10005, command: 18, msg: "ok 获取所有在线用户信息成功!" });
    expect(r.data).toMatchObject({ id: "eve", nick: "EVE", status: "online", terminal: "pc" });
    const eve = { avatar: "", id: "eve", nick: "EVE", terminal: "pc", userId: "eve" };
    expect(r.data.groups).toEqual([{ avatar: "", groupId: "g-eve", group_id: "g-eve", name: "g-eve", online: 1, users: [eve] }]);
    const no = { code: 10004, command: 18, msg: "get user failed ! 获取用户信息失败!" };
    expect(await c.request({ cmd: 17, type: 1, userId: "ann" })).toEqual(no);
    expect(await c.request({ cmd: 17, type: 5, userId: "eve" })).toEqual(no);
    await c.close();
  });
});

describe("groups (cmd 7, chatType 1, exit)", () => {
  test("join notifies members, group chat reaches members only, exit notifies", async () => {
    const ann = await login("ann");
    const ben = await login("ben");
    const cat = await login("cat");
    expect(await ann.request({ cmd: 7, groupId: "g1" })).toEqual({ code: 10011, command: 8, msg: "join group ok! 加入群组成功!", data: { group: "g1", result: 1 } });
    expect(await ben.request({ cmd: "7", group_id: "g1" })).toMatchObject({ code: 10011 });
    // every member, the joiner included, is told (as J-IM's join notify to the group)
    // (2.x reads data.group and data.user.id, 3.x group and user.userId at the top: both are sent)
    const annU = { id: "ann", nick: "ANN", userId: "ann" };
    const benU = { id: "ben", nick: "BEN", userId: "ben" };
    expect(await ann.next((f) => f.command === 9)).toEqual({ command: 9, data: { group: "g1", user: annU }, group: "g1", user: annU });
    expect(await ann.next((f) => f.command === 9)).toEqual({ command: 9, data: { group: "g1", user: benU }, group: "g1", user: benU });

    expect(await ann.request({ cmd: 11, chatType: 1, groupId: "g1", content: "大家好" })).toEqual({ code: 10000, command: 12, msg: M.ok });
    const push = await ben.next((f) => f.command === 11);
    expect(push.data).toMatchObject({ chatType: 1, groupId: "g1", from: "ann", to: "g1", content: "大家好" });
    expect(await cat.request({ cmd: 11, chatType: 1, groupId: "g1", content: "not a member" })).toMatchObject({ code: 10002 });

    const hist = await ben.request({ cmd: 19, type: 1, userId: "ben", groupId: "g1" });
    expect(hist.data.groups.g1.map((m: any) => m.content)).toEqual(["大家好"]);

    ben.send(JSON.stringify({ cmd: 10, groupId: "g1" }));
    expect(await ann.next((f) => f.command === 10)).toEqual({ command: 10, data: { group: "g1", user: benU }, group: "g1", user: benU });
    expect((await ben.next((f) => f.command === 10)).data.user.id).toBe("ben");
    await Promise.all([ann.close(), ben.close(), cat.close()]);
  });
});

describe("recall (cmd 15)", () => {
  test("the sender recalls its message: the peer is told, history and unread no longer show it", async () => {
    const ann = await login("ann");
    const ben = await login("ben");
    const id = "aaaabbbbccccddddeeeeffff00001111";
    expect((await say(ann, "ben", "oops", { id })).code).toBe(10000);
    await ben.next((f) => f.command === 11 && f.data.id === id);
    // only the sender can recall it
    expect(await ben.request({ cmd: 15, id })).toEqual({ code: 10002, command: 16, msg: M.bad });
    expect(await ann.request({ cmd: "15", id })).toEqual({ code: 10000, command: 16, msg: M.ok, data: { id } });
    expect(await ben.next((f) => f.command === 15)).toEqual({ command: 15, data: { chatType: 2, cmd: 15, from: "ann", id, to: "ben" } });
    const hist = await ben.request({ cmd: 19, type: 1, userId: "ben", fromUserId: "ann" });
    expect(hist.data.friends.ann.map((m: any) => m.id)).not.toContain(id);
    expect(await ann.request({ cmd: 15, id: "ffffffffffffffffffffffffffffffff" })).toMatchObject({ code: 10002, command: 16 });
    await Promise.all([ann.close(), ben.close()]);
  });

  test("past the recall window it is refused", async () => {
    const s2 = await startTestServer({ env: { RECALL_WINDOW_SEC: "0" } });
    try {
      const token = "late-token-0123456789";
      expect((await s2.api("/im/vanke/initUser", { body: { senderId: "late", token, type: 0 } })).status).toBe(200);
      await s2.user("peer");
      const c = await jim.connect(s2, { token });
      expect((await c.next()).code).toBe(10007);
      expect((await say(c, "peer", "too late", { id: "0123456789abcdef0123456789abcdef" })).code).toBe(10001);
      expect(await c.request({ cmd: 15, id: "0123456789abcdef0123456789abcdef" })).toEqual({ code: 10002, command: 16, msg: M.bad });
      await c.close();
    } finally {
      await s2.stop();
    }
  });
});

describe("one core", () => {
  test("a J-IM user and a native user chat in one conversation, both directions", async () => {
    const jwt = await srv.user("native1", { nick: "N" });
    const nat = await native.connect(srv, { token: jwt });
    expect((await nat.next()).t).toBe("welcome");
    const ann = await login("ann");
    expect(await say(ann, "native1", "hi native")).toEqual({ code: 10000, command: 12, msg: M.ok });
    const got = await nat.next((f) => f.t === "msg");
    expect(got.msg).toMatchObject({ conv: "d:ann:native1", from: "ann", body: { content: '{"asd":"hi native"}', msgType: 0 } });
    expect(got.msg.cmid).toMatch(HEX32);

    const ack = await nat.request({ t: "send", to: "ann", body: { text: "hi jim" } });
    expect(ack.t).toBe("ack");
    const push = await ann.next((f) => f.command === 11);
    expect(push.data).toMatchObject({ chatType: 2, from: "native1", to: "ann", content: '{"text":"hi jim"}', msgType: 0, id: expect.stringMatching(HEX32) });
    const hist = await ann.request({ cmd: 19, type: 1, userId: "ann", fromUserId: "native1" });
    expect(hist.data.friends.native1.map((m: any) => m.from)).toEqual(["ann", "native1"]);
    await Promise.all([ann.close(), nat.close()]);
  });
});

describe("JIM_PORT", () => {
  test("the J-IM protocol on any path of its own port, and the HTTP API beside it", async () => {
    expect(srv.jimPort).toBeGreaterThan(0);
    const base = `ws://127.0.0.1:${srv.jimPort}`;
    const a = await login("ann", { path: "/", base: base });
    const b = await login("ben", { path: "/some/where", base: base });
    expect(await say(a, "ben", "via 8889")).toMatchObject({ code: 10000 });
    expect((await b.next((f) => f.command === 11)).data.content).toBe('{"asd":"via 8889"}');
    const r = await fetch(`http://127.0.0.1:${srv.jimPort}/im/vanke/chatInfo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ to: "ben", from: "ann", op: 1, isNewMember: 0, isConcurrent: 1, token: tok.ben }),
    });
    expect((await r.json()).data.unReadNum).toBe(0);
    const doc = await (await fetch(`${srv.url}/openapi/json`)).json();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/im/vanke/initUser", "/im/vanke/getReceiver", "/im/vanke/chatInfo"]));
    await Promise.all([a.close(), b.close()]);
  });
});

describe("embedded store", () => {
  test("the chat list and offline pulls work on PGlite too", async () => {
    const s2 = await startTestServer({ store: "pglite" });
    try {
      for (const id of ["p1", "p2"]) expect((await s2.api("/im/vanke/initUser", { body: { senderId: id, token: `${id}-token-xyz`, type: 0, nick: id } })).status).toBe(200);
      const c1 = await jim.connect(s2, { token: "p1-token-xyz" });
      expect((await c1.next()).code).toBe(10007);
      expect((await say(c1, "p2", "hello")).code).toBe(10001);
      const c2 = await jim.connect(s2, { token: "p2-token-xyz" });
      expect((await c2.next()).code).toBe(10007);
      const info = await c2.request({ cmd: 17, type: 2, userId: "p2", extras: { pullType: 3 } });
      expect(info.data).toMatchObject({ allContactsNum: 1, lastedContactsNum: 1, pendingReplyNum: 1 });
      expect(info.data.friends[0]).toMatchObject({ userId: "p1", nickname: "p1", unReadNum: 1, lastMessageTime: expect.any(Number) });
      expect((await c2.request({ cmd: 19, type: 0, userId: "p2" })).data.friends.p1).toHaveLength(1);
      await Promise.all([c1.close(), c2.close()]);
    } finally {
      await s2.stop();
    }
  });
});
