// Desk frames out (docs/desk.md): `{api_key, data, code, message, status}`, the codes of each request, a core
// error mapped to a request's own code, and the pushes. Pure functions of their input.
import { guestOf } from "../../core/conv-ids.ts";
import { FILE_TYPES } from "../../core/desk.ts";
import type { ErrorName } from "../../core/errors.ts";
import type { CoreEvent, Message } from "../../core/types.ts";

export const Codes = {
  ok: 200,
  relogin: -9999,
  badToken: -31001,
  noAgent: -31002,
  agentDisabled: -31003,
  groupDisabled: -31004,
  otherUser: -31005,
  contentGid: -32101,
  contentGroup: -32102,
  notYourGroup: -32103,
  readGid: -32201,
  readGroup: -32202,
  readNotYours: -32203,
  sendGid: -32301,
  sendMsg: -32302,
  sendFileType: -32303,
  sendNotYours: -32304,
  transferGid: -32403,
  transferAix: -32404,
  transferUnavailable: -32405,
  transferNotYours: -32406,
  sendBlocked: -32305,
  suspendStatus: -32501,
  badFrame: -10001,
  unknownApi: -10002,
  agentsOnly: -10003,
  rateLimited: -10004,
  failed: -10005,
} as const;

/**
 * The code a core error answers a request with: the request's own code where the protocol has one (an
 * ownership refusal of 32400 is -32406 whichever check caught it), else the envelope's general codes. Every
 * core error is listed, so a new one is a decision, not a fall-through (test/unit/error-mapping.test.ts).
 */
const GENERAL: Record<ErrorName, number> = {
  bad_frame: Codes.badFrame,
  unknown_type: Codes.unknownApi,
  bad_request: Codes.failed,
  unauthorized: Codes.relogin,
  forbidden: Codes.failed,
  blocked: Codes.failed,
  muted: Codes.failed,
  not_member: Codes.failed,
  not_found: Codes.failed,
  conflict: Codes.failed,
  recall_expired: Codes.failed,
  rate_limited: Codes.rateLimited,
  slow_mode: Codes.rateLimited,
  unavailable: Codes.failed,
  internal: Codes.failed,
};
const BY_REQUEST: Record<number, Partial<Record<ErrorName, number>>> = {
  32100: { forbidden: Codes.notYourGroup, not_member: Codes.notYourGroup, not_found: Codes.notYourGroup },
  32200: { forbidden: Codes.readNotYours, not_member: Codes.readNotYours, not_found: Codes.readNotYours },
  32300: { forbidden: Codes.sendNotYours, not_member: Codes.sendNotYours, not_found: Codes.sendNotYours, blocked: Codes.sendBlocked },
  32400: {
    forbidden: Codes.transferNotYours,
    not_member: Codes.transferNotYours,
    not_found: Codes.transferNotYours,
    unavailable: Codes.transferUnavailable,
    conflict: Codes.transferUnavailable,
  },
};
export function deskErrorCode(apiKey: number | undefined, name: ErrorName): number {
  return (apiKey !== undefined ? BY_REQUEST[apiKey]?.[name] : undefined) ?? GENERAL[name];
}
/** Pushes: a message for you, an assigned/transferred guest, your transfer done, your agent. */
export const Push = { message: 32399, assigned: 32401, handedOver: 32402, agent: 31100 } as const;

export function messageInfo(m: Message) {
  const body = m.body as { msg?: unknown } | null;
  const t = FILE_TYPES.indexOf(m.kind as (typeof FILE_TYPES)[number]);
  return {
    id: m.id,
    seq: m.seq,
    gid: guestOf(m.conv) ?? "",
    from: m.from,
    msg: body && typeof body === "object" && "msg" in body ? body.msg : body,
    file_type: t < 0 ? 0 : t,
    time: m.ts,
    ...(m.recalled ? { recalled: true } : {}),
  };
}

/** The envelope of every answer and push. */
export const frame = (apiKey: unknown, code: number, data: unknown = {}, message = ""): string =>
    JSON.stringify({ api_key: apiKey ?? null, data, code, message, status: code > 0 ? "Success" : "Fail" });

/** Dialect.encode: a message in a guest's conversation, and routing changes. */
export function encode(ev: CoreEvent): string | undefined {
  switch (ev.type) {
    case "message":
      if (!guestOf(ev.msg.conv)) return undefined;
      return frame(Push.message, Push.message, { gid: guestOf(ev.msg.conv), message_info: messageInfo(ev.msg) }, "new message");
    case "desk": {
      const gid = ev.guest.id;
      if (ev.change === "assigned") {
        return frame(Push.assigned, Push.assigned, { gid, guest_info: ev.guest, recs: (ev.recs ?? []).map(messageInfo), ...(ev.from ? { from_aix: ev.from } : {}) }, "guest online");
      }
      if (ev.change === "handed_over") return frame(Push.handedOver, Push.handedOver, { gid, aix: ev.agent, guest_info: ev.guest }, "transfer done");
      return frame(Push.agent, Push.agent, { gid, aix: ev.agent }, "agent assigned");
    }
    default:
      return undefined;
  }
}
