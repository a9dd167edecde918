// J-IM pages of both generations against two nodes over Redis sharing one Postgres (docs/jim.md, "Two
// generations" and "Online and offline"): the online panel a page keeps from cmd 17 and commands 9 and 10, and
// every field a 2.x page and a 3.x page read from group chat, offline pulls and history.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Client } from "../helpers/client.ts";
import { protocols, type JimClient } from "../helpers/protocol/index.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPgUrl } from "../helpers/services.ts";

const { jim } = protocols;
let a: TestServer;
let b: TestServer;
const keep: Client[] = [];
const tok: Record<string, string> = {};

const login = (srv: TestServer, user: string) => jim.login(srv, user, { token: tok[user], keep });
const group = async (id: string, owner: string, members: string[]) =>
  expect((await a.api("/api/groups", { body: { id, kind: "interest", owner, name: id, members } })).status).toBe(200);

beforeAll(async () => {
  const databaseUrl = await freshPgUrl();
  const env = { SEND_RATE: "1000", SEND_BURST: "1000", REDIS_PREFIX: `jc${process.pid}${Date.now().toString(36)}:` };
  a = await startTestServer({ databaseUrl, bus: "redis", env });
  b = await startTestServer({ databaseUrl, bus: "redis", env });
  for (const u of ["w2", "w3", "p1", "p3", "s2", "s3", "snd"]) tok[u] = await jim.register(a, u);
  await group("team", "w2", ["w3", "p1", "p3"]);
  await group("team2", "w2", ["w3", "p1"]);
  await group("gen", "snd", ["s2", "s3"]);
}, 30_000);

afterAll(async () => {
  for (const c of keep) if (!c.isClosed) await c.close();
  await a.stop();
  await b.stop();
});

/**
 * The online panel of a J-IM page: per group, the members online, loaded from cmd 17 type 0 and then kept by
 * commands 9 (in) and 10 (out), each read the way its generation reads it: 2.x `data.group`, `data.user.id`,
 * `group_id` and `users[].id`; 3.x `group`, `user.userId`, `groupId` and `users[].userId`.
 */
class Panel {
  readonly groups = new Map<string, Set<string>>();
  constructor(
    readonly c: JimClient,
    readonly me: string,
    readonly gen: 2 | 3,
  ) {}

  /** What cmd 17 type 0 answers now (the presence service's view), read as this generation reads it. */
  async fetch(): Promise<Record<string, string[]>> {
    const r = await this.c.request({ cmd: 17, type: "0", userId: this.me });
    expect(r.code).toBe(10005);
    expect(this.gen === 2 ? r.data.id : r.data.userId).toBe(this.me);
    const out: Record<string, string[]> = {};
    for (const g of r.data.groups) {
      const id = this.gen === 2 ? g.group_id : g.groupId;
      expect(typeof id).toBe("string");
      out[id] = g.users.map((u: any) => (this.gen === 2 ? u.id : u.userId)).sort();
    }
    return out;
  }

  async load(): Promise<void> {
    for (const [g, users] of Object.entries(await this.fetch())) this.groups.set(g, new Set(users));
  }

  view(): Record<string, string[]> {
    return Object.fromEntries([...this.groups].map(([g, s]) => [g, [...s].sort()]));
  }

  /** Applies one command 9 or 10; returns it as "+user@group" or "-user@group". */
  apply(f: any): string {
    const g: string = this.gen === 2 ? f.data.group : f.group;
    const u: string = this.gen === 2 ? f.data.user.id : f.user.userId;
    expect(typeof g).toBe("string");
    expect(typeof u).toBe("string");
    let set = this.groups.get(g);
    if (!set) this.groups.set(g, (set = new Set()));
    if (f.command === 9) set.add(u);
    else set.delete(u);
    return `${f.command === 9 ? "+" : "-"}${u}@${g}`;
  }

  /**
   * Applies the commands 9 and 10 that arrive before the group message `probe`, and returns them sorted. The probe
   * is sent after the step under test, so a notice of that step would come before it.
   */
  async until(probe: string): Promise<string[]> {
    const seen: string[] = [];
    for (;;) {
      const f = await this.c.next((x) => x.command === 9 || x.command === 10 || (x.command === 11 && x.data.content === probe));
      if (f.command === 11) return seen.sort();
      seen.push(this.apply(f));
    }
  }

  /** Applies exactly `n` commands 9 or 10, awaited. */
  async take(n: number): Promise<string[]> {
    const seen: string[] = [];
    while (seen.length < n) seen.push(this.apply(await this.c.next((x) => x.command === 9 || x.command === 10)));
    return seen.sort();
  }
}

