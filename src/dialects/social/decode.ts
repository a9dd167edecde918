// Social API requests in (docs/social.md): the parameters of a request (query string, then a form-encoded,
// multipart or JSON body), and one decoder per interface that checks them and returns the typed command, or
// throws the parameter error (10000). Values are accepted as the app sends them: numbers as numbers or as
// strings, `message` as a JSON object or a JSON string of one. Pure: parameters are kept in a Map.
import { GROUP_KINDS } from "../../core/groups.ts";
import { USER_ID_RE } from "../../core/ids.ts";
import type { SendInput } from "../../core/chat.ts";

/** A request's parameters by name (client input: a Map, never a plain object). */
export type Params = Map<string, unknown>;

/** A request this protocol refuses before any core command: its code and text (docs/social.md). */
export class Refusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const PARAM_ERROR = "10000";
const bad = (msg: string): never => {
  throw new Refusal(PARAM_ERROR, msg);
};

/** The parameters of a request: the query string, overridden by the body's fields. */
export async function readParams(req: Request, url: URL): Promise<Params> {
  const p: Params = new Map();
  for (const [k, v] of url.searchParams) p.set(k, v);
  if (req.method === "GET" || req.method === "HEAD" || !req.body) return p;
  const type = (req.headers.get("content-type") ?? "").toLowerCase();
  if (type.startsWith("multipart/form-data")) {
    let form: FormData;
    try {
      form = await req.formData();
    } catch {
      return bad("the multipart body does not parse");
    }
    for (const [k, v] of form) if (typeof v === "string") p.set(k, v);
    return p;
  }
  const text = await req.text();
  if (type.startsWith("application/json") || /^\s*\{/.test(text)) {
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch {
      return bad("the body is not valid JSON");
    }
    if (!o || typeof o !== "object" || Array.isArray(o)) return bad("the JSON body must be an object");
    for (const k of Object.keys(o)) p.set(k, (o as Record<string, unknown>)[k]);
    return p;
  }
  for (const [k, v] of new URLSearchParams(text)) p.set(k, v);
  return p;
}

/** The bearer token of an `Authorization: Bearer <token>` header, else undefined. */
export function bearer(req: Request): string | undefined {
  return req.headers.get("authorization")?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
}

// ── values ──────────────────────────────────────────────────────────────────────────────────────

/** An integer given as a number or a decimal string, else undefined. */
export function int(v: unknown): number | undefined {
  if (typeof v === "number") return Number.isSafeInteger(v) ? v : undefined;
  if (typeof v === "string" && /^-?\d{1,15}$/.test(v.trim())) return Number(v.trim());
  return undefined;
}

const present = (v: unknown) => v !== undefined && v !== null && v !== "";

function needInt(p: Params, name: string, min: number, max: number, def?: number): number {
  const v = p.get(name);
  if (!present(v)) return def ?? bad(`\`${name}\` is required`);
  const n = int(v);
  if (n === undefined || n < min || n > max) return bad(`\`${name}\` must be an integer from ${min} to ${max}`);
  return n;
}

/** An id (user, group, service account): a string of [A-Za-z0-9_.@-], or an integer. */
function needId(p: Params, name: string): string {
  const v = p.get(name);
  if (!present(v)) return bad(`\`${name}\` is required`);
  const s = typeof v === "number" && Number.isSafeInteger(v) ? String(v) : typeof v === "string" ? v.trim() : "";
  if (!USER_ID_RE.test(s)) return bad(`\`${name}\` must be an id (1-128 characters of [A-Za-z0-9_.@-])`);
  return s;
}

function optId(p: Params, name: string): string | undefined {
  return present(p.get(name)) ? needId(p, name) : undefined;
}

/** A comma list of ids (`1,2,3`), at most `max`. */
function idList(p: Params, name: string, max: number, re: RegExp = USER_ID_RE): string[] {
  const v = p.get(name);
  const s = typeof v === "number" && Number.isSafeInteger(v) ? String(v) : typeof v === "string" ? v : Array.isArray(v) ? v.join(",") : "";
  const ids = s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x);
  if (!ids.length) return bad(`\`${name}\` is required: a comma list of ids`);
  if (ids.length > max) return bad(`\`${name}\` takes at most ${max} ids`);
  for (const id of ids) if (!re.test(id)) bad(`\`${name}\`: \`${id.slice(0, 32)}\` is not an id`);
  return ids;
}

/** Paging: `page` from 1 (default 1), `page_size` from 1 (default: all, or `defSize`). */
function paging(p: Params, defSize?: number): { page: number; size?: number } {
  return { page: needInt(p, "page", 1, 1_000_000, 1), size: present(p.get("page_size")) ? needInt(p, "page_size", 1, 500) : defSize };
}

const MSG_ID_RE = /^[1-9]\d{0,18}$/;

// ── messages ────────────────────────────────────────────────────────────────────────────────────

/** msg_type → the core message kind. */
export const KINDS = new Map<number, string>([
  [1, "text"],
  [2, "image"],
  [3, "card"],
]);

const IMAGE_STR = /^[\w.-]{1,128}$/;
const FORMAT_RE = /^[A-Za-z0-9]{1,16}$/;
const MAX_TEXT = 10_000;
const MAX_URL = 2048;

function numField(o: Record<string, unknown>, k: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null || v === "") return undefined;
  const n = int(v);
  if (n === undefined || n < 0) return bad(`image \`${k}\` must be a non-negative integer`);
  return n;
}

function strField(o: Record<string, unknown>, k: string, re: RegExp, what: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string" || !re.test(v)) return bad(`\`${k}\` must be ${what}`);
  return v;
}

