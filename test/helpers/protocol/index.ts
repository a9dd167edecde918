// The protocol test harness: one client per wire protocol, so that a test reads the same whatever the
// protocol it speaks:
//
//   const a = await protocols.jim.login(srv, "alice");          // user made through the server API as needed
//   const r = await a.request({ cmd: 11, to: "bob", chatType: 2, content: "hi" });   // awaits its answer
//   const push = await b.next((f) => f.command === 11);         // awaited queue, no sleeps
//
// Every client is a `Client` (test/helpers/client.ts): `send(frame)`, `next(pred)`, `pending()`, `close()`,
// `closed`; `request(frame)` awaits the answer the way its protocol pairs them (native: by `id`; J-IM: by the
// answer's `command`; desk: by `api_key`; rooms pairs none: `send`, then `next`). Each module has `connect`
// (open the socket, wait for nothing: for tests of the handshake itself) and `login` (log a user in and expect
// the protocol's success answer, kept on the client as `welcome` or `login`), and what the protocol needs to
// make its users.
// Every function takes a `Server`: a test server of this process or a node of a test cluster.
//
// A new protocol adds its file here: a `Client` subclass with a static `open(url)` and the protocol's
// `request` pairing, then `connect` and `login` (making the user and its credential through the server API),
// and its entry in `protocols` below. Its end-to-end tests then log in with `protocols.<name>.login`. A protocol
// that is not a WebSocket (an HTTP API, a long poll) gives its client the same surface (`send`, `request`,
// `next`, `pending`, `close`) over a `FrameQueue` (test/helpers/frames.ts) that its responses are pushed into.
import * as desk from "./desk.ts";
import * as jim from "./jim.ts";
import * as native from "./native.ts";
import * as rooms from "./rooms.ts";

export const protocols = { native, msgpack: native.msgpack, jim, desk, rooms };
export { api, token, type Server } from "./common.ts";
export type { DeskClient } from "./desk.ts";
export type { JimClient } from "./jim.ts";
export type { NativeClient } from "./native.ts";
export type { RoomsClient } from "./rooms.ts";
