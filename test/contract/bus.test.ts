// One contract for the Bus, run against the in-process broker, real Redis and a real Redis Cluster (sharded pub/sub).
import { afterAll, describe, expect, test } from "bun:test";
import type { Logger } from "../../src/app.ts";
import type { Bus } from "../../src/bus/bus.ts";
import { MemoryBroker, MemoryBus } from "../../src/bus/memory.ts";
import { RedisBus } from "../../src/bus/redis.ts";
import { redisClusterUrls, redisUrl } from "../helpers/services.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const impls: [string, () => Promise<[Bus, Bus]>][] = [
  ["memory", async () => { const b = new MemoryBroker(); return [new MemoryBus(b), new MemoryBus(b)]; }],
  ["redis", async () => [await RedisBus.connect(redisUrl(), quiet), await RedisBus.connect(redisUrl(), quiet)]],
  ["redis cluster", async () => [await RedisBus.connect({ cluster: redisClusterUrls() }, quiet), await RedisBus.connect({ cluster: redisClusterUrls() }, quiet)]],
];

function inbox(bus: Bus) {
  const got: [string, string][] = [];
  const raw: number[][] = [];
  const waiters: (() => void)[] = [];
  bus.onMessage((ch, p) => {
    got.push([ch, new TextDecoder().decode(p)]);
    raw.push(Array.from(p));
    waiters.splice(0).forEach((w) => w());
  });
  return {
    got,
    raw,
    async until(n: number) {
      while (got.length < n) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

for (const [name, make] of impls) {
  describe(`Bus on ${name}`, async () => {
    const [a, b] = await make();
    afterAll(async () => { await a.close(); await b.close(); });
    const enc = (s: string) => new TextEncoder().encode(s);

    test("delivers to subscribed nodes only, once however often subscribed, and stops after unsubscribe", async () => {
      const inB = inbox(b);
      const ch = `test:${name}:1`;
      await b.subscribe(ch);
      await b.subscribe(ch); // the same subscription: no count is kept (the hub says when to subscribe)
      expect(b.subscriptions()).toBe(1);
      a.publish(`test:${name}:other`, enc("nobody"));
      a.publish(ch, enc("one"));
      await inB.until(1);
      expect(inB.got).toEqual([[ch, "one"]]);
      a.publish(ch, enc("two"));
      await inB.until(2);
      expect(inB.got[1]).toEqual([ch, "two"]);
      b.unsubscribe(ch); // one unsubscribe ends it
      expect(b.subscriptions()).toBe(0);
      // a marker on another channel proves "three" was not delivered before it
      const marker = `test:${name}:marker`;
      await b.subscribe(marker);
      a.publish(ch, enc("three"));
      a.publish(marker, enc("end"));
      await inB.until(3);
      expect(inB.got[2]).toEqual([marker, "end"]);
      expect(a.state()).toBe("ok");
    });

    test("payload bytes arrive unchanged", async () => {
      const inA = inbox(a);
      const ch = `test:${name}:bytes`;
      await a.subscribe(ch);
      const bytes = new Uint8Array([0, 255, 1, 128, 10]);
      b.publish(ch, bytes);
      await inA.until(1);
      expect(inA.raw[0]).toEqual([0, 255, 1, 128, 10]);
    });

    test("publishMany sends one payload to each channel, bytes unchanged", async () => {
      const inB = inbox(b);
      const [x, y] = [`test:${name}:many:x`, `test:${name}:many:y`];
      await b.subscribe(x);
      await b.subscribe(y);
      a.publishMany([x, `test:${name}:many:nobody`, y], new Uint8Array([7, 0, 255]));
      await inB.until(2);
      expect(inB.got.map(([ch]) => ch).sort()).toEqual([x, y]);
      expect(inB.raw).toEqual([[7, 0, 255], [7, 0, 255]]);
    });
  });
}
