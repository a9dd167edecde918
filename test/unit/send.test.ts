// Messaging.send decides from the conversation id which service takes a message: direct, group, desk, live room,
// rooms-protocol room or container. Each service here is a recorder.
import { expect, test } from "bun:test";
import { CoreError } from "../../src/core/errors.ts";
import { Messaging, type MessagingDeps } from "../../src/core/send.ts";

function messaging() {
  const calls: unknown[][] = [];
  const ack = (conv: string) => ({ id: "1", conv, seq: 1, ts: 0, dup: false });
  const rec = (name: string, conv: (...a: any[]) => string) => async (...a: any[]) => (calls.push([name, ...a]), ack(conv(...a)));
  const d = {
    chat: { userExists: async (u: string) => u !== "ghost", sendDirect: rec("direct", (_f, to) => `d:${to}`) },
    groups: { send: rec("group", (_f, g) => `g:${g}`) },
    desk: { send: rec("desk", (_f, g) => `c:desk:${g}`) },
    live: { send: rec("live.send", (_f, r) => `r:${r}`), publish: rec("live.publish", (_f, r) => `r:${r}`) },
    containers: { sendToRoom: rec("rooms.room", (_w, r) => `g:rooms:${r}`), sendToContainer: rec("rooms.container", (_w, c) => `c:rooms:${c}`) },
  } as unknown as MessagingDeps;
  return { m: new Messaging(d), calls };
}

const refused = async (p: Promise<unknown>) => {
  const e = await p.then(() => undefined, (x) => x);
  expect(e).toBeInstanceOf(CoreError);
  return e as CoreError;
};

test("every kind of conversation goes to the service that owns it", async () => {
  const { m, calls } = messaging();
  const input = { body: "hi", class: "must" as const };
  const me = { id: "ann", name: "Ann", icon: "a.png" };
  await m.send("ann", { to: "bob" }, input, { session: "s1" });
  await m.send("ann", { conv: "g:team" }, input);
  await m.send("ann", { conv: "c:desk:guest1" }, input);
  await m.send("ann", { conv: "r:io" }, input, { topics: new Set(["r:io"]) });
  await m.send("ann", { conv: "r:io" }, input, { trusted: true });
  await m.send("ann", { conv: "g:rooms:lobby" }, { body: { messageType: "text" } }, { speaker: me });
  await m.send("ann", { conv: "c:rooms:box:1" }, { body: { messageType: "text" } }, { speaker: me });
  expect(calls.map((c) => c[0])).toEqual(["direct", "group", "desk", "live.send", "live.publish", "rooms.room", "rooms.container"]);
  expect(calls[3]).toEqual(["live.send", "ann", "io", input]);
  expect(calls[5]).toEqual(["rooms.room", me, "lobby", { messageType: "text" }]);
  expect(calls[6]).toEqual(["rooms.container", me, "box:1", { messageType: "text" }]);
});

test("a client posts to a live room only from a connection in it", async () => {
  const { m, calls } = messaging();
  const e = await refused(m.send("ann", { conv: "r:io" }, { body: 1 }, { topics: new Set(["r:other"]) }));
  expect(e.name).toBe("not_member");
  expect(e.message).toBe("join room io first");
  expect(calls).toEqual([]);
});

test("rooms-protocol conversations take a speaker's rooms message only", async () => {
  const { m, calls } = messaging();
  for (const conv of ["g:rooms:lobby", "c:rooms:box"]) {
    expect((await refused(m.send("ann", { conv }, { body: "hi" }))).name).toBe("bad_request");
    expect((await refused(m.send("ann", { conv }, { body: "hi" }, { trusted: true }))).name).toBe("bad_request");
    expect((await refused(m.send("ann", { conv }, { body: "hi" }, { speaker: { id: "bob", name: "", icon: "" } }))).name).toBe("bad_request");
  }
  expect(calls).toEqual([]);
});
