// The livepush command table: each endpoint's typed request → one core command → its answer. Who the caller is
// was checked before (index.ts); what may be done is decided in the core (core/livepush.ts, core/send.ts).
import type { App } from "../../app.ts";
import type { Charge } from "../../core/limits.ts";
import { answer, pollAnswer, Result } from "./encode.ts";
import { hostingRequest, pollRequest, sendRequest, type Params } from "./decode.ts";
import type { Polls } from "./polls.ts";

export interface Ctx {
  user: string;
  role: string;
  req: Request;
  params: Params;
}

export interface Command {
  charge?: Charge;
  run(ctx: Ctx): Promise<string>;
}

const encodePoll = (a: { result: number; msgs: Parameters<typeof pollAnswer>[1] }) => pollAnswer(a.result, a.msgs);

export function commands(app: Pick<App, "livepush">, polls: Polls): Map<string, Command> {
  const { livepush } = app;
  return new Map<string, Command>([
    [
      "poll",
      {
        charge: "read",
        // No async frame waits for a held poll: the answer is encoded when its promise resolves.
        run: ({ user, role, req, params }) => polls.poll(user, role, req, pollRequest(params).ack).then(encodePoll),
      },
    ],
    [
      "send",
      {
        charge: "send",
        async run({ user, params }) {
          const r = sendRequest(params);
          if (typeof r === "string") return answer(Result.illegal, {}, r);
          const { acks, refused } = await livepush.send(user, r.to, r);
          const first = acks[0];
          if (r.to.length === 1) return answer(Result.ok, { msg_id: first!.id, ctime: Math.floor(first!.ts / 1000), dup: first!.dup ? 1 : 0 });
          return answer(Result.ok, { msg_ids: acks.map((a) => a.id), sent: acks.length, refused });
        },
      },
    ],
    [
      "hosting_set",
      {
        charge: "send",
        async run({ user, params }) {
          const r = hostingRequest(params);
          if (typeof r === "string") return answer(Result.illegal, {}, r);
          return answer(Result.ok, { hosting: await livepush.setHosting(user, r) });
        },
      },
    ],
    [
      "hosting_get",
      {
        charge: "read",
        async run({ user }) {
          return answer(Result.ok, { hosting: await livepush.hosting(user) });
        },
      },
    ],
  ]);
}
