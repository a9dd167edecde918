// The social API (seed 003, docs/social.md) end to end: real server over HTTP, its push socket, on Postgres and on
// PGlite; a social user and a native user in one conversation.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync } from "node:fs";
import { sql } from "drizzle-orm";
import { Client } from "../helpers/client.ts";
import { rowsOf } from "../../src/store/db.ts";
import { API_KEY, startTestServer, type TestServer } from "../helpers/server.ts";

const BASE = "/anlife/v1.0/chat";
const TIME_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
/** SOCIAL_DOC_OUT=<file>: every call and answer is appended there (docs/social.md's examples come from such a run). */
const DOC_OUT = process.env.SOCIAL_DOC_OUT;

type Opts = { token?: string; uid?: string; method?: "GET" | "POST"; json?: boolean; headers?: Record<string, string>; key?: boolean };

for (const store of ["pg", "pglite"] as const)
  describe(`social API on ${store}`, () => {
    let srv: TestServer;
    const tok: Record<string, string> = {};
    const open: Client[] = [];

    beforeAll(async () => {
      srv = await startTestServer({
        store,
        env: {
          SEND_RATE: "1000",
          SEND_BURST: "1000",
          RECEIPT_DEBOUNCE_MS: "20",
          SOCIAL_TIME_ZONE: "Asia/Shanghai",
          SOCIAL_IMAGE_SMALL_URL: "http://img{host}.test/{hash}/small.{ext}",
          SOCIAL_IMAGE_BIG_URL: "http://img{host}.test/{hash}/{width}x{height}.{ext}",
        },
      });
      for (const u of ["101", "102", "103", "104", "105", "106"]) tok[u] = await srv.user(u, { nick: `n${u}`, avatar: `http://a.test/${u}.jpg` });
      tok["900"] = await srv.user("900", { nick: "Estate office", avatar: "http://a.test/900.jpg", role: "service" });
      tok.dan = await srv.user("dan", { nick: "Dan" });
    });
    afterAll(async () => {
      for (const c of open) c.ws.close();
      await srv.stop();
    });

    /** Calls an interface: form-encoded (default) or JSON, with `uid` and `token` in the body unless told otherwise. */
    async function call(path: string, params: Record<string, unknown> = {}, o: Opts = {}): Promise<any> {
      const method = o.method ?? "POST";
      const all: Record<string, unknown> = { ...(o.uid !== undefined ? { uid: o.uid } : {}), ...(o.token !== undefined ? { token: o.token } : {}), ...params };
      const headers: Record<string, string> = { ...o.headers };
      if (o.key) headers.authorization = `apikey ${API_KEY}`;
      let url = srv.url + BASE + "/" + path;
      let body: string | undefined;
      const form = new URLSearchParams(Object.entries(all).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]));
      if (method === "GET") url += "?" + form;
      else if (o.json) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(all);
      } else {
        headers["content-type"] = "application/x-www-form-urlencoded";
        body = form.toString();
      }
      const res = await fetch(url, { method, headers, body });
      const text = await res.text();
      if (DOC_OUT) appendFileSync(DOC_OUT, `### ${method} ${path}\n${method === "GET" ? url.slice(srv.url.length) : body}\n${text}\n\n`);
      expect(res.status).toBe(200);
      return JSON.parse(text);
    }
    /** As user `u` (uid and token in the form). */
    const as = (u: string, path: string, params: Record<string, unknown> = {}, o: Opts = {}) => call(path, params, { uid: u, token: tok[u], ...o });
    const text = (t: string) => JSON.stringify({ msg_type: "1", body: { text: t } });

    async function push(u: string): Promise<Client> {
      const c = await Client.connect(`${srv.wsUrl}${BASE}/push?uid=${u}&token=${tok[u]}`);
      open.push(c);
      if (DOC_OUT) {
        const next = c.next.bind(c);
        c.next = async (pred, ms) => {
          const f = await next(pred, ms);
          appendFileSync(DOC_OUT, `### PUSH to ${u}\n${JSON.stringify(f)}\n\n`);
          return f;
        };
      }
      expect(await c.next()).toEqual({ welcome: { uid: u } });
      return c;
    }
    const stored = async (conv: string) =>
      Number(rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = ${conv}`))[0]!.n);

    describe("identity", () => {
      test("a missing, bad or another user's token is refused in the seed's format, with nothing returned", async () => {
        const notLoggedIn = { error_code: "10001", error_msg: expect.any(String) };
        expect(await call("user/isInBlacklist", { uid: "101", to_uid: "102" })).toEqual(notLoggedIn);
        expect(await call("user/isInBlacklist", { uid: "101", token: "nope", to_uid: "102" })).toEqual(notLoggedIn);
        expect(await call("message/sendMessage", { to_uid: "102", message: text("x") }, { uid: "101", token: tok["102"] })).toEqual(notLoggedIn);
        expect(await call("user/getUserBlacklist", { page: 1 }, { uid: "101", headers: { authorization: "Bearer bad" } })).toEqual(notLoggedIn);
        expect(await stored("d:101:102")).toBe(0);
        // The token in the query string or an Authorization header works as well as in the form.
        expect(await call("user/isInBlacklist", { to_uid: "102" }, { uid: "101", headers: { authorization: `Bearer ${tok["101"]}` } })).toEqual({ datas: 0 });
        const q = await fetch(`${srv.url}${BASE}/user/isInBlacklist?uid=101&token=${tok["101"]}`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "to_uid=102",
        });
        expect(await q.json()).toEqual({ datas: 0 });
      });

      test("a bad token is refused before the body is read", async () => {
        // The body is not even valid: the token in the header is what is answered.
        const res = await fetch(`${srv.url}${BASE}/message/sendMessage?uid=101`, {
          method: "POST",
          headers: { authorization: "Bearer bad", "content-type": "application/json" },
          body: "{not json",
        });
        expect(await res.json()).toMatchObject({ error_code: "10001" });
      });

      test("the back office interfaces take the server API key, never a user token", async () => {
        const p = { service_id: "900", user_id: "102", msg_type: 1, message: { text: "hi" } };
        expect(await call("cms/sendMessage", p)).toMatchObject({ error_code: "10001" });
        expect(await call("cms/sendMessage", p, { uid: "900", token: tok["900"] })).toMatchObject({ error_code: "10001" });
        expect(await call("cms/getServiceMsg", { service_id: "900", search_type: 1 }, { method: "GET", headers: { authorization: "apikey wrong" } })).toMatchObject({
          error_code: "10001",
        });
        expect(await stored("d:102:900")).toBe(0);
      });

      test("the push socket closes when its token expires (4001)", async () => {
        const short = (await srv.api("/api/users/106/token", { body: { ttlSec: 1 } })).body.token;
        const s = await Client.connect(`${srv.wsUrl}${BASE}/push?uid=106&token=${short}`);
        open.push(s);
        expect(await s.next()).toEqual({ welcome: { uid: "106" } });
        expect((await s.closed).code).toBe(4001);
      });

      test("the push socket refuses a bad token", async () => {
        await expect(Client.connect(`${srv.wsUrl}${BASE}/push?uid=101&token=bad`)).rejects.toThrow();
        await expect(Client.connect(`${srv.wsUrl}${BASE}/push?uid=101&token=${tok["102"]}`)).rejects.toThrow();
      });
    });

    describe("parameters", () => {
      test("a bad or missing parameter is 10000", async () => {
        const e = { error_code: "10000", error_msg: expect.any(String) };
        expect(await as("101", "message/sendMessage", { message: text("x") })).toEqual(e);
        expect(await as("101", "message/sendMessage", { to_uid: "102", message: "{not json" })).toEqual(e);
        expect(await as("101", "message/sendMessage", { to_uid: "102", message: { msg_type: 9, body: {} } })).toEqual(e);
        expect(await as("101", "message/sendMessage", { to_uid: "102", message: { msg_type: 1, body: { text: "" } } })).toEqual(e);
        expect(await as("101", "message/updateMessageReceiveStatus", { msg_id: "1", status: 4 })).toEqual(e);
        expect(await as("101", "message/updateMessageReadStatus", { msg_id: "1,2", status: 4 })).toEqual(e);
        expect(await as("101", "user/getUserList", { belong_id: "x y", search_type: 1 }, { method: "GET" })).toEqual(e);
        expect(await as("101", "message/noSuchThing", {})).toEqual(e);
        // A write takes POST only.
        expect(await as("101", "message/sendMessage", { to_uid: "102", message: text("x") }, { method: "GET" })).toEqual(e);
        expect(await stored("d:101:102")).toBe(0);
      });
    });

    describe("1:1 messages, pushes and receipts", () => {
      test("text and image: acked with the msg_id, pushed in the seed's format; numbers as strings or numbers", async () => {
        const b = await push("102");
        const sent = await as("101", "message/sendMessage", { to_uid: "102", send_type: "0", message: text("hello world") });
        expect(sent).toEqual({ datas: expect.stringMatching(/^\d+$/) });
        const p = await b.next((f) => f.msg_id === sent.datas);
        expect(p).toEqual({
          msg_type: "1",
          msg_id: sent.datas,
          send_time: expect.stringMatching(TIME_RE),
          from: { uid: "101", nickname: "n101", photo: "http://a.test/101.jpg" },
          body: { text: "hello world" },
          seq: 1,
          to_uid: "102",
        });
        // send_time is in Asia/Shanghai (UTC+8).
        const utc = new Date(p.send_time.replace(" ", "T") + "+08:00").getTime();
        expect(Math.abs(utc - Date.now())).toBeLessThan(60_000);

        const image = { height: 125, hash: "6cfb60420d44feb9300a2dd4ab2a4d6f", format: "JPEG", id: "6cfb60420d44feb9300a2dd4ab2a4d6f", exists: 1, width: 495, size: 53834, host: 1 };
        const img = await as("101", "message/sendMessage", { to_uid: 102, message: { msg_type: 2, body: image } }, { json: true });
        expect(await b.next((f) => f.msg_id === img.datas)).toMatchObject({
          msg_type: "2",
          body: { pic_small: "http://img1.test/6cfb60420d44feb9300a2dd4ab2a4d6f/small.jpg", pic_big: "http://img1.test/6cfb60420d44feb9300a2dd4ab2a4d6f/495x125.jpg" },
        });
        // Only a service account sends a rich card.
        const card = { msg_type: 3, body: { title: "t", date: "1", img: "", desc: "", url: "" } };
        expect(await as("101", "message/sendMessage", { to_uid: "102", message: card })).toMatchObject({ error_code: "10002" });
        expect(await stored("d:101:102")).toBe(2);
      });

      test("receipts: only a recipient sets them, and the sender's socket is told", async () => {
        const a = await push("103");
        const m1 = (await as("103", "message/sendMessage", { to_uid: "104", message: text("one") })).datas;
        const m2 = (await as("103", "message/sendMessage", { to_uid: "104", message: text("two") })).datas;
        // Not a recipient: another user, and the sender itself.
        expect(await as("105", "message/updateMessageReceiveStatus", { msg_id: `${m1},${m2}`, status: 3 })).toMatchObject({ error_code: "10002" });
        expect(await as("103", "message/updateMessageReadStatus", { msg_id: m1, status: 4 })).toMatchObject({ error_code: "10002" });
        expect(await as("104", "message/updateMessageReceiveStatus", { msg_id: "123456789", status: 3 })).toMatchObject({ error_code: "10003" });

        expect(await as("104", "message/updateMessageReceiveStatus", { msg_id: `${m1},${m2}`, status: 3 })).toEqual({ datas: 1 });
        expect(await a.next((f) => f.receipt)).toEqual({ receipt: { uid: "104", status: "3", seq: 2, peer_uid: "103" } });
        expect(await as("104", "message/updateMessageReadStatus", { msg_id: m1, status: "4" })).toEqual({ datas: 1 });
        expect(await a.next((f) => f.receipt?.status === "4")).toEqual({ receipt: { uid: "104", status: "4", seq: 1, peer_uid: "103" } });
      });
    });

    describe("blacklist", () => {
      test("add, list, check, remove; a blocked sender is refused and nothing is stored", async () => {
        expect(await as("106", "user/addUserToBlacklist", { to_uid: "105" })).toEqual({ datas: 1 });
        expect(await as("106", "user/addUserToBlacklist", { to_uid: "101" })).toEqual({ datas: 1 });
        expect(await as("106", "user/isInBlacklist", { to_uid: "105" })).toEqual({ datas: 1 });
        expect(await as("105", "user/isInBlacklist", { to_uid: "106" })).toEqual({ datas: 0 });
        const all = await as("106", "user/getUserBlacklist", { page: 1 });
        expect(all).toEqual({
          datas: {
            total: "2",
            blacklist: [
              { user_id: "101", nickname: "n101", photo: "http://a.test/101.jpg", created: expect.stringMatching(TIME_RE) },
              { user_id: "105", nickname: "n105", photo: "http://a.test/105.jpg", created: expect.stringMatching(TIME_RE) },
            ],
          },
        });
        expect((await as("106", "user/getUserBlacklist", { page: 2, page_size: 1 })).datas).toMatchObject({ total: "2", blacklist: [{ user_id: "105" }] });

        const before = await stored("d:105:106");
        expect(await as("105", "message/sendMessage", { to_uid: "106", message: text("let me in") })).toMatchObject({ error_code: "10004" });
        // ... through the native protocol too: one rule in the core.
        expect(await as("105", "user/addFriendApply", { to_uid: "106", comment: "hi" })).toMatchObject({ error_code: "10004" });
        expect(await stored("d:105:106")).toBe(before);

        expect(await as("106", "user/delUserFromBlacklist", { to_uid: "105" })).toEqual({ datas: 1 });
        expect(await as("106", "user/isInBlacklist", { to_uid: "105" })).toEqual({ datas: 0 });
        expect(await as("105", "message/sendMessage", { to_uid: "106", message: text("thanks") })).toEqual({ datas: expect.any(String) });
        await as("106", "user/delUserFromBlacklist", { to_uid: "101" });
      });
    });

    describe("friends", () => {
      test("apply, list, agree, delete; refuse; only the addressee answers", async () => {
        const b = await push("102");
        expect(await as("101", "user/addFriendApply", { to_uid: "102", comment: "hello, neighbour" })).toEqual({ datas: 1 });
        expect(await b.next((f) => f.friend)).toEqual({ friend: { change: "request", uid: "101", nickname: "n101", comment: "hello, neighbour" } });
        expect(await as("103", "user/addFriendApply", { to_uid: "102", comment: "me too" })).toEqual({ datas: 1 });
        const list = await as("102", "user/getFriendApplyList", { page: 1, page_size: 10 });
        const entry = (u: string, comment: string, status: string) => ({
          relation_apply_id: u,
          user_id: u,
          nickname: `n${u}`,
          photo: `http://a.test/${u}.jpg`,
          comment,
          status,
          created: expect.stringMatching(TIME_RE),
        });
        expect(list.datas.total).toBe("2");
        expect(list.datas.applys).toContainEqual(entry("101", "hello, neighbour", "0"));
        // The seed's example wraps the list in `applys`: the same list is there too.
        expect(list.applys).toEqual(list.datas);

        // Only the addressee agrees.
        expect(await as("103", "user/agreeFriendApply", { relation_apply_id: "101" })).toMatchObject({ error_code: "10003" });
        expect(await as("102", "user/agreeFriendApply", { relation_apply_id: "101" })).toEqual({ datas: 1 });
        expect(await as("102", "user/refuseFriendApply", { relation_apply_id: "103" })).toEqual({ datas: 1 });
        const after = (await as("102", "user/getFriendApplyList", { page: 1 })).datas.applys;
        expect(after).toContainEqual(entry("101", "hello, neighbour", "1"));
        expect(after).toContainEqual(entry("103", "me too", "2"));
        const friends = async (u: string) => (await srv.api(`/api/users/${u}/friends`)).body.map((f: any) => f.user);
        expect(await friends("101")).toEqual(["102"]);
        expect(await friends("102")).toEqual(["101"]);

        expect(await as("101", "user/deleteFriend", { to_uid: "102" })).toEqual({ datas: 1 });
        expect(await friends("101")).toEqual([]);
        expect(await friends("102")).toEqual([]);
      });
    });

    describe("groups", () => {
      beforeAll(async () => {
        for (const [id, kind, extra] of [
          ["7001", "interest", {}],
          ["7002", "user", {}],
          ["7003", "neighbourhood", { attributes: { area: "elm" } }],
        ] as const) {
          const r = await srv.api("/api/groups", { body: { id, kind, owner: "101", name: `g${id}`, members: ["102", "103"], ...extra } });
          expect(r.status).toBe(200);
        }
        expect((await srv.api("/api/groups", { body: { id: "900", kind: "service", owner: "900", name: "Estate office", members: ["101", "102"] } })).status).toBe(200);
      });

      test("getUserList pages an interest group's members, as `users` and as `groups`", async () => {
        const all = await as("102", "user/getUserList", { belong_id: "7001", search_type: 1 }, { method: "GET" });
        expect(all.datas).toMatchObject({ belong_id: "7001", search_type: "1", total: "3" });
        expect(all.datas.users.map((u: any) => u.user_id).sort()).toEqual(["101", "102", "103"]);
        expect(all.datas.groups).toEqual(all.datas.users);
        expect(all.datas.users).toContainEqual({ user_id: "103", nickname: "n103", photo: "http://a.test/103.jpg" });
        const page = await as("102", "user/getUserList", { belong_id: "7001", search_type: 1, page: 2, page_size: 2 }, { method: "GET" });
        expect(page.datas.total).toBe("3");
        expect(page.datas.users).toHaveLength(1);
        // search_type 2: a neighbourhood's members.
        expect((await as("103", "user/getUserList", { belong_id: "7003", search_type: 2 }, { method: "GET" })).datas).toMatchObject({ belong_id: "7003", search_type: "2", total: "3" });
        // Not a member: refused; not an interest group: not found.
        expect(await as("104", "user/getUserList", { belong_id: "7001", search_type: 1 }, { method: "GET" })).toMatchObject({ error_code: "10002" });
        expect(await as("102", "user/getUserList", { belong_id: "7002", search_type: 1 }, { method: "GET" })).toMatchObject({ error_code: "10003" });
      });

      test("sendGroupMessage to each group type; members only; service accounts: owner and admins only", async () => {
        const b = await push("102");
        for (const [gid, type] of [
          ["7002", 1],
          ["7001", 2],
          ["7003", 3],
        ] as const) {
          const r = await as("101", "message/sendGroupMessage", { group_type: type, to_uid: gid, message: text(`to ${gid}`) });
          expect(r).toEqual({ datas: expect.any(String) });
          expect(await b.next((f) => f.msg_id === r.datas)).toEqual({
            msg_type: "1",
            msg_id: r.datas,
            send_time: expect.stringMatching(TIME_RE),
            group: { group_id: gid, group_type: String(type) },
            from: { uid: "101", nickname: "n101", photo: "http://a.test/101.jpg" },
            body: { text: `to ${gid}` },
            seq: expect.any(Number),
          });
        }
        // The wrong group_type for the id, a non-member, a member of a service account.
        expect(await as("101", "message/sendGroupMessage", { group_type: 2, to_uid: "7002", message: text("x") })).toMatchObject({ error_code: "10003" });
        expect(await as("104", "message/sendGroupMessage", { group_type: 1, to_uid: "7002", message: text("x") })).toMatchObject({ error_code: "10002" });
        expect(await as("101", "message/sendGroupMessage", { group_type: 4, to_uid: "900", message: text("x") })).toMatchObject({ error_code: "10002" });
        expect(await stored("g:900")).toBe(0);
        // Receipts in a group: the sender's socket gets counts (debounced), from members' marks.
        const a = await push("101");
        const g = await as("101", "message/sendGroupMessage", { group_type: 2, to_uid: "7001", message: text("read me") });
        expect(await as("102", "message/updateMessageReadStatus", { msg_id: g.datas, status: 4 })).toEqual({ datas: 1 });
        const counts = await a.next((f) => f.receipt_counts?.group_id === "7001" && f.receipt_counts.counts.some((c: any) => c.seq === 2 && c.read === 1));
        // Received: 102, who read it, and 103 (its push socket from the 1:1 tests is still open) once the push to it
        // has been marked delivered, which may land before or after the debounced count: 1 or 2, never more.
        const c2 = counts.receipt_counts.counts.find((c: any) => c.seq === 2);
        expect(c2.read).toBe(1);
        expect([1, 2]).toContain(c2.received);
        // The account itself posts a rich card to its subscribers.
        const card = { msg_type: 3, body: { title: "Water cut on Monday", date: "1700000000", img: "http://a.test/w.jpg", desc: "9:00-12:00", url: "http://a.test/n/1" } };
        const r = await as("900", "message/sendGroupMessage", { group_type: 4, to_uid: "900", message: card });
        expect(await b.next((f) => f.msg_id === r.datas)).toMatchObject({ msg_type: "3", group: { group_id: "900", group_type: "4" }, body: card.body, from: { uid: "900", nickname: "Estate office" } });
      });
    });

    describe("service accounts", () => {
      test("users write to it; the back office pushes to users (push socket, or offline once); it pages its messages", async () => {
        const b = await push("102");
        const inbound = await as("101", "message/sendMessage", { to_uid: "900", send_type: 2, message: text("my tap leaks") });
        expect(inbound).toEqual({ datas: expect.any(String) });
        // send_type 2 names a service account.
        expect(await as("101", "message/sendMessage", { to_uid: "103", send_type: 2, message: text("x") })).toMatchObject({ error_code: "10003" });

        const card = { title: "Lift maintenance", date: "1700000000", img: "http://a.test/l.jpg", desc: "Tuesday", url: "http://a.test/n/2" };
        const sent = await call("cms/sendMessage", { service_id: "900", user_id: "102,104", msg_type: 3, message: card }, { key: true });
        const [toB, toD] = sent.datas.split(",");
        expect(toB).toMatch(/^\d+$/);
        expect(toD).toMatch(/^\d+$/);
        expect(await b.next((f) => f.msg_id === toB)).toEqual({
          msg_type: "3",
          msg_id: toB,
          send_time: expect.stringMatching(TIME_RE),
          from: { uid: "900", nickname: "Estate office", photo: "http://a.test/900.jpg" },
          body: card,
          seq: 1,
          to_uid: "102",
        });
        // 104 has no push socket: the offline interface gives it once, then never again.
        const off = await as("104", "message/getOfflineMessage", {}, { method: "GET" });
        expect(off.datas.msgs.filter((m: any) => m.msg_id === toD)).toEqual([expect.objectContaining({ msg_type: "3", body: card, from: expect.objectContaining({ uid: "900" }) })]);
        const again = await as("104", "message/getOfflineMessage", {}, { method: "GET" });
        expect(again.datas.msgs.filter((m: any) => m.msg_id === toD)).toEqual([]);
        // 102 got it over its socket: it does not wait offline.
        const offB = await as("102", "message/getOfflineMessage", {}, { method: "GET" });
        expect(offB.datas.msgs.filter((m: any) => m.msg_id === toB)).toEqual([]);

        const received = await call("cms/getServiceMsg", { service_id: "900", search_type: 1 }, { method: "GET", key: true });
        expect(received.datas).toMatchObject({ service_id: "900", search_type: "1", user_id: "", total: "1" });
        expect(received.datas.msgs).toEqual([{ msg_id: inbound.datas, msg_type: "1", body: JSON.stringify({ text: "my tap leaks" }), created: expect.stringMatching(/^\d+$/), user_id: "101" }]);
        const out = await call("cms/getServiceMsg", { service_id: "900", search_type: 2 }, { method: "GET", key: true });
        expect(out.datas.total).toBe("2");
        expect(out.datas.msgs.map((m: any) => m.msg_id).sort()).toEqual([toB, toD].sort());
        const one = await call("cms/getServiceMsg", { service_id: "900", search_type: 2, user_id: "104", page: 1, page_size: 10 }, { method: "GET", key: true });
        expect(one.datas.msgs).toEqual([expect.objectContaining({ msg_id: toD, user_id: "104", msg_type: "3" })]);
        // Not a service account; an unknown user: nothing sent.
        expect(await call("cms/sendMessage", { service_id: "101", user_id: "102", msg_type: 1, message: { text: "x" } }, { key: true })).toMatchObject({ error_code: "10003" });
        expect(await call("cms/sendMessage", { service_id: "900", user_id: "102,nobody", msg_type: 1, message: { text: "x" } }, { key: true })).toMatchObject({ error_code: "10003" });
        expect(await stored("d:102:900")).toBe(1);

        // A user who blocked the account gets nothing from it: its place in the answer is 0 (alone: the blocked error).
        await as("103", "user/addUserToBlacklist", { to_uid: "900" });
        const some = await call("cms/sendMessage", { service_id: "900", user_id: "102,103", msg_type: 1, message: { text: "notice" } }, { key: true });
        expect(some.datas).toMatch(/^\d+,0$/);
        expect(await call("cms/sendMessage", { service_id: "900", user_id: "103", msg_type: 1, message: { text: "notice" } }, { key: true })).toMatchObject({ error_code: "10004" });
        expect(await stored("d:103:900")).toBe(0);
      });
    });

    describe("one core", () => {
      test("a social user and a native user talk in one conversation, read from both sides", async () => {
        const dan = await Client.native(srv.wsUrl, tok.dan!, "dan");
        open.push(dan);
        // 105 is away: what dan writes waits for it.
        await dan.ok({ t: "send", to: "105", kind: "text", body: { text: "hi from native" } });
        await dan.ok({ t: "send", to: "105", kind: "text", body: { text: "are you there?" } });
        const off = await as("105", "message/getOfflineMessage", { page_size: 50 }, { method: "GET" });
        expect(off.datas.msgs.filter((m: any) => m.from.uid === "dan").map((m: any) => [m.body.text, m.from.nickname])).toEqual([
          ["hi from native", "Dan"],
          ["are you there?", "Dan"],
        ]);
        const reply = await as("105", "message/sendMessage", { to_uid: "dan", message: text("hi from social") });
        const got = await dan.next((f) => f.t === "msg" && f.msg.from === "105");
        expect(got.msg).toMatchObject({ id: reply.datas, conv: "d:105:dan", kind: "text", body: { text: "hi from social" } });
        const h = await dan.ok({ t: "history", conv: "d:105:dan", limit: 10 });
        expect(h.msgs.map((m: any) => m.body.text).sort()).toEqual(["are you there?", "hi from native", "hi from social"]);
        // The native user's read mark reaches the social user's socket as a receipt.
        const s = await push("105");
        await dan.ok({ t: "read", conv: "d:105:dan", seq: 3 });
        expect(await s.next((f) => f.receipt)).toEqual({ receipt: { uid: "dan", status: "4", seq: 3, peer_uid: "105" } });
      });
    });
  });

