// The held polls of the livepush protocol (src/dialects/livepush/polls.ts) with the store and the hub faked: what a
// poll waits for before it is held, and what it leaves out of what it reads.
import { expect, test } from "bun:test";
import type { LpMessage } from "../../src/core/livepush-fields.ts";
import type { Message } from "../../src/core/types.ts";
import { Polls, type PollDeps } from "../../src/dialects/livepush/polls.ts";
import { livepushDialect } from "../../src/dialects/livepush/index.ts";

const msg = (id: string, seq: number): Message => ({ id, conv: "d:a:b", seq, from: "a", kind: "text", body: { content: id }, ts: seq });

function setup(pending: () => Promise<Message[]>, confirmAll: (user: string, msgs: Message[]) => Promise<void>) {
  const deps: PollDeps = {
    hub: { add() {}, bindUser: async () => {}, remove() {}, dispatch() {} },
    chat: { pending: async () => ({ msgs: await pending(), more: false }) as never, confirmAll: confirmAll as never },
    livepush: {
      view: async (_u: string, msgs: Message[]) => msgs.map((m) => ({ msg_id: m.id }) as LpMessage),
      cameOnline: async () => {},
    },
    presence: { isOnline: async () => true },
    clustered: false,
    dialect: livepushDialect,
    nodeId: "n1",
    pollMs: 60_000,
    graceMs: 60_000,
    pollMax: 100,
    log() {},
  };
  return new Polls(deps);
}

const req = () => new Request("http://x/app/im/user_conn.php");

test("the next poll reads while the previous answer's confirmation is written (not after it), and leaves the confirmed messages out", async () => {
  let stored = [msg("1", 1)];
  let release!: () => void;
  let reading!: () => void;
  let reads = 0;
  const readStarted = new Promise<void>((r) => (reading = r));
  const confirming: Message[][] = [];
  const polls = setup(
    async () => {
      if (++reads === 2) reading();
      return stored;
    },
    (_u, msgs) => {
      confirming.push(msgs);
      return new Promise<void>((r) => (release = r));
    },
  );
  const first = await polls.poll("b", "user", req());
  expect(first.msgs.map((m) => m.msg_id)).toEqual(["1"]);
  // "2" arrives (pushed while no poll is held); the next poll confirms "1", and its read starts before that write
  // lands (and sees "1" still).
  stored = [msg("1", 1), msg("2", 2)];
  (polls as unknown as { users: Map<string, { s: { ws: { send(f: string): void } } }> }).users.get("b")!.s.ws.send("m");
  const second = polls.poll("b", "user", req());
  expect(await Promise.race([readStarted.then(() => "reading"), Bun.sleep(2000).then(() => "waiting for the confirmation")])).toBe("reading");
  expect(confirming.map((c) => c.map((m) => m.id))).toEqual([["1"]]);
  release();
  expect(await second).toEqual({ result: 1, msgs: [{ msg_id: "2" } as LpMessage] });
  polls.closeAll();
});

test("a confirmation that fails answers result 8, and the poll after it confirms the same messages again", async () => {
  let fail = true;
  const confirmed: string[][] = [];
  const polls = setup(
    async () => [msg("1", 1)],
    async (_u, msgs) => {
      if (fail) throw new Error("store down");
      confirmed.push(msgs.map((m) => m.id));
    },
  );
  expect((await polls.poll("b", "user", req())).msgs.map((m) => m.msg_id)).toEqual(["1"]);
  expect(await polls.poll("b", "user", req())).toEqual({ result: 8, msgs: [] });
  fail = false;
  const third = polls.poll("b", "user", req());
  expect(await Promise.race([third, Bun.sleep(300).then(() => "held")])).toBe("held");
  expect(confirmed).toEqual([["1"]]);
  polls.closeAll();
  expect(await third).toEqual({ result: 3, msgs: [] });
});

test("a poll reads the store only when a read is due: not after an answer it confirms in full, nor after a timeout; after a push, a partial ack, an answer nobody took", async () => {
  let stored: Message[] = [];
  let reads = 0;
  const polls = setup(
    async () => (reads++, stored),
    async (_u, msgs) => {
      const ids = new Set(msgs.map((m) => m.id));
      stored = stored.filter((m) => !ids.has(m.id));
    },
  );
  const s = (polls as unknown as { users: Map<string, { s: { ws: { send(f: string): void } } }> }).users;
  const push = (m: Message) => {
    stored.push(m);
    s.get("b")!.s.ws.send("m");
  };
  const held = async (p: Promise<unknown>) => Promise.race([p, Bun.sleep(200).then(() => "held")]);
  // A fresh entry reads (what waited while she was offline).
  let p = polls.poll("b", "user", req());
  expect(await held(p)).toBe("held");
  expect(reads).toBe(1);
  // A push: read, answered.
  push(msg("1", 1));
  expect(((await p) as { msgs: LpMessage[] }).msgs.map((m) => m.msg_id)).toEqual(["1"]);
  expect(reads).toBe(2);
  // The next poll confirms it in full: no read.
  p = polls.poll("b", "user", req());
  expect(await held(p)).toBe("held");
  expect(reads).toBe(2);
  // A timeout's next poll (a second poll answers the first, empty): no read either.
  p = polls.poll("b", "user", req());
  expect(await held(p)).toBe("held");
  expect(reads).toBe(2);
  // Two messages; the client takes only the first (ack): the second is read again.
  stored.push(msg("2", 2));
  push(msg("3", 3));
  expect(((await p) as { msgs: LpMessage[] }).msgs.map((m) => m.msg_id)).toEqual(["2", "3"]);
  expect(reads).toBe(3);
  p = polls.poll("b", "user", req(), "2");
  expect(((await p) as { msgs: LpMessage[] }).msgs.map((m) => m.msg_id)).toEqual(["3"]);
  expect(reads).toBe(4);
  // An answer whose client went away: nobody took it, so the next poll reads it again.
  const ctl = new AbortController();
  const r = new Request("http://x/app/im/user_conn.php", { signal: ctl.signal });
  p = polls.poll("b", "user", r);
  expect(await held(p)).toBe("held");
  expect(reads).toBe(4);
  ctl.abort();
  push(msg("4", 4));
  const next = await polls.poll("b", "user", req());
  expect(next.msgs.map((m) => m.msg_id)).toEqual(["4"]);
  polls.closeAll();
});