function textField(o: Record<string, unknown>, k: string, max: number, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return required ? bad(`\`${k}\` is required`) : undefined;
  if (typeof v !== "string" || v.length > max) return bad(`\`${k}\` must be a string of at most ${max} characters`);
  return v;
}

/** A message body of msg_type 1, 2 or 3 as stored (the core's kind and body). */
export function bodyOf(type: number, raw: unknown): SendInput {
  const kind = KINDS.get(type);
  if (!kind) return bad("`msg_type` is 1 (text), 2 (image) or 3 (rich card)");
  let o = raw;
  if (typeof o === "string") {
    try {
      o = JSON.parse(o);
    } catch {
      return bad("the message body must be a JSON object");
    }
  }
  if (!o || typeof o !== "object" || Array.isArray(o)) return bad("the message body must be a JSON object");
  const b = o as Record<string, unknown>;
  if (kind === "text") {
    const text = textField(b, "text", MAX_TEXT, true)!;
    if (!text) bad("`text` must not be empty");
    return { kind, body: { text } };
  }
  if (kind === "image") {
    const id = strField(b, "id", IMAGE_STR, "an image id");
    const hash = strField(b, "hash", IMAGE_STR, "an image hash");
    if (!id && !hash) bad("an image needs its `id` or `hash`");
    const host = b.host === undefined || b.host === null || b.host === "" ? undefined : typeof b.host === "number" ? numField(b, "host") : strField(b, "host", IMAGE_STR, "an image host");
    const body: Record<string, unknown> = {
      id: id ?? hash,
      hash: hash ?? id,
      format: strField(b, "format", FORMAT_RE, "an image format (JPEG, PNG…)") ?? "JPEG",
      width: numField(b, "width") ?? 0,
      height: numField(b, "height") ?? 0,
      size: numField(b, "size") ?? 0,
      exists: numField(b, "exists") ?? 1,
      host: host ?? 1,
    };
    return { kind, body };
  }
  const card: Record<string, unknown> = {
    title: textField(b, "title", 512, true),
    desc: textField(b, "desc", 4096, false) ?? "",
    img: textField(b, "img", MAX_URL, false) ?? "",
    url: textField(b, "url", MAX_URL, false) ?? "",
    date: b.date === undefined || b.date === null ? "" : typeof b.date === "number" ? String(b.date) : textField(b, "date", 64, false),
  };
  return { kind, body: card };
}

/** `message`: `{"msg_type": n, "body": {...}}` as an object or a JSON string of one. */
function message(p: Params): SendInput {
  let m = p.get("message");
  if (!present(m)) return bad("`message` is required");
  if (typeof m === "string") {
    try {
      m = JSON.parse(m);
    } catch {
      return bad("`message` must be a JSON object");
    }
  }
  if (!m || typeof m !== "object" || Array.isArray(m)) return bad("`message` must be a JSON object");
  const o = m as Record<string, unknown>;
  const type = int(o.msg_type);
  if (type === undefined) return bad("`message.msg_type` is 1 (text), 2 (image) or 3 (rich card)");
  return { ...bodyOf(type, o.body), cmid: cmid(p) };
}

/** `cmid` (an addition): the client's id of a send, so a retry returns the first message's id. */
function cmid(p: Params): string | undefined {
  const v = p.get("cmid");
  if (!present(v)) return undefined;
  const s = typeof v === "number" ? String(v) : v;
  if (typeof s !== "string" || !/^[\w.:-]{1,64}$/.test(s)) return bad("`cmid` is 1-64 characters of [A-Za-z0-9_.:-]");
  return s;
}

// ── interfaces ─────────────────────────────────────────────────────────────────────────────────

export const decoders = {
  getUserList: (p: Params) => ({ group: needId(p, "belong_id"), searchType: needInt(p, "search_type", 1, 2), ...paging(p) }),
  sendMessage: (p: Params) => ({ to: needId(p, "to_uid"), sendType: needInt(p, "send_type", 0, 2, 0), input: message(p) }),
  sendGroupMessage: (p: Params) => ({ groupType: needInt(p, "group_type", 1, GROUP_KINDS.length, 1), group: needId(p, "to_uid"), input: message(p) }),
  receiveStatus: (p: Params) => {
    const ids = idList(p, "msg_id", 100, MSG_ID_RE);
    if (needInt(p, "status", 0, 99) !== 3) bad("`status` is 3 (received)");
    return { ids };
  },
  readStatus: (p: Params) => {
    const ids = idList(p, "msg_id", 1, MSG_ID_RE);
    if (needInt(p, "status", 0, 99) !== 4) bad("`status` is 4 (read)");
    return { ids };
  },
  user: (p: Params) => ({ to: needId(p, "to_uid") }),
  page: (p: Params) => paging(p),
  friendApply: (p: Params) => {
    const c = p.get("comment");
    if (c === undefined || c === null) bad("`comment` is required");
    if (typeof c !== "string" || c.length > 200) bad("`comment` is a string of at most 200 characters");
    return { to: needId(p, "to_uid"), comment: c as string };
  },
  apply: (p: Params) => ({ from: needId(p, "relation_apply_id") }),
  offline: (p: Params) => ({ size: needInt(p, "page_size", 1, 500, 100) }),
  cmsSend: (p: Params) => {
    const type = needInt(p, "msg_type", 1, 3);
    const raw = p.get("message");
    if (!present(raw)) bad("`message` is required");
    return { service: needId(p, "service_id"), users: idList(p, "user_id", 1000), input: bodyOf(type, raw) };
  },
  cmsMessages: (p: Params) => ({
    service: needId(p, "service_id"),
    searchType: needInt(p, "search_type", 1, 2),
    user: optId(p, "user_id"),
    ...paging(p, 50),
  }),
};

export type Decoded<K extends keyof typeof decoders> = ReturnType<(typeof decoders)[K]>;
