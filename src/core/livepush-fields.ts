// The livepush protocol's messages (docs/livepush.md): the seed's fields of a message and of `user_info`, what a
// livepush message stores as its body, a host's hosting settings, the chat_types, and the checks of the fields a
// sender gives. The rules that use them are in core/livepush.ts.
import { fail } from "./errors.ts";

/** The seed's `user_info`. */
export interface UserInfo {
  id: string;
  nickname: string;
  head_image: string;
  vip: string;
  sex: string;
  user_type: string;
  enable_call: number;
  video_price: number;
  audio_price: number;
  gift_count: number;
}

/** One message as a poll returns it (the seed's fields plus `msg_id`). */
export interface LpMessage {
  msg_id: string;
  uid: number | string;
  receive_uid: number | string;
  content: string;
  ctime: number;
  is_hello: number;
  chat_type: number;
  content_type: number;
  audio_time: number;
  charge_photo: number;
  is_recommend: number;
  user_info: UserInfo;
  call_data?: Record<string, unknown>;
  gift_data?: Record<string, unknown>;
  demand_gift?: Record<string, unknown>;
  redpacket?: number;
}

/** What a livepush message stores as its body (other protocols read `content`). */
export interface LpBody {
  content: string;
  content_type: number;
  chat_type: number;
  is_hello?: number;
  audio_time?: number;
  charge_photo?: number;
  is_recommend?: number;
  redpacket?: number;
  call_data?: Record<string, unknown>;
  gift_data?: Record<string, unknown>;
  demand_gift?: Record<string, unknown>;
  /** notices and hosting copies (in the system conversation): who it is about, and who receives it */
  uid?: string;
  receive_uid?: string;
}

/** A host's hosting (托管) settings, kept in her user attributes under `hosting`. */
export interface Hosting {
  on: boolean;
  /** 25 (new users) and 29 (male users, when she comes online) */
  greeting: string;
  /** 26: auto-replies to users who write to her */
  replies: string[];
  /** 27: lines sent when the app backend asks */
  lines: string[];
  /** 41: scripted lines for new users */
  scripts: string[];
  /** 42: lines for a new user who declined */
  declines: string[];
  /** 44: behaviour messages */
  behaviours: string[];
}

export const HOSTING_LISTS = ["replies", "lines", "scripts", "declines", "behaviours"] as const;
/** hosting trigger chat_type → the list of the host's lines it sends */
export const HOSTING_TRIGGERS = new Map<number, (typeof HOSTING_LISTS)[number]>([
  [27, "lines"],
  [41, "scripts"],
  [42, "declines"],
  [44, "behaviours"],
]);
/** chat_types sent by hosting: never answered by an auto-reply */
export const AUTOMATIC = new Set([21, 22, 23, 24, 25, 26, 27, 29, 40, 41, 42, 43, 44]);
/** chat_types the app backend publishes between two users */
export const PUBLISHED = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

const MAX_CONTENT = 4000;
const MAX_LINE = 500;
export const MAX_LINES = 20;
export const num = (v: unknown, def: number) => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v !== "" && Number.isFinite(Number(v)) ? Number(v) : def);
/** A user id as the app's clients read it: a number when it is one. */
export const wireId = (id: string): number | string => (/^[1-9]\d{0,14}$/.test(id) ? Number(id) : id);

/** The seed's chat_type of a message between two users, from their roles (robot, matchmaker, service). */
export function chatTypeOf(senderRole: string | undefined, recipientRole: string | undefined): number {
  if (senderRole === "robot") return 3;
  if (recipientRole === "robot") return 1;
  if (senderRole === "advisor") return 2;
  if (recipientRole === "advisor") return 5;
  if (senderRole === "service" || senderRole === "agent") return 6;
  return 4;
}

/** The fields of a message the send endpoint and the server API take. */
export interface SendFields {
  content?: unknown;
  content_type?: unknown;
  audio_time?: unknown;
  charge_photo?: unknown;
  is_hello?: unknown;
  cmid?: string;
}

export interface PublishExtras {
  is_recommend?: unknown;
  redpacket?: unknown;
  call_data?: unknown;
  gift_data?: unknown;
  demand_gift?: unknown;
}

function int(v: unknown, name: string, min: number, max: number, def: number): number {
  if (v === undefined || v === null || v === "") return def;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) fail("bad_request", `\`${name}\` must be an integer from ${min} to ${max}`);
  return n as number;
}

