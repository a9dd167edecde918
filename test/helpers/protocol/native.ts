// The native protocol (docs/protocol.md), JSON or msgpack: a token in the query, a welcome first, requests
// answered by their `id` (`request` and `ok` come from Client).
import { expect } from "bun:test";
import { Client } from "../client.ts";
import { kept, token, type Opts, type Server } from "./common.ts";

export class NativeClient extends Client {
  /** The welcome frame of `login`. */
  welcome: any;

  static open(url: string, binary: boolean): Promise<NativeClient> {
    return NativeClient.opened(new NativeClient(new WebSocket(url), binary), url);
  }
}

export interface NativeOpts extends Opts {
  /** A token of the user (made through the server API when not given). */
  token?: string;
  /** msgpack frames (`format=msgpack`) instead of JSON. */
  binary?: boolean;
}

/** Opens `/ws` with `token` (if any) in the query, without waiting for anything. */
export async function connect(srv: Server, opts: NativeOpts = {}): Promise<NativeClient> {
  const q = [opts.token !== undefined ? `token=${opts.token}` : "", opts.binary ? "format=msgpack" : ""].filter(Boolean).join("&");
  const url = `${srv.wsUrl}/ws${q ? `?${q}` : ""}`;
  return kept(await NativeClient.open(url, opts.binary ?? false), opts);
}

/** Logs `user` in and expects the welcome for that user as its first frame. */
export async function login(srv: Server, user: string, opts: NativeOpts = {}): Promise<NativeClient> {
  const c = await connect(srv, { ...opts, token: opts.token ?? (await token(srv, user)) });
  c.welcome = await c.next();
  expect(c.welcome).toMatchObject({ t: "welcome", user });
  return c;
}

/** The native protocol with msgpack frames. */
export const msgpack = {
  connect: (srv: Server, opts: NativeOpts = {}) => connect(srv, { ...opts, binary: true }),
  login: (srv: Server, user: string, opts: NativeOpts = {}) => login(srv, user, { ...opts, binary: true }),
};
