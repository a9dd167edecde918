// Corked turns (Hub.corkTurn): frames sent after a batch committed are written per socket in one corked write,
// in order; a topic publish and a socket's close write what is held first.
import { expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { MemoryBus } from "../../src/bus/memory.ts";
import type { CoreEvent } from "../../src/core/types.ts";
import { Hub } from "../../src/hub/hub.ts";
import { NO_TOPICS, type Dialect, type Session } from "../../src/hub/session.ts";
import { MemoryPresence } from "../../src/presence/memory.ts";

const dialect: Dialect = { name: "native", encode: (ev: CoreEvent) => `ev:${ev.type}`, open() {}, message() {}, busy() {}, close() {} };
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

let n = 0;
/** A fake socket recording its writes: `c` marks the start of a corked write. */
function session(log: string[]): Session {
  const name = `s${++n}`;
  let corked = false;
  const ws = {
    subscribe() {},
    unsubscribe() {},
    isSubscribed: () => true,
    getBufferedAmount: () => 0,
    send: (f: string) => (log.push(`${name}${corked ? "" : " uncorked"}:${f}`), 1),
    cork(fn: () => void) {
      corked = true;
      log.push(`${name} cork`);
      try {
        fn();
      } finally {
        corked = false;
      }
    },
    close() {},
  } as unknown as ServerWebSocket<Session>;
  return { id: name, dialect, codec: "native", ws, closed: false, topics: NO_TOPICS as Set<string>, inflight: 0, refusedInRow: 0, state: {} };
}

test("frames sent in a corked turn are written at its end, one corked write per socket, in order", async () => {
  const hub = new Hub(new MemoryBus(), new MemoryPresence(), "n1", () => {});
  const log: string[] = [];
  const [a, b] = [session(log), session(log)];
  hub.corkTurn();
  hub.send(a, "1");
  hub.send(b, "x");
  hub.send(a, ["2", "3"]);
  expect(log).toEqual([]);
  await nextTurn();
  expect(log).toEqual([`${a.id} cork`, `${a.id}:1`, `${a.id}:2`, `${a.id}:3`, `${b.id} cork`, `${b.id}:x`]);
  // Past the turn, a frame is written at once again.
  hub.send(a, "4");
  expect(log.at(-1)).toBe(`${a.id} uncorked:4`);
});

test("a topic publish writes what the corked turn holds first", async () => {
  const hub = new Hub(new MemoryBus(), new MemoryPresence(), "n1", () => {});
  const log: string[] = [];
  hub.addServer({ publish: (k: string, f: string) => void log.push(`publish ${k} ${f}`) } as unknown as Server<Session>);
  const a = session(log);
  hub.add(a);
  hub.join(a, "r:x");
  hub.corkTurn();
  hub.send(a, "ack");
  hub.publish("r:x", { type: "room", conv: "r:x", items: [] });
  expect(log).toEqual([`${a.id} cork`, `${a.id}:ack`, "publish r:x|native ev:room"]);
});

test("a socket closed in a corked turn gets the frames sent to it before the close", async () => {
  const hub = new Hub(new MemoryBus(), new MemoryPresence(), "n1", () => {});
  const server = Bun.serve<Session>({
    port: 0,
    fetch: (req, srv) => (srv.upgrade(req, { data: { id: "real", dialect, codec: "native", closed: false, topics: NO_TOPICS, inflight: 0, refusedInRow: 0, state: {} } as never }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open(ws) {
        const s = ws.data;
        s.ws = ws;
        hub.add(s);
        hub.corkTurn();
        hub.send(s, "login failed");
        ws.close(4001, "bye");
      },
      message() {},
    },
  });
  try {
    const got: string[] = [];
    const closed = await new Promise<number>((resolve) => {
      const c = new WebSocket(`ws://127.0.0.1:${server.port}`);
      c.onmessage = (e) => void got.push(String(e.data));
      c.onclose = (e) => resolve(e.code);
    });
    expect(got).toEqual(["login failed"]);
    expect(closed).toBe(4001);
  } finally {
    server.stop(true);
  }
});
