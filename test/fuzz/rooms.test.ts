// Fuzz of the rooms protocol (/rooms, docs/rooms.md): mutations of every documented message and event, from
// NtoN room connections, an agent side and a user side. Every frame but the heartbeat text (and a move to the
// room the connection is in) is answered: an error frame, the sender's own stored message or event, or its
// notice. No close but a frame over MAX_FRAME_BYTES (1009), no internal error, the process stays up, and a
// normal client is served afterwards.
// Long run: FUZZ_FRAMES=100000 FUZZ_SEED=123 npm test -- test/fuzz
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { NodeProc } from "../helpers/procs.ts";
import { Conn } from "./lib/conn.ts";
import { fuzz, report, type Protocol } from "./lib/harness.ts";
import { mutateJson, type Mutator, type Wire } from "./lib/mutate.ts";
import { fuzzSettings } from "./lib/prng.ts";
import { CI_FRAMES, fuzzTarget, MAX_FRAME_BYTES, tokensFor, WORKERS } from "./lib/target.ts";

let node: NodeProc;
let tokens: Map<string, string>;
const { seed, frames, waitMs } = fuzzSettings(CI_FRAMES);
const HEARTBEAT = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97";
const USERS = ["ro0", "ro1", "ro2", "ro3", "ro4", "ro5", "ro6", "ro7", "li"];
const me = (i: number) => `ro${i}`;
/** Worker i's rule set: NtoN rooms, an agent side (roomName = own id) and a user side (containerId). */
function query(i: number): string {
  const mode = i % 4;
  if (mode === 2) return `roomName=${me(i)}`;
  if (mode === 3) return `roomName=ro${i - 1}&containerId=${me(i)}&targetId=order-1`;
  return "roomName=room-88";
}

function mutator(): Mutator {
  const seeds: Record<string, unknown>[] = [
    { messageContent: "大家好", messageType: "text", eventType: "ordinary" },
    { messageContent: "", messageType: "picture", eventType: "ordinary", accessoryContent: { file: "http://cdn.example.com/p/1.jpg", previewUrl: "http://cdn.example.com/p/1_s.jpg" } },
    { messageContent: "", messageType: "video", eventType: "ordinary", accessoryContent: { file: "http://cdn.example.com/v/1.mp4", previewUrl: "http://x/1.jpg", duration: 15 } },
    { messageContent: "", messageType: "voice", eventType: "ordinary", accessoryContent: '{"file":"http://cdn.example.com/a/1.amr","duration":4}' },
    { messageContent: "送出礼物", messageType: "event", eventType: "ordinary", accessoryContent: { eventType: "gift", eventDescription: "一朵玫瑰", customContent: '{"giftId":3}' } },
    { messageContent: "hi", messageType: "text", containerId: "ro3", userIcon: "http://x/u.png", acceptId: "ro2", targetId: "order-1" },
    { messageType: "text", eventType: "updateRoomName", messageContent: "room-99" },
    { messageType: "text", eventType: "updateRoomName", messageContent: "room-88" },
    { messageType: "text", eventType: "updateUserInfo", messageContent: "Lei Li", userIconUpdate: "http://cdn.example.com/u1001-new.png" },
    { messageType: "text", eventType: "createContainer", acceptId: "ro2", targetId: "order-2024", messageContent: "" },
    { messageType: "text", eventType: "addContainer", containerId: "ro3", messageContent: "" },
    { messageType: "text", eventType: "removeContainer", containerId: "ro3", messageContent: "" },
    { messageType: "text", eventType: "autoReturn", messageContent: "hours", containerId: "ro3" },
  ];
  return {
    seeds,
    keys: ["messageContent", "messageType", "eventType", "accessoryContent", "containerId", "targetId", "acceptId", "userIcon", "userIconUpdate", "roomName", "file", "duration"],
    values: [...USERS, "room-88", "room-99", "ro3", "ro7", "hours", "order-1", "text", "picture", "video", "voice", "event", "ordinary", "updateRoomName", "updateUserInfo", "createContainer", "addContainer", "removeContainer", "autoReturn", HEARTBEAT],
    typeKeys: ["eventType", "messageType"],
  };
}

const strOf = (v: unknown) => (typeof v === "string" ? v || undefined : typeof v === "number" && Number.isFinite(v) ? String(v) : undefined);

