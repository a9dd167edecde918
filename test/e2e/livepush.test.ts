// The livepush protocol end to end (docs/livepush.md): long polls and sends over HTTP against a real server, on
// Postgres and on PGlite: held polls, timeouts, logins, answers lost on the way, every chat_type and its trigger,
// hosting, profiles, and a livepush user and a native user in one conversation.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Livepush, POLL, SEND, waitOnline } from "../helpers/livepush.ts";
import { freePort } from "../helpers/procs.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

/** A Postgres of the test's own, stopped (immediate, like a crash) and started again on the same port. */
class OwnPg {
  private readonly bin = `/usr/lib/postgresql/${readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b)).at(-1)}/bin`;
  readonly dir = mkdtempSync(join(tmpdir(), "chat-lp-pg-"));
  readonly port = freePort();
  readonly url = `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  private async run(...args: string[]): Promise<void> {
    const cmd = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...args] : args;
    const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe" });
    if ((await p.exited) !== 0) throw new Error(`${args.join(" ")}: ${await new Response(p.stderr).text()}`);
  }
  async init(): Promise<void> {
    chmodSync(this.dir, 0o777);
    await this.run(`${this.bin}/initdb`, "-D", `${this.dir}/data`, "-U", "postgres", "--auth=trust", "-E", "UTF8");
    await this.start();
  }
  start(): Promise<void> {
    return this.run(`${this.bin}/pg_ctl`, "-D", `${this.dir}/data`, "-l", `${this.dir}/pg.log`, "-w", "-o", `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`, "start");
  }
  stop(): Promise<void> {
    return this.run(`${this.bin}/pg_ctl`, "-D", `${this.dir}/data`, "-m", "immediate", "stop");
  }
  async remove(): Promise<void> {
    await this.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const PROFILE_KEYS = ["id", "nickname", "head_image", "vip", "sex", "user_type", "enable_call", "video_price", "audio_price", "gift_count"];
const MSG_KEYS = ["msg_id", "uid", "receive_uid", "content", "ctime", "is_hello", "chat_type", "content_type", "audio_time", "charge_photo", "is_recommend", "user_info"];

for (const store of ["pg", "pglite"] as const)
  describe(`livepush on ${store}`, () => {
    let srv: TestServer;
    const lp: Record<string, Livepush> = {};
    const tok: Record<string, string> = {};
    const open: Client[] = [];

    async function user(id: string, fields: Record<string, unknown> = {}): Promise<Livepush> {
      tok[id] = await srv.user(id, { nick: id.toUpperCase(), ...fields });
      return (lp[id] = new Livepush(srv.url, id, tok[id]!));
    }

    beforeAll(async () => {
      srv = await startTestServer({
        store,
        bus: store === "pg" ? "redis" : "memory",
        env: { SEND_RATE: "1000", SEND_BURST: "1000", LIVEPUSH_POLL_SEC: "2", REDIS_PREFIX: `lp${store}${process.pid}:` },
      });
      // Old users (not new: LIVEPUSH_NEW_USER_SEC is measured from creation, so mark them welcomed).
      const old = { attributes: { livepush_welcomed: 1 } };
      await user("10010002", { ...old, sex: 1, vip: 0, avatar: "a.png", attributes: { livepush_welcomed: 1, enable_call: 1, video_price: 60, audio_price: 30, gift_count: 300 } });
      await user("10010007", { ...old, sex: 2, role: "host" });
      await user("robot1", { ...old, role: "robot" });
      await user("mm1", { ...old, role: "advisor" });
      await user("svc1", { ...old, role: "service" });
      await user("nat1", old);
      await user("u3", { ...old, sex: 1 });
    });
    afterAll(async () => {
      for (const c of open) c.ws.close();
      await srv.stop();
    });

    test("a bad token, a token of another user, no uid: result 2; the envelope as the seed", async () => {
      const bad = new Livepush(srv.url, "10010002", "nope");
      expect(await bad.poll()).toEqual({ code: 200, data: { result: 2, msgs: [] }, desc: "未登录" });
      const other = new Livepush(srv.url, "10010002", tok["10010007"]!);
      expect((await other.poll()).data.result).toBe(2);
      expect((await other.send({ to_uid: "10010007", content: "x" })).data.result).toBe(2);
      const res = await fetch(`${srv.url}${POLL}?token=${tok["10010002"]}`);
      expect((await res.json()).data.result).toBe(2);
    });

    test("a held poll is answered by a message; an empty poll times out with result 3", async () => {
      const a = lp["10010002"]!;
      const b = lp["10010007"]!;
      const t0 = Date.now();
      expect(await b.poll()).toEqual({ code: 200, data: { result: 3, msgs: [] }, desc: "连接超时" });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
      const held = b.poll();
      const sent = await a.send({ to_uid: "10010007", content: "我想认识你可以吗", is_hello: 1 });
      expect(sent).toMatchObject({ code: 200, data: { result: 1, msg_id: expect.any(String) }, desc: "成功" });
      const got = await held;
      expect(got.data.result).toBe(1);
      expect(got.data.msgs).toHaveLength(1);
      const m = got.data.msgs[0];
      expect(Object.keys(m).sort()).toEqual([...MSG_KEYS].sort());
      expect(m).toMatchObject({
        msg_id: sent.data.msg_id,
        uid: 10010002,
        receive_uid: 10010007,
        content: "我想认识你可以吗",
        is_hello: 1,
        chat_type: 4,
        content_type: 1,
        audio_time: 0,
        charge_photo: 0,
      });
      expect(Math.abs(m.ctime - Date.now() / 1000)).toBeLessThan(60);
      // user_info is the other party's profile, attributes included.
      expect(m.user_info).toEqual({
        id: "10010002",
        nickname: "10010002",
        head_image: "a.png",
        vip: "0",
        sex: "1",
        user_type: "0",
        enable_call: 1,
        video_price: 60,
        audio_price: 30,
        gift_count: 300,
      });
      expect(Object.keys(m.user_info).sort()).toEqual([...PROFILE_KEYS].sort());
      // The next poll confirms it: nothing twice.
      expect((await b.poll()).data).toEqual({ result: 3, msgs: [] });
    });

    test("an answer lost on the way: the next poll gets it again until one confirms it", async () => {
      const a = lp["10010002"]!;
      const b = lp["10010007"]!;
      const s1 = await a.send({ to_uid: "10010007", content: "one" });
      const first = await b.msgs();
      expect(first.map((m) => m.msg_id)).toEqual([s1.data.msg_id]);
      // The client says it took nothing of it (ack=0): the same message comes again, same msg_id.
      const again = await b.msgs({ ack: "0" });
      expect(again.map((m) => m.msg_id)).toEqual([s1.data.msg_id]);
      // A client that went away while its poll was held gets nothing then, and the message on its next poll.
      const ctl = new AbortController();
      const lost = b.poll({}, ctl.signal).catch(() => "aborted");
      ctl.abort();
      expect(await lost).toBe("aborted");
      const s2 = await a.send({ to_uid: "10010007", content: "two" });
      // This poll (no ack) confirms "one" and gets "two".
      expect((await b.msgs()).map((m) => m.msg_id)).toEqual([s2.data.msg_id]);
      expect((await b.poll()).data.result).toBe(3);
    });

    test("a second poll of the same user answers the first at once, empty", async () => {
      const b = lp["10010007"]!;
      // Two polls at once: whichever the server holds first is answered empty as soon as the other arrives.
      const polls = [b.poll(), b.poll()];
      const t0 = Date.now();
      const first = await Promise.race(polls.map((p, i) => p.then((a) => ({ i, a }))));
      expect(first.a.data).toEqual({ result: 3, msgs: [] });
      expect(Date.now() - t0).toBeLessThan(1500);
      const s = await lp["10010002"]!.send({ to_uid: "10010007", content: "to the second" });
      expect((await polls[1 - first.i]!).data.msgs.map((m: any) => m.msg_id)).toEqual([s.data.msg_id]);
      expect((await b.poll()).data.result).toBe(3);
    });

    test("send: JSON and form; bad input result 3; blocked result 7; a livepush user and a native user in one conversation", async () => {
      const a = lp["10010002"]!;
      expect((await a.send({ to_uid: "10010007", content: "json", content_type: 2, audio_time: 5 }, true)).data.result).toBe(1);
      expect((await a.send({ to_uid: "10010007", content: "x", content_type: 9 })).data).toMatchObject({ result: 3 });
      expect((await a.send({ content: "x" })).data.result).toBe(3);
      const voice = (await lp["10010007"]!.msgs()).find((m) => m.content === "json");
      expect(voice).toMatchObject({ content_type: 2, audio_time: 5, chat_type: 4 });
      // Native user nat1 and livepush user 10010002: one conversation.
      const nat = await Client.native(srv.wsUrl, tok.nat1!, "nat1");
      open.push(nat);
      const s = await a.send({ to_uid: "nat1", content: "hello native" });
      const push = await nat.next((f) => f.t === "msg");
      expect(push.msg).toMatchObject({ id: s.data.msg_id, from: "10010002", conv: "d:10010002:nat1", body: { content: "hello native", chat_type: 4 } });
      const back = await nat.ok({ t: "send", to: "10010002", body: { text: "hello livepush" }, cmid: "n1" });
      const got = await a.msgs();
      expect(got).toEqual([expect.objectContaining({ msg_id: back.msg.id, uid: "nat1", receive_uid: 10010002, content: "hello livepush", chat_type: 4 })]);
      expect(got[0].user_info).toMatchObject({ id: "nat1", nickname: "NAT1" });
      // The blacklist holds for this protocol too.
      expect((await srv.api("/api/users/nat1/blocks/10010002", { method: "PUT" })).status).toBe(200);
      expect((await a.send({ to_uid: "nat1", content: "blocked?" })).data.result).toBe(7);
      await srv.api("/api/users/nat1/blocks/10010002", { method: "DELETE" });
    });

    test("chat_type from the roles: 1 to a robot, 3 from a robot, 2 from a matchmaker, 5 to one, 6 from service", async () => {
      const a = lp["10010002"]!;
      await a.send({ to_uid: "robot1", content: "r" });
      await lp.robot1!.send({ to_uid: "10010002", content: "from robot" });
      await lp.mm1!.send({ to_uid: "10010002", content: "from matchmaker" });
      await a.send({ to_uid: "mm1", content: "to matchmaker" });
      await lp.svc1!.send({ to_uid: "10010002", content: "from service" });
      const got = new Map<string, any>();
      while (got.size < 3) for (const m of await a.msgs()) got.set(m.content, m);
      expect(got.get("from robot")).toMatchObject({ chat_type: 3, user_info: { user_type: "1" } });
      expect(got.get("from matchmaker").chat_type).toBe(2);
      expect(got.get("from service").chat_type).toBe(6);
      expect((await lp.robot1!.msgs())[0]).toMatchObject({ content: "r", chat_type: 1 });
      expect((await lp.mm1!.msgs())[0]).toMatchObject({ content: "to matchmaker", chat_type: 5 });
    });

    test("the app backend's calls and gifts: 7, 8 (not stored), 9, 10 → 40 to the others, 11, and a gift demand", async () => {
      const host = "10010007";
      const pub = (body: Record<string, unknown>) => srv.api("/api/livepush/messages", { body });
      const r7 = await pub({ chat_type: 7, uid: host, receive_uid: "10010002", content_type: 4, is_recommend: 1, call_data: { call_id: "c7", video_price: "60", audio_price: "30" } });
      expect(r7.status).toBe(200);
      const [m7] = await lp["10010002"]!.msgs();
      expect(m7).toMatchObject({ msg_id: r7.body.msg_ids[0], chat_type: 7, content_type: 4, is_recommend: 1, call_data: { call_id: "c7", video_price: "60", audio_price: "30" } });
      expect(m7.user_info.id).toBe(host);
      // A group dial: pushed to the polls, not stored.
      const held = [lp["10010002"]!.poll(), lp.u3!.poll()];
      await waitOnline(srv, ["10010002", "u3"]);
      const r8 = await pub({ chat_type: 8, uid: host, receive_uid: ["10010002", "u3"], content_type: 4, call_data: { call_id: "g1", video_price: "60", audio_price: "30" } });
      expect(r8.body).toEqual({ msg_ids: [], pushed: 2 });
      const dials = (await Promise.all(held)).map((a) => a.data.msgs);
      for (const d of dials) expect(d).toEqual([expect.objectContaining({ chat_type: 8, uid: 10010007, call_data: { call_id: "g1", video_price: "60", audio_price: "30" } })]);
      // u3 answers (10): the others who got the dial are told (40).
      const r10 = await pub({ chat_type: 10, uid: "u3", receive_uid: host, content_type: 4, call_data: { call_id: "g1", video_price: "60", audio_price: "30" } });
      expect(r10.status).toBe(200);
      const told = await lp["10010002"]!.msgs();
      expect(told).toEqual([expect.objectContaining({ chat_type: 40, uid: 10010007, receive_uid: 10010002, call_data: { call_id: "g1" } })]);
      expect(told[0].user_info.id).toBe(host);
      expect((await lp[host]!.msgs())).toEqual([expect.objectContaining({ chat_type: 10, uid: "u3", call_data: expect.objectContaining({ call_id: "g1" }) })]);
      const r9 = await pub({ chat_type: 9, uid: host, receive_uid: "10010002", content_type: 4, call_data: { call_id: "c7" } });
      expect(r9.status).toBe(200);
      const r11 = await pub({ chat_type: 11, uid: "10010002", receive_uid: host, content_type: 6, redpacket: 1, gift_data: { call_id: 0, gid: 8, name: "玫瑰花", unit_profit: "100", img: "x", num: 3 } });
      const d7 = await pub({ chat_type: 4, uid: host, receive_uid: "10010002", content_type: 7, content: "送我钻石", demand_gift: { content: "送我钻石", gid: 1, g_num: 20, g_img: "i", g_price: 100, g_name: "大钻石" } });
      expect([r11.status, d7.status]).toEqual([200, 200]);
      expect((await lp[host]!.msgs())).toEqual([expect.objectContaining({ chat_type: 11, content_type: 6, redpacket: 1, gift_data: { call_id: 0, gid: 8, name: "玫瑰花", unit_profit: "100", img: "x", num: 3 } })]);
      const mine = new Map<number, any>();
      while (mine.size < 2) for (const m of await lp["10010002"]!.msgs()) mine.set(m.chat_type, m);
      expect(mine.get(9)).toMatchObject({ call_data: { call_id: "c7" } });
      expect(mine.get(4)).toMatchObject({ content_type: 7, demand_gift: { gid: 1, g_num: 20, g_name: "大钻石" } });
      expect((await pub({ chat_type: 7, uid: host, receive_uid: "10010002" })).status).toBe(400);
    });

    test("43: a follow tells the followed; 24: a host coming online tells her followers", async () => {
      expect((await srv.api("/api/users/u3/follows/10010007", { method: "PUT" })).body).toEqual({ followed: true });
      const [f] = await lp["10010007"]!.msgs();
      expect(f).toMatchObject({ chat_type: 43, uid: "u3", receive_uid: 10010007, user_info: { id: "u3" } });
      // A host who was never online comes online: u3 (her follower) is told.
      await user("h24", { role: "host", sex: 2 });
      await srv.api("/api/users/u3/follows/h24", { method: "PUT" });
      expect((await lp.h24!.msgs())[0]).toMatchObject({ chat_type: 43 });
      const seen = (await lp.u3!.msgs()).filter((m) => m.chat_type === 24);
      expect(seen).toEqual([expect.objectContaining({ uid: "h24", receive_uid: "u3", user_info: expect.objectContaining({ id: "h24" }) })]);
    });

    test("hosting: 29 when she comes online, 26 once per window, 27/41/42/44 on the backend's trigger, 25 to a new user, and her copy of each", async () => {
      const old = { livepush_welcomed: 1 };
      const h9 = await user("h9", { role: "host", sex: 2, attributes: old });
      const setHosting = (who: Livepush, fields: Record<string, string>) =>
        fetch(`${srv.url}/app/im/auto_reply.php`, { method: "POST", body: new URLSearchParams({ uid: who.uid, token: who.token, ...fields }) }).then((r) => r.json());
      const set = await setHosting(h9, {
        on: "1",
        greeting: "你好呀",
        replies: JSON.stringify(["我在忙，稍后回你"]),
        lines: JSON.stringify(["在吗？"]),
        scripts: JSON.stringify(["新来的？"]),
        declines: JSON.stringify(["怎么不接呀"]),
        behaviours: JSON.stringify(["你看了我的主页"]),
      });
      expect(set).toMatchObject({ code: 200, data: { result: 1, hosting: { on: true, greeting: "你好呀", replies: ["我在忙，稍后回你"] } } });
      expect((await setHosting(lp.u3!, { on: "1" })).data.result).toBe(4);
      const shown = await (await fetch(`${srv.url}/app/im/show_auto.php?uid=h9&token=${h9.token}`)).json();
      expect(shown.data.hosting).toMatchObject({ on: true, lines: ["在吗？"] });
      // 29: male users online now get her hosting greeting when she comes online; a female user does not.
      await user("f1", { sex: 2, attributes: old });
      const males = [lp.u3!.poll(), lp["10010002"]!.poll(), lp.f1!.poll()];
      await waitOnline(srv, ["u3", "10010002", "f1"]);
      const copies = await h9.msgs();
      const got = await Promise.all(males);
      for (const a of got.slice(0, 2)) expect(a.data.msgs).toEqual([expect.objectContaining({ chat_type: 29, uid: "h9", content: "你好呀", is_hello: 1 })]);
      expect(got[2].data).toEqual({ result: 3, msgs: [] });
      const more = copies.length < 2 ? await h9.msgs() : [];
      const all29 = [...copies, ...more];
      expect(all29.map((m) => m.receive_uid).sort()).toEqual([10010002, "u3"].sort() as any);
      for (const c of all29) expect(c).toMatchObject({ chat_type: 29, uid: "h9", content: "你好呀" });
      expect(all29.find((c) => c.receive_uid === "u3").user_info.id).toBe("u3");
      // 26: a user writes to her; the server answers for her once per window; her poll gets his message and her copy.
      await lp.u3!.send({ to_uid: "h9", content: "在吗" });
      expect(await lp.u3!.msgs()).toEqual([expect.objectContaining({ chat_type: 26, uid: "h9", receive_uid: "u3", content: "我在忙，稍后回你", user_info: expect.objectContaining({ id: "h9" }) })]);
      const hers = new Map<number, any>();
      while (hers.size < 2) for (const m of await h9.msgs()) hers.set(m.chat_type, m);
      expect(hers.get(4)).toMatchObject({ uid: "u3", content: "在吗" });
      expect(hers.get(26)).toMatchObject({ uid: "h9", receive_uid: "u3", content: "我在忙，稍后回你", user_info: expect.objectContaining({ id: "u3" }) });
      await lp.u3!.send({ to_uid: "h9", content: "还在吗" });
      expect((await h9.msgs()).map((m) => m.content)).toEqual(["还在吗"]);
      expect((await lp.u3!.poll()).data).toEqual({ result: 3, msgs: [] });
      // A native user writing to her is answered too (one core, every protocol).
      const nat = await Client.native(srv.wsUrl, tok.nat1!, "nat1");
      open.push(nat);
      await nat.ok({ t: "send", to: "h9", body: { text: "hi" }, cmid: "h9-1" });
      expect((await nat.next((f) => f.t === "msg")).msg).toMatchObject({ from: "h9", body: { chat_type: 26, content: "我在忙，稍后回你" } });
      const fromNat = new Map<number, any>();
      while (fromNat.size < 2) for (const m of await h9.msgs()) fromNat.set(m.chat_type, m);
      expect(fromNat.get(26)).toMatchObject({ uid: "h9", receive_uid: "nat1" });
      // 27, 41, 42, 44: the app backend asks, her hosting sends one of her lines of that kind.
      const lines: Record<number, string> = { 27: "在吗？", 41: "新来的？", 42: "怎么不接呀", 44: "你看了我的主页" };
      for (const ct of [27, 41, 42, 44]) {
        const r = await srv.api("/api/livepush/hosting/h9/send", { body: { receive_uid: "u3", chat_type: ct } });
        expect(r.status).toBe(200);
        expect(await lp.u3!.msgs()).toEqual([expect.objectContaining({ msg_id: r.body.msg_id, chat_type: ct, uid: "h9", content: lines[ct] })]);
        expect(await h9.msgs()).toEqual([expect.objectContaining({ chat_type: ct, uid: "h9", receive_uid: "u3", content: lines[ct] })]);
      }
      // 25 and 22: a new user comes online: online hosts are told (22) and the hosting ones among them greet it (25).
      const n1 = await user("n1", { sex: 1 });
      const greeted = await n1.msgs();
      expect(greeted).toEqual([expect.objectContaining({ chat_type: 25, uid: "h9", receive_uid: "n1", content: "你好呀", is_hello: 1 })]);
      const h9got = new Map<number, any>();
      while (h9got.size < 2) for (const m of await h9.msgs()) h9got.set(m.chat_type, m);
      expect(h9got.get(22)).toMatchObject({ uid: "n1", receive_uid: "h9", user_info: expect.objectContaining({ id: "n1" }) });
      expect(h9got.get(25)).toMatchObject({ uid: "h9", receive_uid: "n1" });
      // Hosting off: the backend's trigger is refused.
      await srv.api("/api/livepush/hosting/h9", { method: "PUT", body: { on: false } });
      expect((await srv.api("/api/livepush/hosting/h9/send", { body: { receive_uid: "u3", chat_type: 27 } })).status).toBe(409);
    });

    test("28: one-click greeting to several users; a recipient who blocked the sender is skipped", async () => {
      await srv.api("/api/users/u3/blocks/nat1", { method: "PUT" });
      const r = await lp.nat1!.send({ to_uid: "10010002,u3,robot1", content: "大家好" });
      expect(r.data).toMatchObject({ result: 1, sent: 2, refused: 1 });
      expect(await lp["10010002"]!.msgs()).toEqual([expect.objectContaining({ chat_type: 28, uid: "nat1", is_hello: 1, content: "大家好" })]);
      expect((await lp.robot1!.msgs())[0]).toMatchObject({ chat_type: 28 });
      expect((await lp.u3!.poll()).data.result).toBe(3);
    });
  });

describe("livepush: a poll longer than Bun's HTTP idle timeout (10 s)", () => {
  test("is held to LIVEPUSH_POLL_SEC and answered result 3, not cut", async () => {
    const srv = await startTestServer({ store: "pglite", env: { LIVEPUSH_POLL_SEC: "12" } });
    try {
      const token = await srv.user("slow1");
      const t0 = Date.now();
      expect((await new Livepush(srv.url, "slow1", token).poll()).data).toEqual({ result: 3, msgs: [] });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(11_000);
    } finally {
      await srv.stop();
    }
  }, 30_000);
});

describe("livepush: online while polling", () => {
  test("a polling user is online (cluster presence) and goes offline LIVEPUSH_GRACE_SEC after her last poll ends", async () => {
    const srv = await startTestServer({ store: "pglite", env: { LIVEPUSH_POLL_SEC: "1", LIVEPUSH_GRACE_SEC: "1" } });
    try {
      const a = new Livepush(srv.url, "on1", await srv.user("on1", { role: "host" }));
      const online = async () => (await srv.api("/api/presence?users=on1")).body.online as string[];
      const sample = async () => (await srv.api("/api/presence/roles/host/sample?n=10")).body.users as string[];
      expect(await online()).toEqual([]);
      const held = a.poll();
      await waitOnline(srv, ["on1"]);
      expect(await sample()).toEqual(["on1"]);
      expect((await held).data.result).toBe(3);
      const t0 = Date.now();
      while ((await online()).length) {
        if (Date.now() - t0 > 5000) throw new Error("still online");
        await Bun.sleep(50);
      }
      // the grace period, then the once-a-second sweep
      expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
      expect(await sample()).toEqual([]);
    } finally {
      await srv.stop();
    }
  });
});

describe("livepush: the store down, rate limits, bad input", () => {
  test("poll and send answer result 8 (retry) while Postgres is down, never HTTP 500; they work again once it is back", async () => {
    const pg = new OwnPg();
    await pg.init();
    const srv = await startTestServer({ databaseUrl: pg.url, env: { DB_CONNECT_TIMEOUT_SEC: "1", SEND_COMMIT_TIMEOUT_MS: "2000" } });
    try {
      const a = new Livepush(srv.url, "sd1", await srv.user("sd1"));
      await srv.user("sd2");
      expect((await a.send({ to_uid: "sd2", content: "before" })).data.result).toBe(1);
      await pg.stop();
      expect(await a.send({ to_uid: "sd2", content: "during", cmid: "sd-1" })).toMatchObject({ code: 200, data: { result: 8 }, desc: expect.any(String) });
      expect((await a.poll()).data).toEqual({ result: 8, msgs: [] });
      await pg.start();
      let r: any;
      for (let i = 0; i < 100; i++) {
        r = await a.send({ to_uid: "sd2", content: "during", cmid: "sd-1" });
        if (r.data.result === 1) break;
        await Bun.sleep(100);
      }
      expect(r.data.result).toBe(1);
    } finally {
      await srv.stop();
      await pg.remove();
    }
  }, 60_000);

  test("rate limit: result 6; a body that is not form or JSON: result 2 before anything else; unknown fields ignored", async () => {
    const srv = await startTestServer({ store: "pglite", env: { SEND_RATE: "1", SEND_BURST: "2" } });
    try {
      const a = new Livepush(srv.url, "rl1", await srv.user("rl1"));
      await srv.user("rl2");
      const results: number[] = [];
      for (let i = 0; i < 4; i++) results.push((await a.send({ to_uid: "rl2", content: `m${i}`, extra: "x" })).data.result);
      expect(results.slice(0, 2)).toEqual([1, 1]);
      expect(results.slice(2)).toContain(6);
      const res = await fetch(`${srv.url}${SEND}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
      expect(res.status).toBe(200);
      expect((await res.json()).data.result).toBe(2);
    } finally {
      await srv.stop();
    }
  });
});