/** `c` posts `text` to group `g` (the probe the panels wait for). */
async function probe(c: JimClient, g: string, text: string): Promise<void> {
  expect(await c.request({ cmd: 11, chatType: 1, groupId: g, content: text })).toMatchObject({ code: 10000 });
}

describe("online panels across two nodes", () => {
  test("a login, a second connection, a last disconnect: one notice per user per group, to its groups only", async () => {
    // The 2.x page on node B, the 3.x page on node A; both are in team and team2.
    const w2 = new Panel(await login(b, "w2"), "w2", 2);
    const w3 = new Panel(await login(a, "w3"), "w3", 3);
    await w2.load();
    await w3.load();
    const panels = [w2, w3];
    const agree = async (want: Record<string, string[]>) => {
      for (const p of panels) {
        expect(p.view()).toEqual(want);
        expect(await p.fetch()).toEqual(want);
      }
    };
    // w3's login (node A) reached w2 (node B) in both groups; each page also hears of its own login.
    await probe(w3.c, "team", "p0");
    expect(await w2.until("p0")).toEqual(["+w2@team", "+w2@team2", "+w3@team", "+w3@team2"]);
    // (a sender does not get its own message back: the other page probes)
    await probe(w2.c, "team", "p0b");
    expect(await w3.until("p0b")).toEqual(["+w3@team", "+w3@team2"]);
    await agree({ team: ["w2", "w3"], team2: ["w2", "w3"] });

    // p1 logs in on node A: members on both nodes are told, once for each group p1 is in.
    const p1 = await login(a, "p1");
    await probe(p1, "team", "p1-in");
    for (const p of panels) expect(await p.until("p1-in")).toEqual(["+p1@team", "+p1@team2"]);
    await agree({ team: ["p1", "w2", "w3"], team2: ["p1", "w2", "w3"] });

    // A second connection of p1 (node B): p1 was online already, nobody is told.
    const p1b = await login(b, "p1");
    await probe(p1b, "team", "p1b-in");
    for (const p of panels) expect(await p.until("p1b-in")).toEqual([]);

    // p1's first connection closes: p1 is still online on node B, nobody is told.
    await p1.close();
    await probe(p1b, "team", "p1-half");
    for (const p of panels) expect(await p.until("p1-half")).toEqual([]);
    await agree({ team: ["p1", "w2", "w3"], team2: ["p1", "w2", "w3"] });

    // p3 (in team only) logs in: team2's members hear nothing of it.
    const p3 = await login(a, "p3");
    await probe(p3, "team", "p3-in");
    for (const p of panels) expect(await p.until("p3-in")).toEqual(["+p3@team"]);
    await agree({ team: ["p1", "p3", "w2", "w3"], team2: ["p1", "w2", "w3"] });

    // p1's last connection closes (node B): out of both groups, on both nodes.
    await p1b.close();
    for (const p of panels) expect(await p.take(2)).toEqual(["-p1@team", "-p1@team2"]);
    await probe(p3, "team", "p1-out");
    for (const p of panels) expect(await p.until("p1-out")).toEqual([]);
    await agree({ team: ["p3", "w2", "w3"], team2: ["w2", "w3"] });

    await p3.close();
    for (const p of panels) expect(await p.take(1)).toEqual(["-p3@team"]);
    await agree({ team: ["w2", "w3"], team2: ["w2", "w3"] });
  });
});