function protocol(): Protocol {
  const m = mutator();
  return {
    name: "rooms",
    async connect(i) {
      const c = await Conn.open(`${node.wsUrl}/rooms?token=${tokens.get(me(i))}&${query(i)}`);
      c.info.me = me(i);
      // The room and the containers this connection is in, from its own in/out notices (whatever frame they came after).
      const containers = (c.info.containers = new Set<string>());
      const onmessage = c.ws.onmessage!;
      c.ws.onmessage = (e) => {
        try {
          const f = typeof e.data === "string" ? JSON.parse(e.data) : undefined;
          if (f?.messageType === "notice" && f.action === "in" && f.userId === me(i) && f.containerId === undefined) c.info.room = f.roomName;
          if (f?.messageType === "notice" && typeof f.containerId === "string") {
            if (f.action === "in" && f.userId === me(i)) containers.add(f.containerId);
            else if (f.action === "outAll" || (f.action === "out" && f.userId === me(i))) containers.delete(f.containerId);
          }
        } catch {}
        onmessage.call(c.ws, e);
      };
      if (i % 4 < 2) {
        const w = await c.wait((f) => f.action === "in" && f.userId === me(i), 5000);
        if (!("frame" in w)) throw new Error(`${me(i)} did not enter: ${JSON.stringify(w)}`);
        c.info.room = "room-88";
      }
      return c;
    },
    generate: (r) => (r.chance(0.02) ? { text: HEARTBEAT } : mutateJson(r, m)),
    answer(w: Wire, c) {
      const raw = "text" in w ? w.text : Buffer.from(w.binary).toString("utf8");
      if (raw.trim() === HEARTBEAT) return undefined;
      let f: any;
      try {
        f = JSON.parse(raw);
      } catch {
        if (!/^\s*[[{]/.test(raw)) return undefined; // a bare text that is no JSON is dropped unanswered
      }
      // Moving to the room it is in already changes nothing (and says nothing).
      if (f && typeof f === "object" && strOf(f.eventType) === "updateRoomName" && c.info.room !== undefined && strOf(f.messageContent) === c.info.room) return undefined;
      // So does joining a container it is in already.
      if (f && typeof f === "object" && strOf(f.eventType) === "addContainer" && c.info.containers.has(strOf(f.containerId))) return undefined;
      const who = c.info.me;
      return (x) => {
        if (x == null) return false;
        if (x.action === "in" && x.userId === who && x.containerId === undefined) c.info.room = x.roomName;
        return x.messageType === "error" || x.createUser === who || (x.messageType === "notice" && x.userId === who) || x.eventType === "autoReturn";
      };
    },
    fault: (f) => (f?.messageType === "error" && f.code === 5000 ? "internal error (5000)" : undefined),
    // An unknown eventType is refused with an error that echoes it (as is a rate-limited frame).
    settle: (marker) => ({ wire: { text: JSON.stringify({ eventType: marker }) }, answer: (f) => f?.messageType === "error" && f.eventType === marker }),
  };
}

beforeAll(async () => {
  node = await fuzzTarget("rooms", { ROOMS_IDLE_MS: "600000" });
  tokens = await tokensFor(node, USERS);
  expect((await node.api("/api/rooms-protocol/auto-replies/hours", { content: "9:00-18:00", name: "bot" }, "PUT")).status).toBe(200);
  expect((await node.api("/api/rooms-protocol/accounts/default/li", { user: "li", password: "secret" }, "PUT")).status).toBe(200);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`rooms protocol fuzz (seed ${seed}, ${frames} frames)`, () => {
  test("every mutated frame is answered (error, own message or notice), no unexpected close, no internal error, the process stays up", async () => {
    const r = await fuzz(protocol(), { seed, frames, waitMs, workers: WORKERS, maxFrameBytes: MAX_FRAME_BYTES, proc: node.proc, log: node.log.all });
    report("rooms", seed, frames, r);
    expect(node.proc.exitCode).toBeNull();
    expect(r.failures).toEqual([]);
    // A normal client afterwards: logs in with its account, enters, and gets its message back once stored.
    const md5 = new Bun.CryptoHasher("md5").update("secret").digest("hex");
    const c = await Conn.open(`${node.wsUrl}/rooms?roomName=after-fuzz&account=li&password=${md5}`);
    expect("frame" in (await c.wait((f) => f.action === "in" && f.userId === "li", 5000))).toBe(true);
    c.send({ text: JSON.stringify({ messageContent: "after the fuzz", messageType: "text" }) });
    const echo = await c.wait((f) => f.createUser === "li", 5000);
    expect("frame" in echo && echo.frame.seq).toBe(1);
    c.close();
  }, Math.max(60_000, frames * 40));

  test("a frame over MAX_FRAME_BYTES closes with 1009", async () => {
    const c = await Conn.open(`${node.wsUrl}/rooms?token=${tokens.get("li")}&roomName=big`);
    c.send({ text: JSON.stringify({ messageContent: "x".repeat(MAX_FRAME_BYTES), messageType: "text" }) });
    expect(await c.closed(5000)).toBe(1009);
  });
});
