// Native protocol frames (docs/protocol.md). Schemas are compiled once; a frame that fails one gets an
// error naming the first bad field.
import { Type as T, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";

const Id = T.Optional(T.Union([T.String({ maxLength: 64 }), T.Integer()]));
const Conv = T.String({ minLength: 1, maxLength: 200 });
const Seq = T.Integer({ minimum: 0 });
const Limit = T.Optional(T.Integer({ minimum: 1, maximum: 500 }));

export const Frames = {
  auth: T.Object({ t: T.Literal("auth"), id: Id, token: T.String({ minLength: 1, maxLength: 4096 }) }),
  ping: T.Object({ t: T.Literal("ping"), id: Id }),
  send: T.Object({
    t: T.Literal("send"),
    id: Id,
    to: T.Optional(T.String({ minLength: 1, maxLength: 128 })),
    conv: T.Optional(Conv),
    kind: T.Optional(T.String({ minLength: 1, maxLength: 32 })),
    body: T.Unknown(),
    cmid: T.Optional(T.String({ minLength: 1, maxLength: 64 })),
  }),
  sync: T.Object({
    t: T.Literal("sync"),
    id: Id,
    conv: T.Optional(Conv),
    limit: Limit,
    after: T.Optional(T.Object({ conv: Conv, seq: Seq })),
    /** pull and mark delivered in one step */
    mark: T.Optional(T.Boolean()),
  }),
  delivered: T.Object({ t: T.Literal("delivered"), id: Id, conv: Conv, seq: Seq }),
  read: T.Object({ t: T.Literal("read"), id: Id, conv: Conv, seq: Seq }),
  history: T.Object({
    t: T.Literal("history"),
    id: Id,
    conv: Conv,
    before: T.Optional(Seq),
    after: T.Optional(Seq),
    from: T.Optional(T.Integer()),
    to: T.Optional(T.Integer()),
    limit: Limit,
    desc: T.Optional(T.Boolean()),
  }),
} as const;

export type FrameType = keyof typeof Frames;
export type FrameOf<K extends FrameType> = Static<(typeof Frames)[K]>;

const checks = Object.fromEntries(
  Object.entries(Frames).map(([k, s]) => [k, TypeCompiler.Compile(s as TSchema)]),
) as Record<FrameType, TypeCheck<TSchema>>;

/** Validates a decoded frame: the typed frame, or an error message naming the first bad field. */
export function check(frame: Record<string, unknown>): { type: FrameType; frame: any } | { error: string; unknown?: true } {
  const t = frame.t;
  if (typeof t !== "string" || !(t in checks)) return { error: `unknown frame type ${JSON.stringify(t)}`, unknown: true };
  const c = checks[t as FrameType];
  if (c.Check(frame)) return { type: t as FrameType, frame };
  const e = c.Errors(frame).First();
  return { error: `${e?.path || "frame"}: ${e?.message ?? "invalid"}` };
}
