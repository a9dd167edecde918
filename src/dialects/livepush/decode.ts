// Livepush requests in (docs/livepush.md): the query string and a form or JSON body read into one Map (keys are
// client input), then each endpoint's typed request, or the reason it is refused. Pure except reading the body.
import { USER_ID_RE } from "../../core/ids.ts";
import type { SendFields } from "../../core/livepush-fields.ts";

export type Params = Map<string, unknown>;

/** The query string, then the body's fields (form or JSON) over it. Undefined for a body that is not either. */
export async function readParams(req: Request): Promise<Params | undefined> {
  const p: Params = new Map();
  for (const [k, v] of new URL(req.url).searchParams) p.set(k, v);
  if (req.method === "GET" || req.method === "HEAD" || !req.body) return p;
  const text = await req.text();
  if (!text.trim()) return p;
  const type = req.headers.get("content-type") ?? "";
  if (type.includes("json") || /^\s*\{/.test(text)) {
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (!o || typeof o !== "object" || Array.isArray(o)) return undefined;
    for (const [k, v] of Object.entries(o)) p.set(k, v);
    return p;
  }
  for (const [k, v] of new URLSearchParams(text)) p.set(k, v);
  return p;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : typeof v === "number" && Number.isFinite(v) ? String(v) : undefined);

/** The app's common parameters: who (`uid`) and its login token. */
export function credentials(p: Params): { uid: string; token: string } | undefined {
  const uid = str(p.get("uid"));
  const token = str(p.get("token"));
  if (!uid || !USER_ID_RE.test(uid) || !token) return undefined;
  return { uid, token };
}

export interface PollRequest {
  /** the last msg_id the client took from the previous answer; "0" none; absent: the whole previous answer */
  ack?: string;
}

export function pollRequest(p: Params): PollRequest {
  const ack = str(p.get("ack"));
  return ack === undefined ? {} : { ack };
}

/** A send: the recipients and the message's fields as the core takes them. */
export interface SendRequest extends SendFields {
  to: string[];
}

export function sendRequest(p: Params): SendRequest | string {
  const raw = p.get("to_uid");
  const list = Array.isArray(raw) ? raw.map(str) : (str(raw) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.some((u) => u === undefined || !USER_ID_RE.test(u))) return "`to_uid` must be a user id (or several, comma-separated)";
  const cmid = p.get("cmid");
  if (cmid !== undefined && (typeof cmid !== "string" || cmid.length === 0 || cmid.length > 64)) return "`cmid` must be 1-64 characters";
  return {
    to: list as string[],
    content: p.get("content"),
    content_type: p.get("content_type"),
    audio_time: p.get("audio_time"),
    charge_photo: p.get("charge_photo"),
    is_hello: p.get("is_hello"),
    cmid: cmid as string | undefined,
  };
}

const LISTS = ["replies", "lines", "scripts", "declines", "behaviours"] as const;

/** A host's hosting settings: `on` (1/0), `greeting`, and lists (JSON arrays, or JSON text of one in a form). */
export function hostingRequest(p: Params): Record<string, unknown> | string {
  const out: Record<string, unknown> = {};
  const on = p.get("on");
  if (on !== undefined) {
    if (on === true || on === 1 || on === "1" || on === "true") out.on = true;
    else if (on === false || on === 0 || on === "0" || on === "false") out.on = false;
    else return "`on` must be 1 or 0";
  }
  if (p.has("greeting")) out.greeting = p.get("greeting");
  for (const k of LISTS) {
    let v = p.get(k);
    if (v === undefined) continue;
    if (typeof v === "string") {
      try {
        v = JSON.parse(v);
      } catch {
        return `\`${k}\` must be a JSON array of lines`;
      }
    }
    if (!Array.isArray(v)) return `\`${k}\` must be a JSON array of lines`;
    out[k] = v;
  }
  return out;
}
