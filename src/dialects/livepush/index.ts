// The livepush protocol (docs/livepush.md): long polls and sends of a live-streaming app over plain HTTP. One
// mount point (`livepushHttp`, used by http/api.ts): each request is authenticated (`uid` + `token` through the
// core's logins: a token of another user is refused) before anything else of it is looked at, charged to the
// user's rate limit, run through the command table, and answered in the app's envelope: a core refusal or a
// store failure as its `result` code, never an HTTP error.
import { Elysia } from "elysia";
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import { storeFailure } from "../../core/store-errors.ts";
import type { Dialect } from "../../hub/session.ts";
import { commands, type Command } from "./commands.ts";
import { credentials, readParams } from "./decode.ts";
import { answer, encode, ERROR_RESULT, pollAnswer, Result } from "./encode.ts";
import { Polls } from "./polls.ts";

export const POLL_PATH = "/app/im/user_conn.php";
export const SEND_PATH = "/app/mailbox/send_message.php";
export const HOSTING_SET_PATH = "/app/im/auto_reply.php";
export const HOSTING_GET_PATH = "/app/im/show_auto.php";

/** The hub's view of a polling user's session: it only takes frames (encode.ts). */
export const livepushDialect: Dialect = {
  name: "livepush",
  encode,
  open() {},
  message() {},
  busy() {},
  close() {},
};

const JSON_TYPE = { "content-type": "application/json; charset=utf-8" };
const KEYS_MAX = 100_000;

export function livepushHttp(app: Pick<App, "cfg" | "logins" | "livepush" | "limits" | "hub" | "chat" | "presence" | "bus" | "log">) {
  const { cfg, logins, limits, log } = app;
  const polls = new Polls({
    hub: app.hub,
    chat: app.chat,
    livepush: app.livepush,
    presence: app.presence,
    clustered: app.bus.hasPeers,
    dialect: livepushDialect,
    nodeId: cfg.nodeId,
    pollMs: cfg.livepushPollSec * 1000,
    graceMs: cfg.livepushGraceSec * 1000,
    pollMax: cfg.livepushPollMax,
    log: log.warn,
  });
  const table = commands(app, polls);
  /** one rate-limit key per user on this node (SessionLimits keys buckets by object) */
  const keys = new Map<string, object>();
  const keyOf = (user: string) => {
    let k = keys.get(user);
    if (!k) {
      if (keys.size >= KEYS_MAX) keys.clear();
      keys.set(user, (k = {}));
    }
    return k;
  };

  const reply = (body: string) => new Response(body, { headers: JSON_TYPE });
  const refuse = (poll: boolean, result: number, why?: string) => reply(poll ? pollAnswer(result, []) : answer(result, {}, why));
  const failed = (name: string, err: unknown) => {
    const e = storeFailure(err);
    if (e instanceof CoreError) return refuse(name === "poll", ERROR_RESULT[e.name], e.message);
    log.error(`livepush ${name}: ${(err as Error).stack ?? err}`);
    return refuse(name === "poll", Result.internal, "internal error, retry later");
  };

  async function handle(name: string, req: Request): Promise<Response> {
    let run: Promise<string>;
    try {
      const params = await readParams(req);
      const who = params && credentials(params);
      // Authenticated first: nothing else of the request is read before the token proves `uid`.
      const user = who ? await logins.byToken(who.token) : undefined;
      if (!who || !user || user.id !== who.uid) return refuse(name === "poll", Result.notLoggedIn);
      const cmd = table.get(name) as Command;
      if (cmd.charge && limits.take(keyOf(user.id), cmd.charge) > 0) return refuse(name === "poll", Result.rateLimited);
      run = cmd.run({ user: user.id, role: user.role, req, params: params! });
    } catch (err) {
      return failed(name, err);
    }
    // Not awaited here: a held poll keeps neither this function's frame nor its request's parameters.
    return run.then(reply, (err) => failed(name, err));
  }

  const none = { parse: "none" as const };
  const doc = (summary: string, description: string) => ({ ...none, detail: { summary, description, tags: ["livepush"] } });
  // Each endpoint answers GET and POST alike (its parameters from the query string and a form or JSON body).
  const routes: [string, string, string, string][] = [
    [POLL_PATH, "poll", "Livepush: long poll", "docs/livepush.md. `uid`, `token`, optional `ack`; held up to LIVEPUSH_POLL_SEC."],
    [SEND_PATH, "send", "Livepush: send a message", "`uid`, `token`, `to_uid` (one, or several: a one-click greeting), `content`, `content_type`, `audio_time`, `charge_photo`, `is_hello`, optional `cmid`; form or JSON."],
    [HOSTING_SET_PATH, "hosting_set", "Livepush: a host sets her hosting", "`on`, `greeting`, `replies`, `lines`, `scripts`, `declines`, `behaviours` (JSON arrays)."],
    [HOSTING_GET_PATH, "hosting_get", "Livepush: a host's hosting", "Her hosting settings."],
  ];
  let http = new Elysia({ name: "livepush" });
  for (const [path, name, summary, description] of routes) {
    http = http.get(path, ({ request }) => handle(name, request), doc(summary, description)).post(path, ({ request }) => handle(name, request), doc(summary, description));
  }
  return http;
}
