// kill -9 of a node while sends are in flight (paced sends: writes are committing and acks travelling when the
// kill lands). Afterwards: every acknowledged message is stored once, with the seq and id of its ack; what was
// not acknowledged and is sent again with its cmid is stored once; seqs have no gaps; the recipient gets every
// message through its live connection or a later sync, no live push twice, and a sync never repeats what it
// confirmed. Real processes (`bun src/main.ts`), real Postgres and a Redis of the file's own.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "../helpers/client.ts";
import { TestCluster, userToken, type NodeProc } from "../helpers/procs.ts";

const cluster = new TestCluster({ SEND_RATE: "10000", SEND_BURST: "10000" });
const { nodes, clients } = cluster;
const tokens = new Map<string, string>();
/** Sends per test, one every PACE_MS; the kill lands after KILL_AFTER acks (the sender's test never gets near N). */
const N = 400;
const SENDER_N = 2000;
const PACE_MS = 2;
const KILL_AFTER = 100;

async function on(node: NodeProc, user: string): Promise<Client> {
  const c = await Client.native(node.wsUrl, tokens.get(user)!, user);
  clients.push(c);
  return c;
}

/** Every stored message of a conversation, oldest first (history pages forward). */
async function stored(c: Client, conv: string): Promise<any[]> {
  const out: any[] = [];
  for (;;) {
    const r = await c.ok({ t: "history", conv, after: out.at(-1)?.seq ?? 0, limit: 500 });
    out.push(...r.msgs);
    if (!r.more) return out;
  }
}

/**
 * Sends `send(i)` for i in [from, to) one every PACE_MS (pacing, so writes are in flight at any moment; not a
 * synchronisation) until `stop()`; returns how many were handed to the socket.
 */
async function paced(c: Client, from: number, to: number, stop: () => boolean, frame: (i: number) => Record<string, unknown>): Promise<number> {
  let i = from;
  for (; i < to && !stop() && !c.isClosed; i++) {
    c.send(frame(i));
    await Bun.sleep(PACE_MS);
  }
  return i;
}

const send = (prefix: string, to: string) => (i: number) => ({ t: "send", id: `${prefix}${i}`, to, body: { i }, cmid: `${prefix}${i}` });

/** The acks among `frames`, by cmid (the request id is the cmid here). */
function acksOf(frames: any[], into: Map<string, any>): void {
  for (const f of frames) if (f?.t === "ack") into.set(f.id, f.msg);
}

beforeAll(async () => {
  await cluster.start(2, "f");
  for (const u of ["alice", "bob", "carol", "dave"]) tokens.set(u, await userToken(nodes[0]!, u, { nick: u.toUpperCase() }));
}, 60_000);

afterAll(() => cluster.stop());

