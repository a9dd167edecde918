// Social API answers and pushes out (docs/social.md): `{"datas": …}` or `{"error_code","error_msg"}`, the seed's
// push format of a message, and this server's receipt and friend pushes. Pure functions of their input and of
// the settings they were built with (time zone, image URL templates).
import { directPeer, groupIdOf, isRoomsConv } from "../../core/conv-ids.ts";
import type { ErrorName } from "../../core/errors.ts";
import { GROUP_KINDS } from "../../core/groups.ts";
import type { CoreEvent, Message } from "../../core/types.ts";

/** Every core error as this protocol's code (stable; docs/social.md lists them). */
export const CODES: Record<ErrorName, string> = {
  bad_frame: "10000",
  unknown_type: "10000",
  bad_request: "10000",
  unauthorized: "10001",
  forbidden: "10002",
  not_member: "10002",
  not_found: "10003",
  blocked: "10004",
  rate_limited: "10005",
  slow_mode: "10005",
  unavailable: "10006",
  muted: "10007",
  conflict: "10008",
  recall_expired: "10008",
  internal: "10009",
};

/** The text of each code (the error_msg adds what went wrong). */
export const TEXTS: Record<string, string> = {
  "10000": "参数错误",
  "10001": "未登录",
  "10002": "无权限",
  "10003": "不存在",
  "10004": "对方已将你拉黑",
  "10005": "请求过于频繁",
  "10006": "服务器繁忙，请稍后重试",
  "10007": "你已被禁言",
  "10008": "操作冲突",
  "10009": "服务器内部错误",
};

export const ok = (datas: unknown) => ({ datas });
export const failure = (code: string, detail: string) => ({ error_code: code, error_msg: detail ? `${TEXTS[code] ?? ""}: ${detail}` : (TEXTS[code] ?? "") });

/** group kind ↔ group_type (1 user group, 2 interest group, 3 neighbourhood, 4 service account). */
export const groupType = (kind: string | undefined) => GROUP_KINDS.indexOf(kind as never) + 1;

/** How times and pictures look: made once from the settings. */
export interface Formats {
  /** `YYYY-MM-DD HH:MM:SS` in the configured time zone */
  time(ms: number): string;
  /** an image body's `{pic_small, pic_big}` */
  pics(body: Record<string, unknown>): { pic_small: string; pic_big: string };
}

export function formats(s: { socialTimeZone: string; socialImageSmallUrl: string; socialImageBigUrl: string }): Formats {
  const f = new Intl.DateTimeFormat("en-GB", {
    timeZone: s.socialTimeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const fill = (tpl: string, b: Record<string, unknown>) => {
    const format = String(b.format ?? "JPEG");
    const ext = format.toLowerCase() === "jpeg" ? "jpg" : format.toLowerCase();
    const vals = new Map<string, string>([
      ["id", String(b.id ?? "")],
      ["hash", String(b.hash ?? "")],
      ["host", String(b.host ?? "")],
      ["format", format],
      ["ext", ext],
      ["width", String(b.width ?? "")],
      ["height", String(b.height ?? "")],
    ]);
    return tpl.replace(/\{(\w+)\}/g, (m, k: string) => (vals.has(k) ? encodeURIComponent(vals.get(k)!) : m));
  };
  return {
    time(ms) {
      const p = new Map(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
      return `${p.get("year")}-${p.get("month")}-${p.get("day")} ${p.get("hour")}:${p.get("minute")}:${p.get("second")}`;
    },
    pics: (b) => ({ pic_small: fill(s.socialImageSmallUrl, b), pic_big: fill(s.socialImageBigUrl, b) }),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

/** A message's msg_type and body as pushed: text, image (pictures), card; other protocols' kinds as text. */
export function pushBody(m: Pick<Message, "kind" | "body" | "recalled">, fmt: Formats): { msg_type: string; body: unknown } {
  const b = m.body;
  if (m.kind === "image" && isObject(b)) return { msg_type: "2", body: fmt.pics(b) };
  if (m.kind === "card" && isObject(b)) return { msg_type: "3", body: b };
  if (isObject(b) && typeof b.text === "string") return { msg_type: "1", body: { text: b.text } };
  if (m.recalled) return { msg_type: "1", body: { text: "" } };
  return { msg_type: "1", body: { text: typeof b === "string" ? b : JSON.stringify(b) } };
}

/** A sender as a push shows it. */
export interface SenderInfo {
  nick: string;
  avatar: string;
}

/** The seed's push of a message; `group` is the group's kind for a group message. */
export function pushOf(m: Message, sender: SenderInfo | undefined, group: string | undefined, fmt: Formats): Record<string, unknown> {
  const { msg_type, body } = pushBody(m, fmt);
  const o: Record<string, unknown> = { msg_type, msg_id: m.id, send_time: fmt.time(m.ts) };
  const gid = groupIdOf(m.conv);
  if (gid !== undefined) o.group = { group_id: gid, group_type: String(groupType(group) || 1) };
  o.from = { uid: m.from, nickname: sender?.nick ?? "", photo: sender?.avatar ?? "" };
  o.body = body;
  // Additions: the conversation position (receipt pushes refer to it) and, in a 1:1 chat, the recipient.
  o.seq = m.seq;
  const peer = directPeer(m.conv, m.from);
  if (peer !== undefined) o.to_uid = peer;
  return o;
}

/** Dialect.encode of the push socket: messages, receipts, friend applications. */
export function encodePush(ev: CoreEvent, fmt: Formats): string | undefined {
  switch (ev.type) {
    case "message": {
      const c = ev.msg.conv;
      if ((!c.startsWith("d:") && !c.startsWith("g:")) || isRoomsConv(c)) return undefined;
      return JSON.stringify(pushOf(ev.msg, ev.sender, ev.group, fmt));
    }
    case "cursor": {
      // `uid` moved its received (3) or read (4) mark up to `seq` in its chat with `peer_uid`, or in a group.
      const r: Record<string, unknown> = { uid: ev.user, status: ev.field === "read" ? "4" : "3", seq: ev.seq };
      const peer = directPeer(ev.conv, ev.user);
      const gid = groupIdOf(ev.conv);
      if (peer !== undefined) r.peer_uid = peer;
      else if (gid !== undefined) r.group_id = gid;
      else return undefined;
      return JSON.stringify({ receipt: r });
    }
    case "receipts": {
      const gid = groupIdOf(ev.conv);
      if (gid === undefined) return undefined;
      return JSON.stringify({ receipt_counts: { group_id: gid, counts: ev.counts.map((c) => ({ seq: c.seq, received: c.delivered, read: c.read })) } });
    }
    case "friend":
      return JSON.stringify({ friend: { change: ev.change, uid: ev.user.id, nickname: ev.user.nick, ...(ev.note ? { comment: ev.note } : {}) } });
    default:
      return undefined;
  }
}
