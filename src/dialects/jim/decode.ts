// J-IM frames in (docs/jim.md): command numbers and lenient field reading (names matched without case or `_`,
// numbers also from numeric strings), for frames and for the handshake's query string alike. Pure.

export const Cmd = {
  unknown: 0,
  authReq: 3,
  authResp: 4,
  loginResp: 6,
  joinGroupReq: 7,
  joinGroupResp: 8,
  joinGroupNotify: 9,
  exitGroupNotify: 10,
  chat: 11,
  chatResp: 12,
  heartbeat: 13,
  close: 14,
  cancelMsgReq: 15,
  cancelMsgResp: 16,
  getUserReq: 17,
  getUserResp: 18,
  getMessageReq: 19,
  getMessageResp: 20,
} as const;

/** A frame's fields (or a query string's) by lower-case name without `_` (`userId` = `userid` = `user_id`). */
export type Fields = Map<string, unknown>;

export function fields(v: unknown): Fields {
  const m: Fields = new Map();
  const entries = v instanceof URLSearchParams ? v.entries() : v && typeof v === "object" && !Array.isArray(v) ? Object.entries(v) : [];
  for (const [k, x] of entries) m.set(k.toLowerCase().replace(/_/g, ""), x);
  return m;
}

/** An integer, also from a numeric string ("11"). */
export function int(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === "string" && /^\s*-?\d{1,16}\s*$/.test(v)) return Number(v);
  return undefined;
}

/** A non-empty string, also from a number. */
export function str(v: unknown): string | undefined {
  if (typeof v === "string") return v.length ? v : undefined;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** A frame's fields, or undefined when it is not JSON. */
export function decode(data: string | Buffer): Fields | undefined {
  try {
    return fields(JSON.parse(typeof data === "string" ? data : data.toString("utf8")));
  } catch {
    return undefined;
  }
}