describe("social API: a store that cannot keep up", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ store: "pglite", env: { SEND_RATE: "1000", SEND_BURST: "1000", WRITER_QUEUE_MAX: "1", WRITER_BATCH_MS: "300" } });
  });
  afterAll(() => srv.stop());

  test("a send the writer cannot take is refused with the retryable 10006 (HTTP 200, Retry-After), never a 500; what is acked is stored", async () => {
    const t = await srv.user("301");
    await srv.user("302");
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        fetch(`${srv.url}${BASE}/message/sendMessage`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
          body: JSON.stringify({ uid: "301", to_uid: "302", message: { msg_type: 1, body: { text: `m${i}` } } }),
        }).then(async (r) => ({ status: r.status, retry: r.headers.get("retry-after"), body: (await r.json()) as any })),
      ),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const busy = answers.filter((a) => a.body.error_code);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) expect(b).toMatchObject({ retry: "1", body: { error_code: "10006" } });
    const acked = answers.filter((a) => a.body.datas).length;
    const n = rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = 'd:301:302'`))[0]!.n;
    expect(Number(n)).toBe(acked);
  });
});

describe("social API limits", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ store: "pglite", env: { SEND_RATE: "1", SEND_BURST: "2" } });
  });
  afterAll(() => srv.stop());

  test("sends over the user's rate are refused 10005 with Retry-After, not stored", async () => {
    const t = await srv.user("201");
    await srv.user("202");
    const send = () =>
      fetch(`${srv.url}${BASE}/message/sendMessage`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Bearer ${t}` },
        body: new URLSearchParams({ uid: "201", to_uid: "202", message: JSON.stringify({ msg_type: 1, body: { text: "x" } }) }).toString(),
      });
    expect(await (await send()).json()).toEqual({ datas: expect.any(String) });
    expect(await (await send()).json()).toEqual({ datas: expect.any(String) });
    const third = await send();
    expect(third.headers.get("retry-after")).toBe("1");
    expect(await third.json()).toMatchObject({ error_code: "10005" });
    const n = rowsOf<{ n: number }>(await srv.app.store.db.execute(sql`select count(*)::int as n from messages where conv_id = 'd:201:202'`))[0]!.n;
    expect(Number(n)).toBe(2);
  });
});
