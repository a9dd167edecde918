// The group-commit writer on a real store: a bad row costs its batch a few transactions, not one per row;
// and the writer's bounds (queue size, time to commit) with a store that does not answer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { CoreError } from "../../src/core/errors.ts";
import { directConvId } from "../../src/core/conv-ids.ts";
import { IdGen } from "../../src/core/ids.ts";
import { GroupWriter } from "../../src/core/writer.ts";
import { openDb, type OpenDb } from "../../src/store/db.ts";
import type { AppendStages } from "../../src/core/ports.ts";
import type { AppendItem, AppendResult } from "../../src/core/records.ts";
import { ConversationStore } from "../../src/store/conversations.ts";
import { MessageStore } from "../../src/store/messages.ts";
import { Store } from "../../src/store/store.ts";
import { UserStore } from "../../src/store/users.ts";
import { freshPgUrl } from "../helpers/services.ts";

const ids = new IdGen("writer");
const conv = directConvId("ann", "ben");
const item = (body: unknown, cmid?: string): AppendItem => ({
  id: ids.next(),
  conv,
  sender: "ann",
  kind: "text",
  body,
  cmid,
  at: new Date(),
  create: { kind: "direct", members: ["ann", "ben"] },
});

const drivers: [string, () => Promise<OpenDb>][] = [
  ["postgres", async () => openDb({ databaseUrl: await freshPgUrl() })],
  ["pglite", async () => openDb({ memory: true })],
];

for (const [name, open] of drivers) {
  describe(`GroupWriter on ${name}`, () => {
    let db: OpenDb;
    let store: Store;
    beforeAll(async () => {
      db = await open();
      store = new Store(db.db, { users: new UserStore(db.db), conversations: new ConversationStore(db.db), messages: new MessageStore(db.db, "month", db.appendDb) });
      await store.upsertUser({ id: "ann" });
      await store.upsertUser({ id: "ben" });
      await store.upsertUser({ id: "cat" });
      await store.upsertUser({ id: "dan" });
    });
    afterAll(() => db.close());

    test("a 500-row batch with one bad row commits the 499 others in far fewer than 500 transactions", async () => {
      let writes = 0;
      const writer = new GroupWriter(
        (items) => {
          writes++;
          return store.appendBatch(items);
        },
        500,
        1000,
      );
      // A NUL character cannot be stored in a JSON body: the whole statement of its batch fails.
      const rows = Array.from({ length: 500 }, (_, i) => item(i === 317 ? { text: "bad\u0000" } : { text: `m${i}` }, `c${i}`));
      const settled = await Promise.allSettled(rows.map((r) => writer.append(r)));
      const failed = settled.flatMap((s, i) => (s.status === "rejected" ? [[i, s.reason] as const] : []));
      expect(failed.map(([i]) => i)).toEqual([317]);
      expect(failed[0]![1]).toBeInstanceOf(CoreError);
      expect((failed[0]![1] as CoreError).name).toBe("bad_request");
      // one batch, then two halves per level down to the bad row: 1 + 2·ceil(log2 500) = 19 at most
      expect(writes).toBeLessThanOrEqual(19);
      const page = await store.history(conv, { limit: 500 });
      expect(page.length).toBe(499);
      expect(new Set(page.map((m) => m.cmid)).size).toBe(499);
      expect(page.some((m) => m.cmid === "c317")).toBe(false);
      expect((await store.getConversation(conv))?.lastSeq).toBe(499);
    });

    /** The store function as the server wires it (stages passed on), counting transactions in flight at once. */
    const overlapping = () => {
      const seen = { writes: 0, inFlight: 0, maxInFlight: 0, requeued: 0 };
      const write = async (items: AppendItem[], stages?: AppendStages) => {
        seen.writes++;
        seen.maxInFlight = Math.max(seen.maxInFlight, ++seen.inFlight);
        try {
          return await store.appendBatch(items, stages);
        } catch (e) {
          if (stages?.after !== undefined) seen.requeued++;
          throw e;
        } finally {
          seen.inFlight--;
        }
      };
      return { seen, write };
    };
    const to = (c: string, body: unknown): AppendItem => ({ ...item(body), conv: c, sender: "ben", create: { kind: "direct", members: c.split(":").slice(1) } });

    test("two batches overlap: the next is sent while the first runs, and seqs follow the order of the sends", async () => {
      const c = directConvId("ben", "cat");
      const { seen, write } = overlapping();
      const writer = new GroupWriter(write, 10, 1000);
      const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => writer.append(to(c, i))));
      expect(seen.maxInFlight).toBe(2);
      expect(acks.map((a) => a.msg!.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect((await store.getConversation(c))?.lastSeq).toBe(50);
    });

    test("when the first of two overlapping batches fails, the second fails too and is written again after its bisection", async () => {
      const c = directConvId("ben", "dan");
      const { seen, write } = overlapping();
      const writer = new GroupWriter(write, 10, 1000);
      // Row 3 of the first batch cannot be stored (a NUL in its body): that batch fails, with the second sent behind it.
      const settled = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => writer.append(to(c, i === 3 ? { text: "bad\u0000" } : i))));
      expect(seen.requeued).toBeGreaterThan(0);
      expect(settled.flatMap((r, i) => (r.status === "rejected" ? [i] : []))).toEqual([3]);
      const seqs = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value.msg!.seq] : []));
      expect(seqs).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
      const stored = await store.history(c, { limit: 50 });
      expect(stored.map((m) => m.body)).toEqual(Array.from({ length: 20 }, (_, i) => i).filter((i) => i !== 3));
    });
  });
}

