// Livepush answers out (docs/livepush.md): the app's envelope `{"code":200,"data":{"result":…},"desc":…}`, the
// result codes of every core error, and what a held poll's hub session receives. Pure functions of their input.
import type { ErrorName } from "../../core/errors.ts";
import type { LpMessage } from "../../core/livepush-fields.ts";
import type { CoreEvent } from "../../core/types.ts";
import type { Frame } from "../../hub/session.ts";

/** `data.result` codes: 1-3 as the seed (3 is a poll's timeout, or an illegal request elsewhere); 4-9 added. */
export const Result = {
  ok: 1,
  notLoggedIn: 2,
  /** user_conn.php: nothing came within the poll timeout (poll again); other endpoints: an illegal request */
  timeout: 3,
  illegal: 3,
  forbidden: 4,
  hostingOff: 5,
  rateLimited: 6,
  blocked: 7,
  /** the store cannot be reached: retry the same request (a send with the same `cmid` is not stored twice) */
  unavailable: 8,
  internal: 9,
} as const;

const DESC: Record<number, string> = {
  1: "成功",
  2: "未登录",
  4: "没有权限",
  5: "未开启聊天托管",
  6: "请求过于频繁，请稍后再试",
  7: "对方拒收了你的消息",
  8: "服务繁忙，请重试",
  9: "服务器错误，请重试",
};

/** Every core error name → its result code (test/unit/error-mapping.test.ts). */
export const ERROR_RESULT: Record<ErrorName, number> = {
  bad_frame: Result.illegal,
  unknown_type: Result.illegal,
  bad_request: Result.illegal,
  unauthorized: Result.notLoggedIn,
  forbidden: Result.forbidden,
  blocked: Result.blocked,
  muted: Result.blocked,
  not_member: Result.illegal,
  not_found: Result.illegal,
  conflict: Result.hostingOff,
  recall_expired: Result.illegal,
  rate_limited: Result.rateLimited,
  slow_mode: Result.rateLimited,
  unavailable: Result.unavailable,
  internal: Result.internal,
};

/** The poll's answer: `result` and the messages. */
export function pollAnswer(result: number, msgs: LpMessage[]): string {
  return JSON.stringify({ code: 200, data: { result, msgs }, desc: result === Result.timeout ? "连接超时" : (DESC[result] ?? "成功") });
}

/** Any other endpoint's answer: `result`, the fields of `data`, and why (`desc`). */
export function answer(result: number, data: Record<string, unknown> = {}, desc?: string): string {
  return JSON.stringify({ code: 200, data: { result, ...data }, desc: desc ?? (result === Result.illegal ? "非法请求" : (DESC[result] ?? "")) });
}

/** A frame for a held poll's hub session: "m" (a stored message: read the store), or the notice itself. */
export function encode(ev: CoreEvent, _codec: string): Frame | undefined {
  if (ev.type === "message") return "m";
  if (ev.type === "notice" && ev.proto === "livepush") return JSON.stringify(ev.body);
  return undefined;
}
