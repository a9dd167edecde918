// The held polls of the livepush protocol (src/dialects/livepush/polls.ts) with the store and the hub faked: what a
// poll waits for before it is held, and what it leaves out of what it reads.
import { expect, test } from "bun:test";
import type { LpMessage } from "../../src/core/livepush.ts";
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
  // "2" arrives; the next poll confirms "1", and its read starts before that write lands (and sees "1" still).
  stored = [msg("1", 1), msg("2", 2)];
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
