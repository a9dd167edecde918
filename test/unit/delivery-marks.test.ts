// Delivered marks (core/delivery.ts) of pulled pages beside those of pushes: a page is stored only once its
// connection wrote the reply out, the pages of every user of a flush go in one statement, a connection that
// closes first leaves its page unmarked, and a user's flush waits for the statement holding its marks.
import { expect, test } from "bun:test";
import { DeliveryMarks, type PulledMark } from "../../src/core/delivery.ts";

interface Conn {
  user: string;
  writtenOut: boolean;
}

/** Marks over fake connections, with the statements they write recorded (and held until `release`). */
function marks() {
  const pulled: PulledMark[][] = [];
  const pushed: [string, Map<string, number[]>][] = [];
  let gate: Promise<void> = Promise.resolve();
  let open = () => {};
  const m = new DeliveryMarks<Conn>({
    advance: async (user, p) => {
      await gate;
      pushed.push([user, new Map([...p].map(([c, s]) => [c, [...s]]))]);
    },
    advancePulled: async (ms) => {
      await gate;
      pulled.push(ms.map((x) => ({ ...x })));
    },
    writtenOut: (c) => c.writtenOut,
    intervalMs: 60_000,
  });
  return {
    m,
    pulled,
    pushed,
    hold: () => (gate = new Promise((r) => (open = r))),
    release: () => open(),
  };
}

const page = (tops: [string, number][], skip?: string) => ({ tops: new Map(tops), skip });

test("the pages of all users of a flush are stored in one statement; a push stays a statement per user", async () => {
  const { m, pulled, pushed } = marks();
  const a: Conn = { user: "ann", writtenOut: true };
  const b: Conn = { user: "ben", writtenOut: true };
  m.acceptedPage(a, "ann", page([["d:ann:cat", 4], ["g:1", 9]], "sa"));
  m.acceptedPage(b, "ben", page([["d:ben:cat", 2]], "sb"));
  m.accepted(b, "ben", "g:1", 7);
  await m.flushAll();
  expect(pulled).toEqual([
    [
      { user: "ann", conv: "d:ann:cat", seq: 4, skip: "sa" },
      { user: "ann", conv: "g:1", seq: 9, skip: "sa" },
      { user: "ben", conv: "d:ben:cat", seq: 2, skip: "sb" },
    ],
  ]);
  expect(pushed).toEqual([["ben", new Map([["g:1", [7]]])]]);
  expect(m.heldCount()).toBe(0);
});

test("a page is held until its connection wrote the reply out, and dropped when it closes first", async () => {
  const { m, pulled } = marks();
  const slow: Conn = { user: "ann", writtenOut: false };
  const gone: Conn = { user: "ben", writtenOut: false };
  m.acceptedPage(slow, "ann", page([["d:ann:cat", 4]]));
  m.acceptedPage(gone, "ben", page([["d:ben:cat", 2]]));
  await m.flushAll();
  expect(pulled).toEqual([]);
  expect(m.heldCount()).toBe(2);
  m.closed(gone);
  slow.writtenOut = true;
  await m.flushAll();
  expect(pulled).toEqual([[{ user: "ann", conv: "d:ann:cat", seq: 4, skip: undefined }]]);
  expect(m.heldCount()).toBe(0);
});

test("pages of one conversation merge to the highest seq; two pulling sessions leave nobody skipped", async () => {
  const { m, pulled } = marks();
  const one: Conn = { user: "ann", writtenOut: true };
  const two: Conn = { user: "ann", writtenOut: true };
  m.acceptedPage(one, "ann", page([["g:1", 5]], "s1"));
  m.acceptedPage(one, "ann", page([["g:1", 3]], "s1"));
  m.acceptedPage(two, "ann", page([["g:2", 8]], "s2"));
  m.acceptedPage(two, "ann", page([["g:2", 9]], "s3"));
  m.acceptedPage(one, "ann", page([]));
  await m.flushAll();
  expect(pulled).toEqual([
    [
      { user: "ann", conv: "g:1", seq: 5, skip: "s1" },
      { user: "ann", conv: "g:2", seq: 9, skip: undefined },
    ],
  ]);
});

test("a user's flush resolves only after the statement in flight that holds its marks", async () => {
  const { m, pulled, hold, release } = marks();
  const a: Conn = { user: "ann", writtenOut: true };
  hold();
  m.acceptedPage(a, "ann", page([["g:1", 5]]));
  const all = m.flushAll();
  let flushed = false;
  const own = m.flush("ann").then(() => (flushed = true));
  // Nothing new for ann: her flush still waits for the statement holding her page.
  await Promise.resolve();
  expect(flushed).toBe(false);
  expect(pulled).toEqual([]);
  release();
  await Promise.all([all, own]);
  expect(flushed).toBe(true);
  expect(pulled).toEqual([[{ user: "ann", conv: "g:1", seq: 5, skip: undefined }]]);
  // Another user's flush waits for nothing.
  await m.flush("ben");
});
