// What every protocol client of the harness shares: the server it talks to (an in-process test server or a
// node of a test cluster) and its server API.
import type { Client } from "../client.ts";
import type { NodeProc } from "../procs.ts";
import type { TestServer } from "../server.ts";

/** A running server: `startTestServer()` in this process, or a `bun src/main.ts` node of a `TestCluster`. */
export type Server = TestServer | NodeProc;

export interface Opts {
  /** Where the client is kept so that the test's `afterAll` closes it (an array of clients). */
  keep?: { push(c: Client): unknown };
}

/** Calls the server API (with the test API key) on either kind of server. */
export function api(srv: Server, path: string, body?: unknown, method?: string): Promise<{ status: number; body: any }> {
  return "user" in srv ? srv.api(path, { method, body }) : srv.api(path, body, method);
}

/** Creates `user` (already there is fine) and returns a token of the server's own for it. */
export async function token(srv: Server, user: string, opts: { ttlSec?: number; fields?: Record<string, unknown> } = {}): Promise<string> {
  await api(srv, "/api/users", { id: user, ...opts.fields });
  const t = await api(srv, `/api/users/${user}/token`, opts.ttlSec === undefined ? {} : { ttlSec: opts.ttlSec });
  if (t.status !== 200) throw new Error(`token for ${user}: ${t.status} ${JSON.stringify(t.body)}`);
  return t.body.token as string;
}

export function kept<C extends Client>(c: C, opts: Opts): C {
  opts.keep?.push(c);
  return c;
}
