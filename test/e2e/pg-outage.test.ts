// A Postgres outage under a real server process: a Postgres of this file's own is stopped (immediate, like a
// crash) while a client sends at a paced rate. Sends are refused with the retryable 5030 instead of hanging,
// /healthz answers 503 at once, and when Postgres is back sends succeed again by themselves; every acked
// message is stored exactly once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { Client } from "../helpers/client.ts";
import { freePort, startNode, until, userToken, type NodeProc } from "../helpers/procs.ts";

const PGBIN = `/usr/lib/postgresql/${readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b)).at(-1)}/bin`;
const asRoot = process.getuid?.() === 0;

/** A Postgres of this file's own in a temporary folder, stopped and started on the same port. */
class PgProc {
  readonly dir = mkdtempSync(join(tmpdir(), "chat-pg-outage-"));
  readonly port = freePort();
  readonly url = `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  private async run(...args: string[]): Promise<void> {
    const cmd = asRoot ? ["runuser", "-u", "postgres", "--", ...args] : args;
    const p = Bun.spawn(cmd, { stdout: "ignore", stderr: "pipe" });
    if ((await p.exited) !== 0) throw new Error(`${args.join(" ")}: ${await new Response(p.stderr).text()}`);
  }
  async init(): Promise<void> {
    chmodSync(this.dir, 0o777);
    await this.run(`${PGBIN}/initdb`, "-D", `${this.dir}/data`, "-U", "postgres", "--auth=trust", "-E", "UTF8");
    await this.start();
  }
  start(): Promise<void> {
    return this.run(`${PGBIN}/pg_ctl`, "-D", `${this.dir}/data`, "-l", `${this.dir}/pg.log`, "-w", "-o", `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`, "start");
  }
  /** Stops at once, as a crash would (no checkpoint; the next start recovers). */
  stop(): Promise<void> {
    return this.run(`${PGBIN}/pg_ctl`, "-D", `${this.dir}/data`, "-m", "immediate", "stop");
  }
  /** The postmaster and its backends: SIGSTOP makes Postgres hang (connections open, no answers), SIGCONT resumes it. */
  async signal(sig: "SIGSTOP" | "SIGCONT"): Promise<void> {
    const pid = Number((await Bun.file(`${this.dir}/data/postmaster.pid`).text()).split("\n")[0]);
    const kids = (await new Response(Bun.spawn(["pgrep", "-P", String(pid)]).stdout).text()).split("\n").filter(Boolean).map(Number);
    for (const p of sig === "SIGSTOP" ? [pid, ...kids] : [...kids, pid]) process.kill(p, sig);
  }
  async remove(): Promise<void> {
    await this.signal("SIGCONT").catch(() => {});
    await this.stop().catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const pg = new PgProc();
let node: NodeProc;
const COMMIT_TIMEOUT_MS = 1000;
const HEALTH_TIMEOUT_MS = 500;

beforeAll(async () => {
  await pg.init();
  node = await startNode({
    DATABASE_URL: pg.url,
    SEND_RATE: "10000",
    SEND_BURST: "10000",
    SEND_COMMIT_TIMEOUT_MS: String(COMMIT_TIMEOUT_MS),
    HEALTH_TIMEOUT_MS: String(HEALTH_TIMEOUT_MS),
    DB_CONNECT_TIMEOUT_SEC: "2",
  });
}, 30_000);
afterAll(async () => {
  if (process.env.DEBUG_OUTAGE) console.error(node?.log.all.slice(-40).join("\n"));
  node?.proc.kill("SIGKILL");
  await node?.proc.exited;
  await pg.remove();
});

test("sends fail fast with 5030 while Postgres is down, /healthz says 503, and sends succeed again once it is back", async () => {
  const token = await userToken(node, "ann");
  await userToken(node, "ben");
  const c = await Client.native(node.wsUrl, token, "ann");
  const acked = new Set<string>();
  const refused: string[] = [];
  let n = 0;
  /** One send, paced by its answer: an ack (recorded) or an error (its code returned). */
  async function send(cmid = `m${++n}`): Promise<any> {
    // The safety net of next() is the commit timeout and a margin: a hanging send fails the test.
    c.send({ t: "send", id: cmid, to: "ben", body: { n }, cmid });
    const r = await c.next((f) => f.id === cmid, COMMIT_TIMEOUT_MS + 4000);
    if (r.t === "ack") acked.add(cmid);
    else refused.push(cmid);
    return r;
  }

  for (let i = 0; i < 20; i++) expect((await send()).t).toBe("ack");
  const h0 = await fetch(`${node.url}/healthz`);
  expect(h0.status).toBe(200);

  // Postgres goes away mid-stream.
  const sending = (async () => {
    const out: any[] = [];
    for (let i = 0; i < 10; i++) out.push(await send());
    return out;
  })();
  await pg.stop();
  const during = await sending;
  // Every send after the stop is answered, and those not acked are refused with the retryable code.
  for (const r of during) if (r.t !== "ack") expect(r).toMatchObject({ t: "error", code: 5030, error: "unavailable" });
  const down = await send();
  expect(down).toMatchObject({ t: "error", code: 5030, error: "unavailable" });

  // /healthz answers at once (within its probe timeout, here bounded by the fetch's own), and says why.
  const h1 = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS + 2000) });
  expect(h1.status).toBe(503);
  const b1 = (await h1.json()) as any;
  expect(b1.store.ok).toBe(false);
  expect(typeof b1.store.reason).toBe("string");

  // Back: sends succeed again without anything being restarted.
  await pg.start();
  await until("a send is acked again", async () => (await send()).t === "ack", 15_000);
  const h2 = await fetch(`${node.url}/healthz`);
  expect(h2.status).toBe(200);

  // A refused send may have committed anyway (its transaction was in flight): its retry with the same cmid
  // is acked, as a duplicate when so, and nothing is stored twice.
  for (const cmid of refused) {
    c.send({ t: "send", id: `retry-${cmid}`, to: "ben", body: { retry: cmid }, cmid });
    const r = await c.next((f) => f.id === `retry-${cmid}`);
    expect(r.t).toBe("ack");
    acked.add(cmid);
  }
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  const rows = await sql`select client_msg_id as cmid, count(*)::int as n from messages where sender_id = 'ann' group by 1`;
  await sql.end();
  const stored = new Map(rows.map((r) => [r.cmid as string, r.n as number]));
  for (const cmid of acked) expect(stored.get(cmid)).toBe(1);
  expect([...stored.values()].every((k) => k === 1)).toBe(true);
  expect(refused.length).toBeGreaterThan(0);
  c.close();
}, 30_000);

test("a Postgres that hangs: sends are refused after SEND_COMMIT_TIMEOUT_MS, /healthz says 503 within its timeout, retries get the first ack", async () => {
  const token = await userToken(node, "cat");
  await userToken(node, "dan");
  const c = await Client.native(node.wsUrl, token, "cat");
  const ask = (cmid: string) => {
    c.send({ t: "send", id: cmid, to: "dan", body: { cmid }, cmid });
    return c.next((f) => f.id === cmid, COMMIT_TIMEOUT_MS + 4000);
  };
  expect((await ask("h0")).t).toBe("ack");

  await pg.signal("SIGSTOP");
  try {
    // Connections stay open and nothing answers: without the bound these would wait for ever.
    const replies = await Promise.all(["h1", "h2", "h3"].map(ask));
    for (const r of replies) expect(r).toMatchObject({ t: "error", code: 5030, error: "unavailable" });
    const h = await fetch(`${node.url}/healthz`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS + 2000) });
    expect(h.status).toBe(503);
    expect(((await h.json()) as any).store.reason).toContain(`no answer within ${HEALTH_TIMEOUT_MS} ms`);
  } finally {
    await pg.signal("SIGCONT");
  }

  // Back: each retry is acked once, whether or not its first attempt committed meanwhile.
  for (const cmid of ["h1", "h2", "h3"]) expect((await until(`${cmid} acked`, async () => ((await ask(cmid)).t === "ack" ? true : undefined), 15_000))).toBe(true);
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  const rows = await sql`select client_msg_id as cmid, count(*)::int as n from messages where sender_id = 'cat' group by 1 order by 1`;
  await sql.end();
  expect(rows.map((r) => [r.cmid, r.n])).toEqual([["h0", 1], ["h1", 1], ["h2", 1], ["h3", 1]]);
  c.close();
}, 30_000);