export function checkFields(f: SendFields): LpBody {
  const content = f.content ?? "";
  if (typeof content !== "string" || content.length > MAX_CONTENT) fail("bad_request", `\`content\` must be text of at most ${MAX_CONTENT} characters`);
  const contentType = int(f.content_type, "content_type", 1, 7, 1);
  if (contentType === 1 && content === "") fail("bad_request", "`content` is required");
  return {
    content: content as string,
    content_type: contentType,
    chat_type: 4,
    is_hello: int(f.is_hello, "is_hello", 0, 1, 0),
    audio_time: int(f.audio_time, "audio_time", 0, 86400, 0),
    charge_photo: int(f.charge_photo, "charge_photo", 0, 1, 0),
  };
}

function obj(v: unknown, name: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v) || JSON.stringify(v).length > 4000) fail("bad_request", `\`${name}\` must be an object`);
  return v as Record<string, unknown>;
}

export function checkExtras(f: PublishExtras, chatType: number): Partial<LpBody> {
  const out: Partial<LpBody> = {};
  out.is_recommend = int(f.is_recommend, "is_recommend", 0, 1, 0);
  if (f.redpacket !== undefined) out.redpacket = int(f.redpacket, "redpacket", 0, 1, 0);
  const call = obj(f.call_data, "call_data");
  if (call && [7, 8, 9, 10].includes(chatType)) out.call_data = call;
  const gift = obj(f.gift_data, "gift_data");
  if (gift && chatType === 11) out.gift_data = gift;
  const demand = obj(f.demand_gift, "demand_gift");
  if (demand) out.demand_gift = demand;
  if ([7, 8, 9, 10].includes(chatType) && !out.call_data) fail("bad_request", "`call_data` is required for chat_type 7-10");
  if (chatType === 11 && !out.gift_data) fail("bad_request", "`gift_data` is required for chat_type 11");
  return out;
}

export function line(v: unknown, name: string): string {
  if (typeof v !== "string" || v.length > MAX_LINE) fail("bad_request", `\`${name}\`: lines of at most ${MAX_LINE} characters`);
  return v as string;
}

export const callIdOf = (d: unknown): string | undefined => {
  const id = d && typeof d === "object" ? (d as Record<string, unknown>).call_id : undefined;
  return typeof id === "string" || typeof id === "number" ? String(id) : undefined;
};

export function toInput(b: LpBody): { kind: string; body: LpBody } {
  const plain = b.content_type === 1 && !b.call_data && !b.gift_data && !b.demand_gift;
  return { kind: plain ? "text" : "livepush", body: b };
}

export function hostingOf(a: Record<string, unknown> | undefined): Hosting | undefined {
  const h = a?.hosting;
  if (!h || typeof h !== "object") return undefined;
  const o = h as Record<string, unknown>;
  const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
  return {
    on: o.on === true,
    greeting: typeof o.greeting === "string" ? o.greeting : "",
    replies: list(o.replies),
    lines: list(o.lines),
    scripts: list(o.scripts),
    declines: list(o.declines),
    behaviours: list(o.behaviours),
  };
}

/** A stored body as livepush fields: a livepush body as is; another protocol's text as `content`. */
export function bodyOf(body: unknown): Partial<LpBody> {
  if (typeof body === "string") return { content: body };
  if (!body || typeof body !== "object" || Array.isArray(body)) return { content: JSON.stringify(body ?? null) };
  const b = body as Record<string, unknown>;
  if (typeof b.content === "string") return b as Partial<LpBody>;
  if (typeof b.text === "string") return { content: b.text };
  return { content: JSON.stringify(b) };
}

export function lpMessage(id: string, uid: string, to: string, b: Partial<LpBody>, chatType: number, ctime: number, info: UserInfo): LpMessage {
  const m: LpMessage = {
    msg_id: id,
    uid: wireId(uid),
    receive_uid: wireId(to),
    content: b.content ?? "",
    ctime,
    is_hello: b.is_hello ?? 0,
    chat_type: chatType,
    content_type: b.content_type ?? 1,
    audio_time: b.audio_time ?? 0,
    charge_photo: b.charge_photo ?? 0,
    is_recommend: b.is_recommend ?? 0,
    user_info: info,
  };
  if (b.call_data) m.call_data = b.call_data;
  if (b.gift_data) m.gift_data = b.gift_data;
  if (b.demand_gift) m.demand_gift = b.demand_gift;
  if (b.redpacket !== undefined) m.redpacket = b.redpacket;
  return m;
}