describe("2.x and 3.x pages", () => {
  test("each reads the group, the users and command 9 from live chat, offline pulls and history; both spellings are accepted", async () => {
    const snd = await login(a, "snd");
    // Offline first: s2 and s3 are away while snd writes to the group (3.x spelling) and to each of them.
    expect(await snd.request({ cmd: 11, chatType: 1, groupId: "gen", content: "while away 1" })).toMatchObject({ code: 10000 });
    expect(await snd.request({ cmd: 11, chatType: 1, group_id: "gen", content: "while away 2" })).toMatchObject({ code: 10000 });
    for (const to of ["s2", "s3"]) expect(await snd.request({ cmd: 11, chatType: 2, to, content: `dm ${to}` })).toMatchObject({ code: 10001 });

    // The 2.x page logs in on node B, the 3.x page on node A; snd (node A) is told of both in "gen".
    const s2 = await login(b, "s2");
    const s3 = await login(a, "s3");
    const other = (f: any) => f.command === 9 && f.data.user.id !== "snd";
    const nine = [await snd.next(other), await snd.next(other)];
    expect(nine.map((f) => f.data.user.id).sort()).toEqual(["s2", "s3"]); // 2.x
    expect(nine.map((f) => f.user.userId).sort()).toEqual(["s2", "s3"]); // 3.x
    expect(nine.map((f) => [f.data.group, f.group])).toEqual([["gen", "gen"], ["gen", "gen"]]);

    // Offline pull (2.x asks with user_id, 3.x with userId).
    const off2 = await s2.request({ cmd: 19, type: 0, user_id: "s2" });
    expect(off2).toMatchObject({ code: 10016, data: { userid: "s2" } });
    expect(off2.data.groups.gen.map((m: any) => [m.group_id, m.from, m.content])).toEqual([["gen", "snd", "while away 1"], ["gen", "snd", "while away 2"]]);
    expect(off2.data.friends.snd.map((m: any) => [m.from, m.to, m.content])).toEqual([["snd", "s2", "dm s2"]]);
    const off3 = await s3.request({ cmd: 19, type: 0, userId: "s3" });
    expect(off3).toMatchObject({ code: 10016, data: { userId: "s3" } });
    expect(off3.data.groups.gen.map((m: any) => [m.groupId, m.from, m.content])).toEqual([["gen", "snd", "while away 1"], ["gen", "snd", "while away 2"]]);

    // Live group chat, both spellings in, both read out.
    expect(await s2.request({ cmd: 11, chatType: 1, group_id: "gen", content: "from 2.x" })).toMatchObject({ code: 10000 });
    expect(await s3.request({ cmd: 11, chatType: 1, groupId: "gen", content: "from 3.x" })).toMatchObject({ code: 10000 });
    const live2 = await s2.next((f) => f.command === 11 && f.data.content === "from 3.x");
    expect([live2.data.group_id, live2.data.from, live2.data.to]).toEqual(["gen", "s3", "gen"]);
    const live3 = await s3.next((f) => f.command === 11 && f.data.content === "from 2.x");
    expect([live3.data.groupId, live3.data.from, live3.data.to]).toEqual(["gen", "s2", "gen"]);

    // History of the group (2.x asks with group_id).
    const h2 = await s2.request({ cmd: 19, type: 1, userId: "s2", group_id: "gen" });
    const h3 = await s3.request({ cmd: 19, type: 1, userId: "s3", groupId: "gen" });
    const texts = ["while away 1", "while away 2", "from 2.x", "from 3.x"];
    expect(h2.data.groups.gen.map((m: any) => [m.group_id, m.content])).toEqual(texts.map((t) => ["gen", t]));
    expect(h3.data.groups.gen.map((m: any) => [m.groupId, m.content])).toEqual(texts.map((t) => ["gen", t]));

    // The 3.x page's member list gives user ids it can send to; its contacts (type 1) name them as userId too.
    const members = await s3.request({ cmd: 17, type: "0", userId: "s3" });
    const gen = members.data.groups.find((g: any) => g.groupId === "gen");
    expect(gen.users.map((u: any) => u.userId).sort()).toEqual(["s2", "s3", "snd"]);
    const to = gen.users.find((u: any) => u.nick === "SND").userId;
    expect(await s3.request({ cmd: 11, chatType: 2, to, content: "private from 3.x" })).toEqual({ code: 10000, command: 12, msg: "ok 发送成功" });
    expect((await snd.next((f) => f.command === 11 && f.data.content === "private from 3.x")).data.from).toBe("s3");
    const contacts = await s3.request({ cmd: 17, type: "1", userId: "s3" });
    expect(contacts.data.map((u: any) => u.userId)).toEqual(["snd"]);
    // ... and the 2.x page reads the same lists by id and group_id.
    const m2 = await s2.request({ cmd: 17, type: "0", userid: "s2" });
    expect(m2.data.groups.find((g: any) => g.group_id === "gen").users.map((u: any) => u.id).sort()).toEqual(["s2", "s3", "snd"]);

    // A recall in the group names the group both ways.
    expect(await snd.request({ cmd: 11, chatType: 1, groupId: "gen", content: "oops", id: "0123456789abcdef0123456789abcdef" })).toMatchObject({ code: 10000 });
    expect(await snd.request({ cmd: 15, id: "0123456789abcdef0123456789abcdef" })).toMatchObject({ code: 10000, command: 16 });
    const r2 = await s2.next((f) => f.command === 15);
    expect([r2.data.group_id, r2.data.groupId, r2.data.id]).toEqual(["gen", "gen", "0123456789abcdef0123456789abcdef"]);
  });

  test("`account` + `password` log in like `username`", async () => {
    expect((await a.api("/api/users", { body: { id: "acct", nick: "ACCT", password: "s3cret" } })).status).toBe(200);
    const c = await jim.connect(b, { account: "acct", password: "s3cret" }, { keep });
    expect(await c.next()).toEqual(jim.LOGIN_OK);
    const bad = await jim.connect(b, { account: "acct", password: "wrong" }, { keep });
    expect(await bad.next()).toEqual({ code: 10008, command: 6, msg: "login failed ! 登录失败!" });
    expect((await bad.closed).code).toBe(4001);
  });
});