describe("GroupWriter bounds", () => {
  const hang = () => new Promise<AppendResult[]>(() => {});

  test("a send not committed within the commit timeout is refused as unavailable", async () => {
    const writer = new GroupWriter(hang, 10, 0, { commitTimeoutMs: 50 });
    const err = await writer.append(item(1)).catch((e) => e);
    expect(err).toBeInstanceOf(CoreError);
    expect(err.name).toBe("unavailable");
  });

  test("past the queue limit a send is refused at once", async () => {
    const writer = new GroupWriter(hang, 1, 0, { queueMax: 2, commitTimeoutMs: 300 });
    const first = writer.append(item(1)).catch((e) => e); // taken by the batch being written (which never ends)
    await Bun.sleep(0);
    const queued = [writer.append(item(2)).catch((e) => e), writer.append(item(3)).catch((e) => e)]; // the queue is at its limit now
    const err = await writer.append(item(4)).catch((e) => e);
    expect(err).toBeInstanceOf(CoreError);
    expect(err.name).toBe("unavailable");
    expect(err.message).toContain("not keeping up");
    // The others are refused once their commit timeout has passed: nothing is left waiting.
    for (const e of await Promise.all([first, ...queued])) expect(e.message).toContain("not committed within 300 ms");
  });

  test("a batch started beside another that fails at once is queued again, not restarted beside it (no spin)", async () => {
    let writes = 0;
    let releaseFirst!: () => void;
    const write = (items: AppendItem[], stages?: AppendStages): Promise<AppendResult[]> => {
      writes++;
      if (writes === 1) {
        stages?.sent?.();
        return new Promise((resolve) => (releaseFirst = () => resolve(items.map((it) => ({ msg: { id: it.id.toString() } as never, dup: false })))));
      }
      if (writes > 50) return new Promise(() => {}); // stops a spinning writer, so the test can tell
      return Promise.reject(Object.assign(new Error("write CONNECTION_ENDED"), { code: "CONNECTION_ENDED" }));
    };
    const writer = new GroupWriter(write, 1, 0);
    const first = writer.append(item(1));
    const second = writer.append(item(2)).catch((e) => e);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(writes).toBe(2); // the second batch failed beside the first and waits for it in the queue
    releaseFirst();
    await first;
    const err = await second;
    expect(err).toBeInstanceOf(CoreError);
    expect(err.name).toBe("unavailable");
    expect(writes).toBe(3);
  });

  test("a store that cannot be reached fails the whole batch at once, without retrying row by row", async () => {
    let writes = 0;
    const writer = new GroupWriter(
      async () => {
        writes++;
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
      },
      100,
      1000,
    );
    const settled = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => writer.append(item(i))));
    expect(settled.every((s) => s.status === "rejected" && s.reason instanceof CoreError && s.reason.name === "unavailable")).toBe(true);
    expect(writes).toBe(1);
    expect(writer.storeError).toContain("ECONNREFUSED");
  });
});
