// The rooms protocol (seed 004, docs/rooms.md): a login account per client project, every parameter in the
// query string (the room or container to enter included), the user's own "in" notice first. Frames are pushes:
// no answer is paired with a request.
import { createHash } from "node:crypto";
import { expect } from "bun:test";
import { Client } from "../client.ts";
import { api, kept, type Opts, type Server } from "./common.ts";

export const md5 = (s: string) => createHash("md5").update(s).digest("hex");

/** A notice (`in`, `out`, `outAll`, ...) of `room` (if given) with `count` members (if given). */
export const isNotice = (action: string, room?: string, count?: number) => (f: any) =>
  f.messageType === "notice" && f.action === action && (room === undefined || f.roomName === room) && (count === undefined || f.count === count);

export class RoomsClient extends Client {
  /** The user's own "in" notice of `login`. */
  login: any;

  static open(url: string): Promise<RoomsClient> {
    return RoomsClient.opened(new RoomsClient(new WebSocket(url), false), url);
  }

  /** The rooms protocol pairs no answer with a request: `send(frame)`, then `next(pred)` for what it causes. */
  override request(): Promise<any> {
    throw new Error("the rooms protocol has no request/answer pairs: send() and await next(pred)");
  }
}

/** A user with a login account `<user>` of client project `clientType`, password "pw-<user>". */
export async function account(srv: Server, user: string, nick = user.toUpperCase(), clientType = "default"): Promise<void> {
  expect((await api(srv, "/api/users", { id: user, nick, avatar: `http://img/${user}.png` })).status).toBe(200);
  const r = await api(srv, `/api/rooms-protocol/accounts/${clientType}/${user}`, { user, password: `pw-${user}` }, "PUT");
  expect(r).toMatchObject({ status: 200, body: { clientType, account: user, user } });
}

/** The login query of `user` (account and password of `account`) into `roomName`; `extra` adds or overrides parameters. */
export function query(user: string, roomName: string, extra: Record<string, string> = {}): Record<string, string> {
  return { name: user.toUpperCase(), senderType: "GROUP", userId: user, roomName, icon: `http://icon/${user}`, account: user, password: md5(`pw-${user}`), ...extra };
}

/** The WebSocket URL of a login with query `q` (`base`: another than the server's `/rooms`). */
export function url(srv: Server, q: Record<string, string>, base = `${srv.wsUrl}/rooms`): string {
  return `${base}?${new URLSearchParams(q)}`;
}

export interface RoomsOpts extends Opts {
  /** Parameters added to or overriding those of `query`. */
  extra?: Record<string, string>;
  /** Another base URL than the server's `/rooms` (e.g. `ws://127.0.0.1:${srv.roomsPort}`). */
  base?: string;
}

/** Opens a login of `user` into `roomName`, without waiting for anything. */
export async function connect(srv: Server, user: string, roomName: string, opts: RoomsOpts = {}): Promise<RoomsClient> {
  return kept(await RoomsClient.open(url(srv, query(user, roomName, opts.extra), opts.base)), opts);
}

/** Logs `user` into the room `room` and awaits its own "in" notice. */
export async function login(srv: Server, user: string, room: string, opts: RoomsOpts = {}): Promise<RoomsClient> {
  const c = await connect(srv, user, room, opts);
  c.login = await c.next(isNotice("in", room));
  expect(c.login.userId).toBe(user);
  return c;
}
