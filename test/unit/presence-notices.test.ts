// Presence notices (core/presence-notices.ts): the changes that come in while a lookup is under way are looked
// up together in the next one, told in the order they came, each to the online members of the user's groups.
import { expect, test } from "bun:test";
import { PresenceNotices } from "../../src/core/presence-notices.ts";
import type { CoreEvent } from "../../src/core/types.ts";

type Group = { conv: string; name: string; members: string[] };

/** Notices over an in-memory membership and presence, with the lookups recorded (and held until `release`). */
function notices(groups: Record<string, Group[]>, online: string[]) {
  const lookups: string[][] = [];
  const named: string[][] = [];
  const events: Extract<CoreEvent, { type: "presence" }>[] = [];
  const logs: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  let failNext = false;
  const n = new PresenceNotices({
    memberships: {
      conversationsWithMembersOf: async (users) => {
        lookups.push([...users]);
        await gate;
        if (failNext) {
          failNext = false;
          throw new Error("store away");
        }
        return new Map(users.filter((u) => groups[u]).map((u) => [u, groups[u]!]));
      },
    },
    users: {
      getUsers: async (ids) => {
        named.push([...ids]);
        return ids.map((id) => ({ id, nick: id.toUpperCase() }) as never);
      },
    },
    presence: { onlineOf: async (ids) => new Set(ids.filter((u) => online.includes(u))) },
    emit: (ev) => void (ev.type === "presence" && events.push(ev)),
    log: (m) => void logs.push(m),
  });
  return {
    n,
    lookups,
    named,
    events,
    logs,
    hold: () => (gate = new Promise((r) => (open = r))),
    release: () => open(),
    fail: () => (failNext = true),
  };
}

const g1: Group = { conv: "g:one", name: "One", members: ["ann", "ben", "cat"] };
const g2: Group = { conv: "g:two", name: "Two", members: ["ann", "dan"] };

test("changes that come in during a lookup are looked up together next, and told in the order they came", async () => {
  const t = notices({ ann: [g1, g2], ben: [g1] }, ["ben", "cat", "dan"]);
  t.hold();
  const first = t.n.changed("ann", "online");
  // While ann's lookup is under way: three more, one of them ann again.
  const rest = [t.n.changed("ben", "offline"), t.n.changed("eve", "online"), t.n.changed("ann", "offline")];
  expect(t.lookups).toEqual([["ann"]]);
  t.release();
  await Promise.all([first, ...rest]);
  expect(t.lookups).toEqual([["ann"], ["ben", "eve", "ann"]]);
  expect(t.events.map((e) => [e.user.id, e.change, e.conv, e.to])).toEqual([
    // ann online: the online members of each group, and ann itself (its own connections see it come in)
    ["ann", "online", "g:one", ["ann", "ben", "cat"]],
    ["ann", "online", "g:two", ["ann", "dan"]],
    // ben offline: the others online, not ben; eve is in no group
    ["ben", "offline", "g:one", ["cat"]],
    ["ann", "offline", "g:one", ["ben", "cat"]],
    ["ann", "offline", "g:two", ["dan"]],
  ]);
  expect(t.events.every((e) => e.user.nick === e.user.id.toUpperCase())).toBe(true);
  // Names asked once per batch, only of users with someone to tell.
  expect(t.named).toEqual([["ann"], ["ben", "ann"]]);
  await t.n.settled();
});

test("users in no group, or with nobody online to tell, cost a lookup and no names", async () => {
  const t = notices({ ann: [g2] }, []);
  // The first goes at once (a quiet node does not wait), the second behind it.
  await Promise.all([t.n.changed("zed", "online"), t.n.changed("ann", "offline")]);
  expect(t.lookups).toEqual([["zed"], ["ann"]]);
  expect(t.named).toEqual([]);
  expect(t.events).toEqual([]);
});

test("a failed lookup costs that batch's notices only: logged, and the next batch is told", async () => {
  const t = notices({ ann: [g2] }, ["dan"]);
  t.fail();
  await t.n.changed("ann", "online");
  expect(t.events).toEqual([]);
  expect(t.logs.length).toBe(1);
  expect(t.logs[0]).toContain("store away");
  await t.n.changed("ann", "offline");
  expect(t.events.map((e) => [e.user.id, e.change, e.to])).toEqual([["ann", "offline", ["dan"]]]);
});

test("settled waits for every change queued, however many batches it takes", async () => {
  const t = notices({ ann: [g2] }, ["dan"]);
  t.hold();
  void t.n.changed("ann", "online");
  for (let i = 0; i < 1200; i++) void t.n.changed(`u${i}`, "online");
  const done = t.n.settled();
  t.release();
  await done;
  // The first alone, then the 1,200 queued behind it in slices of NOTICE_BATCH (500).
  expect(t.lookups.map((l) => l.length)).toEqual([1, 500, 500, 200]);
  expect(t.events.length).toBe(1);
});
