// The social API while Postgres is down: a Postgres of this file's own is stopped at once (like a crash). Sends
// and reads are answered with the retryable 10006 in the protocol's format (HTTP 200, Retry-After), never a 500;
// when Postgres is back the same calls succeed.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, until } from "../helpers/procs.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const PGBIN = `/usr/lib/postgresql/${readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b)).at(-1)}/bin`;
const asRoot = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), "chat-social-outage-"));
const port = freePort();
const BASE = "/anlife/v1.0/chat";

async function run(...args: string[]): Promise<void> {
  const p = Bun.spawn(asRoot ? ["runuser", "-u", "postgres", "--", ...args] : args, { stdout: "ignore", stderr: "pipe" });
  if ((await p.exited) !== 0) throw new Error(`${args.join(" ")}: ${await new Response(p.stderr).text()}`);
}
const start = () => run(`${PGBIN}/pg_ctl`, "-D", `${dir}/data`, "-l", `${dir}/pg.log`, "-w", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, "start");
const stop = () => run(`${PGBIN}/pg_ctl`, "-D", `${dir}/data`, "-m", "immediate", "stop");

let srv: TestServer;
let token = "";

beforeAll(async () => {
  chmodSync(dir, 0o777);
  await run(`${PGBIN}/initdb`, "-D", `${dir}/data`, "-U", "postgres", "--auth=trust", "-E", "UTF8");
  await start();
  srv = await startTestServer({
    databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    env: { DB_CONNECT_TIMEOUT_SEC: "1", SEND_COMMIT_TIMEOUT_MS: "1500", SEND_RATE: "1000", SEND_BURST: "1000" },
  });
  token = await srv.user("401", { nick: "a" });
  await srv.user("402", { nick: "b" });
}, 60_000);

afterAll(async () => {
  await srv?.stop().catch(() => {});
  await stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const call = async (path: string, body: Record<string, unknown>) => {
  const r = await fetch(`${srv.url}${BASE}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ uid: "401", ...body }),
  });
  return { status: r.status, retry: r.headers.get("retry-after"), body: (await r.json()) as any };
};
const send = () => call("message/sendMessage", { to_uid: "402", message: { msg_type: 1, body: { text: "hi" } } });

test("store down: sends and reads answer 10006 (retryable), never a 500; back up: they succeed", async () => {
  expect((await send()).body).toEqual({ datas: expect.any(String) });
  await stop();
  const busy = { status: 200, retry: "1", body: { error_code: "10006", error_msg: expect.any(String) } };
  expect(await send()).toEqual(busy);
  expect(await call("user/getUserBlacklist", { page: 1 })).toEqual(busy);
  expect(await call("user/addFriendApply", { to_uid: "402", comment: "hi" })).toEqual(busy);
  await start();
  // Reconnecting takes the driver a moment: the retry the error asks for succeeds, and until then it is 10006.
  const r = await until("a send succeeds again", async () => {
    const a = await send();
    if (a.body.error_code !== undefined) expect(a).toEqual(busy);
    return a.body.datas ? a : undefined;
  });
  expect(r.body).toEqual({ datas: expect.any(String) });
}, 60_000);
