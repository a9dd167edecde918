// The J-IM protocol (seed 001, docs/jim.md): JSON command frames `{cmd: n, ...}` answered with
// `{code, command, data, msg}`. Login happens during the handshake from the URL's `token` (or
// `username` or `account`, with `password`). A translator: decode.ts reads frames, commands.ts maps each command onto the core,
// encode.ts writes answers and pushes; every rule lives in the core.
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import type { Dialect, Session } from "../../hub/session.ts";
import { storeFailure } from "../../core/store-errors.ts";
import { jimCommands, type JimCore } from "./commands.ts";
import { Cmd, decode, fields, int, str } from "./decode.ts";
import { encode, FAILURE, resp } from "./encode.ts";

interface JimState {
  /** the handshake's credentials were refused: answer 10008 and close once open */
  refused?: boolean;
}

const st = (s: Session) => s.state as unknown as JimState;

/** What the J-IM protocol uses of the node. */
export type JimNode = JimCore & Pick<App, "log">;

export function jimDialect(app: JimNode): Dialect {
  const { hub, logins, limits, log } = app;
  const commands = jimCommands(app);
  const send = (s: Session, code: number | undefined, command: number, data?: unknown) => hub.send(s, resp(code, command, data));

  /** URL credentials, names matched leniently like frame fields. */
  async function login(url: URL, peer: string) {
    const q = fields(url.searchParams);
    const token = str(q.get("token"));
    if (token) return logins.byToken(token);
    // `username` (the J-IM demo page) or `account` (other clients), with `password`.
    const name = str(q.get("username")) ?? str(q.get("account"));
    return name ? logins.byPassword(name, q.get("password"), peer) : undefined;
  }

  return {
    name: "jim",
    // A push to a live J-IM connection counts as delivered once written out: the protocol has no client acknowledgement.
    marksOnPush: true,

    async upgrade(_req, url, peer) {
      const state: JimState = {};
      const who = await login(url, peer);
      if (!who) state.refused = true;
      return { userId: who?.id, role: who?.role, state: state as never };
    },

    async open(s) {
      if (st(s).refused || !s.userId) {
        send(s, 10008, Cmd.loginResp);
        return void s.ws.close(4001, "login failed");
      }
      const userId = s.userId;
      s.userId = undefined;
      // The login answer goes out before any push (the hub holds them until it is sent).
      await hub.bindUser(s, userId, s.role ?? "user", () => send(s, 10007, Cmd.loginResp));
    },

    busy(s, data) {
      // J-IM has no busy code: the command's failure answer (chat: 10002, as for the send rate).
      let cmd: number | undefined;
      try {
        cmd = int(fields(JSON.parse(typeof data === "string" ? data : data.toString("utf8"))).get("cmd"));
      } catch {}
      const [code, command] = FAILURE[cmd ?? 0] ?? [10017, Cmd.unknown];
      send(s, code, command);
    },

    async message(s, data) {
      const f = decode(data);
      if (!f) return void send(s, 10017, Cmd.unknown);
      if (!s.userId) return void send(s, 10008, Cmd.loginResp);
      const cmd = int(f.get("cmd"));
      try {
        const c = cmd === undefined ? undefined : commands.get(cmd);
        if (!c) return void send(s, 10017, Cmd.unknown);
        // Reads take READ_COST from the connection's rate limit; over it, the command's failure answer.
        if (c.charge === "read" && limits.take(s, "read")) {
          const [code, command] = FAILURE[cmd!]!;
          return void send(s, code, command);
        }
        await c.run(s, s.userId, f);
      } catch (err) {
        // J-IM has no retryable code: a store that cannot be reached gets the command's failure code too.
        const e = storeFailure(err);
        if (!(e instanceof CoreError)) log.error(`jim cmd ${cmd} from ${s.userId}: ${(e as Error).stack ?? e}`);
        const [code, command] = FAILURE[cmd ?? 0] ?? [10017, Cmd.unknown];
        send(s, code, command);
      }
    },

    close() {},

    encode,
  };
}
