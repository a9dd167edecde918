// The customer-service desk protocol (seed 002, docs/desk.md) at /desk and on DESK_PORT: JSON frames keyed
// by `api_key`, answered with `{api_key, data, code, message, status}`. Agents (`call_type` 3) and guests
// (`call_type` 1) log in with a server JWT; routing, transfer and queues are the core's (core/desk.ts).
// A translator: decode.ts reads frames, commands.ts maps each api_key onto the core, encode.ts writes frames.
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import type { Dialect } from "../../hub/session.ts";
import { storeFailure } from "../../core/store-errors.ts";
import { deskCommands, newState, st, type DeskCore } from "./commands.ts";
import { apiKeyOf, decode, int } from "./decode.ts";
import { Codes, deskErrorCode, encode } from "./encode.ts";

/** What the desk protocol uses of the node. */
export type DeskNode = DeskCore & Pick<App, "log" | "cfg">;

export function deskDialect(app: DeskNode): Dialect {
  const { limits, desk, log, cfg } = app;
  const { login, reply, agent, guest } = deskCommands(app);

  return {
    name: "desk",

    async upgrade() {
      return { codec: "desk", state: newState() as never };
    },

    open() {},

    busy(s, data) {
      reply(s, apiKeyOf(data), Codes.rateLimited, {}, `too many requests in flight (at most ${cfg.maxFramesInFlight}): wait for answers`);
    },

    async message(s, data) {
      const fields = decode(data);
      if (!fields) return reply(s, null, Codes.badFrame, {}, "frames are JSON objects");
      const apiKey = int(fields.api_key);
      if (int(fields.call_type) === 0 && (apiKey === undefined || apiKey === 0)) return reply(s, fields.api_key ?? 0, Codes.ok, {}, "pong");
      try {
        if (apiKey === 31000) return await login(s, apiKey, fields);
        if (apiKey === undefined) return reply(s, fields.api_key, Codes.unknownApi, {}, "api_key is required");
        const state = st(s);
        if (!s.userId || !state.as) return reply(s, apiKey, Codes.relogin, {}, "log in first");
        if (state.exp && state.exp * 1000 <= Date.now()) return reply(s, apiKey, Codes.relogin, {}, "login expired");
        const cmd = (state.as === "agent" ? agent : guest).get(apiKey);
        // Reads (lists, a page of messages, online agents) take READ_COST from the connection's rate limit.
        if (cmd?.charge && limits.take(s, cmd.charge)) return reply(s, apiKey, Codes.rateLimited, {}, "too many requests");
        if (state.as === "agent") {
          // A record disabled since the login ends the session.
          const a = await desk.agentRecord(s.userId);
          if (typeof a === "string") return reply(s, apiKey, Codes.relogin, {}, "login no longer valid");
          state.agent = a;
        }
        if (!cmd) return reply(s, apiKey, Codes.unknownApi, {}, `unknown api_key ${apiKey}`);
        return await cmd.run(s, s.userId, apiKey, fields);
      } catch (err) {
        const e = storeFailure(err);
        if (!(e instanceof CoreError)) log.error(`desk ${apiKey} from ${s.userId}: ${(e as Error).stack ?? e}`);
        if (e instanceof CoreError) reply(s, fields.api_key, deskErrorCode(apiKey, e.name), {}, e.message);
        else reply(s, fields.api_key, deskErrorCode(apiKey, "internal"), {}, "internal error, retry later");
      }
    },

    close(s) {
      const state = st(s);
      const id = s.userId;
      if (!id || !state.as) return;
      // After the login's routing step, so the routing state sees this session come and then go (a step
      // that failed counted nothing).
      const down = state.as === "agent" ? () => desk.agentDown(id) : () => desk.guestDown(id);
      void (state.up ?? Promise.resolve()).then(down, () => {});
    },

    encode,
  };
}
