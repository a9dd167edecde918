// Adaptive room ticks (core/room-ticks.ts), on an injected clock and timers: frames are counted, nothing is timed.
import { expect, test } from "bun:test";
import { RoomTicks, TICK_BURST } from "../../src/core/room-ticks.ts";
import type { CoreEvent, RoomItem } from "../../src/core/types.ts";

const TICK = 50;

function rig() {
  let clock = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const frames: string[][] = [];
  /** what each tick sent on to the other nodes: its items, null for nothing, undefined for the same as here */
  const toOthers: (string[] | null | undefined)[] = [];
  const bodies = (ev: CoreEvent) => (ev as Extract<CoreEvent, { type: "room" }>).items.map((i) => (i.type === "msg" ? String(i.msg.body) : i.type));
  const ticks = new RoomTicks({
    store: { getUsers: async () => [] },
    tickMs: TICK,
    publish: (_conv: string, ev: CoreEvent, others?: CoreEvent | null) => {
      frames.push(bodies(ev));
      toOthers.push(others === undefined ? undefined : others && bodies(others));
    },
    count: async () => 0,
    log: () => {},
    now: () => clock,
    setTimer: (fn, ms) => {
      timers.set(++nextId, { at: clock + ms, fn });
      return nextId;
    },
    clearTimer: (t) => void timers.delete(t as number),
  });
  /** Moves the clock to `t`, firing every timer due by then in time order (each at its own moment). */
  const advance = async (t: number) => {
    for (;;) {
      const due = [...timers].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      timers.delete(due[0]);
      clock = Math.max(clock, due[1].at);
      due[1].fn();
      await Promise.resolve();
    }
    clock = t;
  };
  const msg = (body: string): RoomItem => ({ type: "msg", msg: { id: body, conv: "r:x", seq: 0, from: "u", kind: "text", body, ts: 0, class: "droppable" } as never });
  return { ticks, frames, toOthers, advance, msg, now: () => clock };
}

test("a quiet room sends each message at once: two messages far apart are two frames, neither waits for a tick", async () => {
  const r = rig();
  r.ticks.post("r:x", r.msg("a"));
  await r.advance(0); // the next turn of the event loop, no time passing
  expect(r.frames).toEqual([["a"]]);
  await r.advance(10 * TICK);
  r.ticks.post("r:x", r.msg("b"));
  await r.advance(10 * TICK);
  expect(r.frames).toEqual([["a"], ["b"]]);
});

test("a busy room coalesces: past its burst, everything posted within a tick goes out as one frame per tick", async () => {
  const r = rig();
  // A burst: one message per millisecond for 10 ticks (500 messages).
  let k = 0;
  for (let t = 0; t < 10 * TICK; t++) {
    await r.advance(t);
    r.ticks.post("r:x", r.msg(String(k++)));
  }
  await r.advance(12 * TICK);
  // Every message went out, once and in order.
  expect(r.frames.flat()).toEqual(Array.from({ length: k }, (_, i) => String(i)));
  // The burst's first frames went at once; then one frame per tick, as a fixed tick would send.
  expect(r.frames.length).toBeLessThanOrEqual(TICK_BURST + 11);
  expect(r.frames.slice(0, TICK_BURST).every((f) => f.length === 1)).toBe(true);
  expect(Math.max(...r.frames.map((f) => f.length))).toBeGreaterThanOrEqual(TICK - 1);
});

test("messages posted in the same turn share a frame even in a quiet room", async () => {
  const r = rig();
  for (const b of ["a", "b", "c"]) r.ticks.post("r:x", r.msg(b));
  await r.advance(0);
  expect(r.frames).toEqual([["a", "b", "c"]]);
});

test("a room that quietens sends at once again once its bucket refilled", async () => {
  const r = rig();
  for (let i = 0; i < TICK_BURST + 2; i++) {
    r.ticks.post("r:x", r.msg(`m${i}`));
    await r.advance(r.now() + 1);
  }
  await r.advance(r.now() + (TICK_BURST + 2) * TICK); // quiet for a while: the bucket is full again
  const sent = r.frames.length;
  expect(r.frames.flat()).toEqual(Array.from({ length: TICK_BURST + 2 }, (_, i) => `m${i}`));
  r.ticks.post("r:x", r.msg("late"));
  await r.advance(r.now());
  expect(r.frames.length).toBe(sent + 1);
  expect(r.frames.at(-1)).toEqual(["late"]);
});

test("another node's ticks are merged into this node's: one frame per tick here, and only this node's items sent on", async () => {
  const r = rig();
  // A busy room: its burst spent by three quick messages, then this node's and another node's messages in one tick.
  for (const b of ["a", "b", "c"]) {
    r.ticks.post("r:x", r.msg(b));
    await r.advance(0);
  }
  expect(r.frames).toEqual([["a"], ["b"], ["c"]]);
  r.ticks.post("r:x", r.msg("local1"));
  r.ticks.postRemote("r:x", [r.msg("remote1"), r.msg("remote2")], 7);
  r.ticks.post("r:x", r.msg("local2"));
  r.ticks.postRemote("r:x", [r.msg("remote3")]);
  await r.advance(TICK - 1);
  expect(r.frames.length).toBe(3); // nothing before the tick is due
  await r.advance(TICK);
  expect(r.frames.slice(3)).toEqual([["local1", "remote1", "remote2", "local2", "remote3"]]);
  expect(r.toOthers.slice(3)).toEqual([["local1", "local2"]]);
  // A tick of other nodes' items only: sent here, and nothing sent on.
  r.ticks.postRemote("r:x", [r.msg("remote4")]);
  await r.advance(2 * TICK);
  expect(r.frames.slice(4)).toEqual([["remote4"]]);
  expect(r.toOthers.slice(4)).toEqual([null]);
});
