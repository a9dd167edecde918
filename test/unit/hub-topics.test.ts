// The hub's one index of who is where: the bus subscribes a user's or topic's channel when its first local
// session arrives and unsubscribes after its last (the bus keeps no count of its own), and a topic event is
// encoded once per codec and published once per codec from that same index.
import { describe, expect, test } from "bun:test";
import type { Server, ServerWebSocket } from "bun";
import { MemoryBroker, MemoryBus } from "../../src/bus/memory.ts";
import type { CoreEvent } from "../../src/core/types.ts";
import { peekMetric } from "../../src/core/metrics.ts";
import { Hub } from "../../src/hub/hub.ts";
import { NO_TOPICS, type Dialect, type Session } from "../../src/hub/session.ts";
import { MemoryPresence } from "../../src/presence/memory.ts";

class RecordingBus extends MemoryBus {
  readonly calls: string[] = [];
  override subscribe(channel: string): Promise<void> {
    this.calls.push(`+${channel}`);
    return super.subscribe(channel);
  }
  override unsubscribe(channel: string): void {
    this.calls.push(`-${channel}`);
    super.unsubscribe(channel);
  }
}

function dialect(name: string, encoded: string[]): Dialect {
  return {
    name,
    encode(ev: CoreEvent, codec: string) {
      encoded.push(codec);
      return `${codec}:${ev.type}`;
    },
    open() {},
    message() {},
    busy() {},
    close() {},
  };
}

let nextId = 0;
function session(d: Dialect, codec = d.name): Session {
  const subs = new Set<string>();
  const ws = {
    subscribe: (k: string) => void subs.add(k),
    unsubscribe: (k: string) => void subs.delete(k),
    isSubscribed: (k: string) => subs.has(k),
    getBufferedAmount: () => 0,
    send: () => 1,
    close() {},
  } as unknown as ServerWebSocket<Session>;
  return { id: `s${++nextId}`, dialect: d, codec, ws, closed: false, topics: NO_TOPICS as Set<string>, inflight: 0, refusedInRow: 0, state: {} };
}

describe("Hub", () => {
  test("subscribes a channel on its first local session and unsubscribes after its last, once each", async () => {
    const bus = new RecordingBus(new MemoryBroker());
    const hub = new Hub(bus, new MemoryPresence(), "n1", () => {});
    const d = dialect("native", []);
    const [a, b] = [session(d), session(d)];
    for (const s of [a, b]) hub.add(s);
    await hub.bindUser(a, "u1");
    await hub.bindUser(b, "u1");
    hub.join(a, "r:x");
    hub.join(b, "r:x");
    hub.join(b, "r:x"); // already in
    expect(bus.calls).toEqual(["+chat:u:u1", "+chat:t:r:x"]);
    expect(bus.subscriptions()).toBe(2);
    hub.leave(a, "r:x");
    hub.remove(a);
    expect(bus.calls).toHaveLength(2); // b is still here, in the topic
    hub.remove(b);
    expect(bus.calls.slice(2).sort()).toEqual(["-chat:t:r:x", "-chat:u:u1"]);
    expect(bus.subscriptions()).toBe(0);
    expect(b.topics.size).toBe(0);
  });

  test("a topic event is encoded once per codec and published once per codec, to the sessions of that index", () => {
    const hub = new Hub(new MemoryBus(), new MemoryPresence(), "n1", () => {});
    const published: [string, unknown][] = [];
    hub.addServer({ publish: (k: string, f: unknown) => void published.push([k, f]) } as unknown as Server<Session>);
    const encoded: string[] = [];
    const native = dialect("native", encoded);
    const jim = dialect("jim", encoded);
    const [n1, n2, j1] = [session(native), session(native), session(jim)];
    for (const s of [n1, n2, j1]) hub.join(s, "g:1");
    hub.publish("g:1", { type: "gap" });
    expect(encoded.sort()).toEqual(["jim", "native"]);
    expect(published.sort()).toEqual([["g:1|jim", "jim:gap"], ["g:1|native", "native:gap"]]);
    hub.leave(j1, "g:1");
    published.length = encoded.length = 0;
    hub.publish("g:1", { type: "gap" });
    expect(encoded).toEqual(["native"]);
    expect(published).toEqual([["g:1|native", "native:gap"]]);
    hub.leave(n1, "g:1");
    hub.leave(n2, "g:1");
    published.length = 0;
    hub.publish("g:1", { type: "gap" });
    expect(published).toEqual([]);
  });

  test("counts connections per protocol and a room's local sessions from its index, and forgets them as they go", () => {
    const hub = new Hub(new MemoryBus(new MemoryBroker()), new MemoryPresence(), "n1", () => {});
    const native = dialect("native", []);
    const rooms = dialect("rooms", []);
    const gauge = (dialect: string) => peekMetric("chat_connections_by_dialect", { dialect }) ?? 0;
    const before = gauge("rooms");
    const [a, b, c] = [session(native), session(native, "native-msgpack"), session(rooms)];
    for (const s of [a, b, c]) hub.add(s);
    expect(gauge("rooms")).toBe(before + 1);
    hub.join(a, "r:live");
    hub.join(b, "r:live");
    hub.join(c, "r:live");
    hub.join(c, "r:other");
    hub.join(a, "g:group");
    expect(Object.fromEntries(hub.connectionsByDialect())).toEqual({ native: 2, rooms: 1 });
    expect(Object.fromEntries(hub.roomCounts())).toEqual({ "r:live": 3, "r:other": 1 });
    hub.leave(b, "r:live");
    c.closed = true;
    hub.remove(c);
    hub.remove(c); // a second remove changes nothing
    expect(gauge("rooms")).toBe(before);
    expect(Object.fromEntries(hub.connectionsByDialect())).toEqual({ native: 2 });
    expect(Object.fromEntries(hub.roomCounts())).toEqual({ "r:live": 1 });
  });
});
