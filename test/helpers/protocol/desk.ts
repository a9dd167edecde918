// The desk protocol (seed 002, docs/desk.md): agents of a group and guests, each logging in with a token in a
// first frame (api_key 31000, call_type 3 for an agent, 1 for a guest); a request is answered by the frame
// with its `api_key`.
import { expect } from "bun:test";
import { Client } from "../client.ts";
import { api, kept, token as userToken, type Opts, type Server } from "./common.ts";

export class DeskClient extends Client {
  /** The login answer of `login`. */
  login: any;

  static open(url: string): Promise<DeskClient> {
    return DeskClient.opened(new DeskClient(new WebSocket(url), false), url);
  }

  /** Sends a request and awaits the frame with its `api_key`. */
  override request(frame: Record<string, unknown>): Promise<any> {
    this.send(JSON.stringify(frame));
    return this.next((f) => f.api_key === frame.api_key);
  }
}

/** A token of `user` (created, nick in capitals, if new) living three days: a login with it gets no refresh token. */
export function token(srv: Server, user: string, ttlSec = 3 * 86400, fields: Record<string, unknown> = {}): Promise<string> {
  return userToken(srv, user, { ttlSec, fields: { nick: user.toUpperCase(), ...fields } });
}

/** Creates (or renames) the agent group `id`. */
export async function group(srv: Server, id: string): Promise<void> {
  expect((await api(srv, `/api/desk/groups/${id}`, { name: id }, "PUT")).status).toBe(200);
}

/** Makes `user` an agent of `grp`; returns a token of it. */
export async function agent(srv: Server, user: string, grp: string, capacity = 10): Promise<string> {
  const t = await token(srv, user);
  expect((await api(srv, `/api/desk/agents/${user}`, { group: grp, capacity }, "PUT")).status).toBe(200);
  return t;
}

export interface DeskOpts extends Opts {
  /** Another URL than the server's `/desk` (e.g. `ws://127.0.0.1:${srv.deskPort}/`). */
  url?: string;
}

/** Opens a desk socket, not logged in. */
export async function connect(srv: Server, opts: DeskOpts = {}): Promise<DeskClient> {
  return kept(await DeskClient.open(opts.url ?? `${srv.wsUrl}/desk`), opts);
}

/**
 * Logs in and expects a successful answer: as an agent with `agent` (its token), else as a guest of `group`
 * (a token of `user` is made).
 */
export async function login(srv: Server, user: string, opts: DeskOpts & ({ agent: string } | { group: string; token?: string })): Promise<DeskClient> {
  const c = await connect(srv, opts);
  const frame = "agent" in opts ? { api_key: 31000, call_type: 3, token: opts.agent } : { api_key: 31000, call_type: 1, token: opts.token ?? (await token(srv, user)), group_id: opts.group };
  c.login = await c.request(frame);
  expect(c.login).toMatchObject({ api_key: 31000, code: 200, status: "Success" });
  return c;
}
