// The livepush protocol on two nodes over Redis sharing one Postgres: a poll held on one node is answered by a
// message sent on the other; a poll on the other node answers the one held here; the samples of online hosts and
// male users (21: 10, 23: 30, 29: 50) are distinct, drawn from both nodes, and never an offline user. Against a
// single Redis and against the suite's Redis Cluster.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { rowsOf } from "../../src/store/db.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { freshPgUrl } from "../helpers/services.ts";
import { Livepush, waitOnline } from "../helpers/livepush.ts";

const range = (p: string, n: number) => Array.from({ length: n }, (_, i) => `${p}${i}`);
const HOSTS_A = range("ha", 17);
const HOSTS_B = range("hb", 17);
const OFF_HOSTS = range("hoff", 3);
const MALES_A = range("ma", 27);
const MALES_B = range("mb", 27);
const FEMALES = range("fu", 6);

describe.each(["redis", "redis-cluster"] as const)("livepush on two nodes over %s", (bus) => {
  let a: TestServer;
  let b: TestServer;
  const tok = new Map<string, string>();
  const on = (srv: TestServer, id: string) => new Livepush(srv.url, id, tok.get(id)!);

  beforeAll(async () => {
    const databaseUrl = await freshPgUrl();
    const env = { SEND_RATE: "1000", SEND_BURST: "1000", LIVEPUSH_POLL_SEC: "2", REDIS_PREFIX: `lpc${process.pid}:` };
    a = await startTestServer({ databaseUrl, bus, env: { ...env, NODE_ID: "lpa" } });
    b = await startTestServer({ databaseUrl, bus, env: { ...env, NODE_ID: "lpb" } });
    const old = { livepush_welcomed: 1 };
    const mk = async (id: string, fields: Record<string, unknown>) => tok.set(id, await a.user(id, { nick: id, attributes: old, ...fields }));
    for (const id of [...HOSTS_A, ...HOSTS_B, ...OFF_HOSTS]) await mk(id, { role: "host", sex: 2 });
    for (const id of [...MALES_A, ...MALES_B]) await mk(id, { sex: 1 });
    for (const id of FEMALES) await mk(id, { sex: 2 });
    await mk("vip", { sex: 1, vip: 1 });
    await mk("fh", { role: "host", sex: 2 });
  }, 60_000);
  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  /** Polls of `ids` (on A or B by name), then the ones answered with messages: id → its messages. */
  async function round(ids: string[], during: () => Promise<unknown>): Promise<Map<string, any[]>> {
    const polls = ids.map((id) => on(/^(ha|ma)/.test(id) ? a : b, id).poll().then((r) => [id, r] as const));
    await waitOnline(a, ids);
    await during();
    const got = new Map<string, any[]>();
    for (const [id, r] of await Promise.all(polls)) if (r.data.result === 1) got.set(id, r.data.msgs);
    // A poll that timed out before its push was committed: the push waits for the next poll.
    const again = await Promise.all(ids.filter((id) => !got.has(id)).map((id) => on(/^(ha|ma)/.test(id) ? a : b, id).poll().then((r) => [id, r] as const)));
    for (const [id, r] of again) if (r.data.result === 1) got.set(id, r.data.msgs);
    return got;
  }

  const storedFor = async (ids: string[]) =>
    Number(
      rowsOf<{ n: number }>(
        await a.app.store.db.execute(sql`select count(*)::int as n from messages where body->>'receive_uid' in (${sql.join(ids.map((i) => sql`${i}`), sql`, `)})`),
      )[0]!.n,
    );

  test("a poll held on one node is answered by a message sent on the other; a poll there answers it at once", async () => {
    const m = on(b, "ma0");
    const held = m.poll();
    await waitOnline(a, ["ma0"]);
    const s = await on(a, "vip").send({ to_uid: "ma0", content: "across nodes" });
    expect((await held).data.msgs).toEqual([expect.objectContaining({ msg_id: s.data.msg_id, uid: "vip", content: "across nodes" })]);
    // Confirmed by the user's next poll (on the node that answered it).
    expect((await on(b, "ma0").poll()).data).toEqual({ result: 3, msgs: [] });
    // The same user polls on both nodes at once: whichever is held first is answered at once, empty, through
    // the user's channel, when the other arrives.
    const polls = [on(b, "ma0").poll(), on(a, "ma0").poll()];
    const t0 = Date.now();
    const first = await Promise.race(polls.map((p) => p));
    expect(first.data).toEqual({ result: 3, msgs: [] });
    expect(Date.now() - t0).toBeLessThan(1500);
    await Promise.all(polls);
  });

  test("21: a VIP comes online → 10 distinct online hosts; 23: a VIP purchase → 30; never an offline host", async () => {
    const hosts = [...HOSTS_A, ...HOSTS_B];
    const r21 = await round(hosts, () => on(a, "vip").poll());
    const told21 = [...r21].filter(([, msgs]) => msgs.some((m) => m.chat_type === 21));
    expect(told21).toHaveLength(10);
    for (const [id, msgs] of told21) expect(msgs).toEqual([expect.objectContaining({ chat_type: 21, uid: "vip", receive_uid: id, user_info: expect.objectContaining({ id: "vip", vip: "1" }) })]);
    const r23 = await round(hosts, async () => expect((await b.api("/api/livepush/users/vip/vip", { body: {} })).body).toEqual({ told: 30 }));
    const told23 = [...r23].filter(([, msgs]) => msgs.some((m) => m.chat_type === 23)).map(([id]) => id);
    expect(new Set(told23).size).toBe(30);
    expect(told23.some((h) => HOSTS_A.includes(h)) && told23.some((h) => HOSTS_B.includes(h))).toBe(true);
    expect(await storedFor(OFF_HOSTS)).toBe(0);
    // Never the user herself: a host's own purchase is told to 30 other hosts.
    const own = await round(hosts, async () => expect((await a.api("/api/livepush/users/ha0/vip", { body: {} })).body).toEqual({ told: 30 }));
    const toldOwn = [...own].filter(([, msgs]) => msgs.some((m) => m.chat_type === 23 && m.uid === "ha0")).map(([id]) => id);
    expect(new Set(toldOwn).size).toBe(30);
    expect(toldOwn).not.toContain("ha0");
  });

  test("29: a female host with hosting comes online → 50 distinct online male users from both nodes, never a female; her 50 copies", async () => {
    expect((await a.api("/api/livepush/hosting/fh", { method: "PUT", body: { on: true, greeting: "来聊天呀" } })).status).toBe(200);
    const copies: any[] = [];
    // The VIP of the test before is a male user online too.
    const got = await round([...MALES_A, ...MALES_B, ...FEMALES, "vip"], async () => {
      const fh = on(b, "fh");
      while (copies.length < 50) copies.push(...(await fh.msgs()));
    });
    const told = [...got].filter(([, msgs]) => msgs.some((m) => m.chat_type === 29)).map(([id]) => id);
    expect(new Set(told).size).toBe(50);
    expect(told.every((u) => u.startsWith("m") || u === "vip")).toBe(true);
    expect(told.some((u) => MALES_A.includes(u)) && told.some((u) => MALES_B.includes(u))).toBe(true);
    expect(copies.map((c) => c.receive_uid).sort()).toEqual([...told].sort());
    for (const c of copies) expect(c).toMatchObject({ chat_type: 29, uid: "fh", content: "来聊天呀" });
  });

  test("26: hosting set on one node holds on the other at once; a host auto-replies once per window across nodes", async () => {
    expect((await a.api("/api/livepush/hosting/hb1", { method: "PUT", body: { on: true, replies: ["稍等哦"] } })).status).toBe(200);
    // mb1 polls on B (as before); its first message goes through B, the second through A.
    await on(b, "mb1").send({ to_uid: "hb1", content: "你好" });
    const got: any[] = [];
    while (!got.some((m) => m.chat_type === 26)) got.push(...(await on(b, "mb1").msgs()));
    expect(got.filter((m) => m.chat_type === 26)).toEqual([expect.objectContaining({ uid: "hb1", receive_uid: "mb1", content: "稍等哦" })]);
    expect((await on(a, "mb1").send({ to_uid: "hb1", content: "在吗" })).data.result).toBe(1);
    const hers: any[] = [];
    // Her copy of the reply is committed on B after the reply itself, so "在吗" (committed on A) may reach her first.
    const copy = (m: any) => m.chat_type === 26 && m.receive_uid === "mb1";
    while (!hers.some((m) => m.content === "在吗") || !hers.some(copy)) hers.push(...(await on(b, "hb1").msgs()));
    expect(hers.filter(copy)).toHaveLength(1);
    expect((await on(b, "mb1").poll()).data).toEqual({ result: 3, msgs: [] });
  });
});
