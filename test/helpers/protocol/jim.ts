// The J-IM protocol (docs/jim.md): users registered by the app backend (initUser) with an opaque token, the
// token in the query, the login answer (10007) first; a request is answered by the frame with its answer's
// `command` (11 by 12, 19 by 20, ...).
import { expect } from "bun:test";
import { Client } from "../client.ts";
import { api, kept, type Opts, type Server } from "./common.ts";

export const LOGIN_OK = { code: 10007, command: 6, msg: "ok 登录成功!" };

/** The command of the answer to each request command; any other is answered with command 0 (unknown cmd). */
const ANSWER: Record<number, number> = { 3: 4, 7: 8, 11: 12, 13: 13, 14: 14, 15: 16, 17: 18, 19: 20 };

export class JimClient extends Client {
  /** The login answer of `login`. */
  login: any;

  static open(url: string): Promise<JimClient> {
    return JimClient.opened(new JimClient(new WebSocket(url), false), url);
  }

  /** Sends a frame (an object, or text as it is) and awaits the next frame with the answer's `command`. */
  override request(frame: Record<string, unknown> | string, command?: number): Promise<any> {
    if (command === undefined) {
      if (typeof frame === "string") throw new Error("a J-IM request as text needs the answer's command");
      command = ANSWER[Number(frame.cmd ?? frame.CMD)] ?? 0;
    }
    this.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return this.next((f) => f && f.command === command);
  }
}

/** Registers `id` through initUser (as the app backend does) with a fresh opaque token; returns the token. */
export async function register(srv: Server, id: string, fields: Record<string, unknown> = {}): Promise<string> {
  const token = `${id}-${crypto.randomUUID().replace(/-/g, "")}`;
  const r = await api(srv, "/im/vanke/initUser", { senderId: id, receiverId: "", nick: id.toUpperCase(), avatar: "", terminal: "pc", token, type: 0, ...fields });
  expect(r).toEqual({ status: 200, body: { code: 200, msg: "success", data: null } });
  return token;
}

export interface JimOpts extends Opts {
  /** The user's token (registered through initUser when not given). */
  token?: string;
  /** The path of the upgrade (any path on `JIM_PORT`). */
  path?: string;
  /** Another base URL than the server's main port (e.g. `ws://127.0.0.1:${srv.jimPort}`). */
  base?: string;
}

/** Opens the J-IM socket with `query` (a token, or username and password), without waiting for anything. */
export async function connect(srv: Server, query: Record<string, string>, opts: Omit<JimOpts, "token"> = {}): Promise<JimClient> {
  const q = new URLSearchParams(query).toString();
  return kept(await JimClient.open(`${opts.base ?? srv.wsUrl}${opts.path ?? "/jim"}${q ? `?${q}` : ""}`), opts);
}

/** Logs `user` in with its token and expects the login answer (10007) as the first frame. */
export async function login(srv: Server, user: string, opts: JimOpts = {}): Promise<JimClient> {
  const c = await connect(srv, { token: opts.token ?? (await register(srv, user)) }, opts);
  c.login = await c.next();
  expect(c.login).toEqual(LOGIN_OK);
  return c;
}