describe("kill -9 with sends in flight", () => {
  test("the sender's node dies: every ack is stored once, unacknowledged retries by cmid are stored once, the recipient misses nothing", async () => {
    const victim = await cluster.node({ NODE_ID: "sender-node" });
    const bob = await on(nodes[0]!, "bob");
    const alice = await on(victim, "alice");
    const acks = new Map<string, any>();
    const pacing = paced(alice, 0, SENDER_N, () => false, send("a", "bob"));
    // Acks as they come; the node is killed once KILL_AFTER are in, while the pacer keeps sending.
    while (acks.size < KILL_AFTER) acksOf([await alice.next((f) => f.t === "ack")], acks);
    // Frozen first (SIGSTOP), then killed: a batch whose COMMIT was on its way to Postgres completes there while
    // the node can no longer send its acks, so the kill lands between commit and ack, the worst moment.
    victim.proc.kill("SIGSTOP");
    await Bun.sleep(50); // lets Postgres finish a COMMIT already sent (not a synchronisation with the test)
    victim.proc.kill("SIGKILL");
    await alice.closed;
    const handed = await pacing;
    acksOf(alice.pending(), acks);
    expect(handed).toBeLessThan(SENDER_N); // the kill landed mid-stream
    console.log(`sender kill: ${handed} sends handed to the socket, ${acks.size} acknowledged before the kill`);

    // Acks lost on the way (the link died with the node): the client counts the last LOST acks it got as never
    // received, so their sends are committed but unacknowledged from its point of view.
    const LOST = 10;
    const lost = new Map([...acks].slice(-LOST));
    for (const k of lost.keys()) acks.delete(k);

    // alice reconnects elsewhere and sends again everything not acknowledged, with its cmid.
    const again = await on(nodes[1]!, "alice");
    const retried = new Map<string, any>();
    for (let i = 0; i < handed; i++) {
      const id = `a${i}`;
      if (acks.has(id)) continue;
      retried.set(id, (await again.ok(send("a", "bob")(i))).msg);
    }
    const dups = [...retried.values()].filter((m) => m.dup).length;
    console.log(`sender kill: ${retried.size} resent, ${dups} of them committed before the kill (dup), ${LOST} of those with their ack lost`);
    // A retry of a committed send is answered with the first ack (same id and seq), marked dup, and stores nothing.
    for (const [cmid, first] of lost) expect({ cmid, ...retried.get(cmid) }).toEqual({ cmid, ...first, dup: true });
    for (const [cmid, first] of lost) acks.set(cmid, first);

    const all = await stored(bob, "d:alice:bob");
    // Each cmid once, seqs 1..n without gaps, every ack's id and seq as acknowledged.
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: handed }, (_, i) => i + 1));
    expect(all.map((m) => m.cmid).sort()).toEqual(Array.from({ length: handed }, (_, i) => `a${i}`).sort());
    const byCmid = new Map(all.map((m) => [m.cmid, m]));
    for (const [cmid, ack] of [...acks, ...retried]) expect({ cmid, id: byCmid.get(cmid)?.id, seq: byCmid.get(cmid)?.seq }).toEqual({ cmid, id: ack.id, seq: ack.seq });
    // bob's live pushes: none twice, each the stored message at its seq. Together with a sync he has them all.
    const live = bob.pending().filter((f) => f.t === "msg").map((f) => f.msg);
    expect(new Set(live.map((m) => m.seq)).size).toBe(live.length);
    for (const m of live) expect(byCmid.get(m.cmid)?.id).toBe(m.id);
    const seen = new Set([...live.map((m) => m.seq), ...(await bob.syncAll("d:alice:bob")).map((m) => m.seq)]);
    expect(seen.size).toBe(handed);
    await again.close();
    await bob.close();
  }, 60_000);

  test("the recipient's node dies: every ack stays stored once, and a reconnect's sync brings exactly what was not confirmed", async () => {
    const victim = await cluster.node({ NODE_ID: "recipient-node" });
    const dave = await on(victim, "dave");
    const carol = await on(nodes[0]!, "carol");
    const acks = new Map<string, any>();
    // dave confirms delivery every 10 pushes (the highest seq so far), as a client does.
    let confirmed = 0;
    const pushes: any[] = [];
    const stopPushes = (async () => {
      for (;;) {
        let f: any;
        try {
          f = await dave.next((x) => x.t === "msg", 30_000);
        } catch {
          return; // the node died
        }
        pushes.push(f.msg);
        if (pushes.length % 10 === 0) {
          const seq = Math.max(...pushes.map((m) => m.seq));
          dave.send({ t: "delivered", id: `d${seq}`, conv: f.msg.conv, seq });
        }
      }
    })();
    const pacing = paced(carol, 0, N, () => false, send("c", "dave"));
    while (acks.size < KILL_AFTER) acksOf([await carol.next((f) => f.t === "ack")], acks);
    victim.proc.kill("SIGKILL");
    await dave.closed;
    await stopPushes;
    // What dave's node confirmed before it died (an `ok` reply: the cursor write committed).
    for (const f of dave.pending()) if (f.t === "ok") confirmed = Math.max(confirmed, f.seq);
    // carol's node is alive: the rest of her sends are acknowledged too.
    const handed = await pacing;
    expect(handed).toBe(N);
    while (acks.size < N) acksOf([await carol.next((f) => f.t === "ack")], acks);
    expect(new Set([...acks.values()].map((m) => m.seq)).size).toBe(N);
    console.log(`recipient kill: ${pushes.length} pushed live before the kill, delivered cursor confirmed at ${confirmed}`);

    // dave reconnects on another node and pulls (sync with mark) until nothing is left.
    const back = await on(nodes[1]!, "dave");
    const pulled: any[] = [];
    for (;;) {
      const r = await back.ok({ t: "sync", limit: 100, mark: true });
      pulled.push(...r.msgs);
      if (!r.more) break;
    }
    // Nothing at or below a confirmed cursor comes again; nothing acknowledged is missing; none twice.
    expect(pulled.filter((m) => m.seq <= confirmed)).toEqual([]);
    expect(new Set(pulled.map((m) => m.seq)).size).toBe(pulled.length);
    expect(new Set(pushes.map((m) => m.seq)).size).toBe(pushes.length);
    const got = new Map([...pushes, ...pulled].map((m) => [m.seq, m]));
    for (const [cmid, ack] of acks) expect({ cmid, id: got.get(ack.seq)?.id }).toEqual({ cmid, id: ack.id });
    const all = await stored(back, "d:carol:dave");
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(new Set(all.map((m) => m.cmid)).size).toBe(N);
    await back.close();
    await carol.close();
  }, 60_000);
});
