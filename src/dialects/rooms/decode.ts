// Rooms protocol frames in (seed 004, docs/rooms.md): the heartbeat texts, the limits of a frame, and a sent
// frame checked into a message body.
import { MESSAGE_TYPES, type RoomsBody, type Speaker } from "../../core/containers.ts";
import { fail } from "../../core/errors.ts";

/** The seed's heartbeat text (one of ROOMS_HEARTBEATS by default). */
export const HEARTBEAT = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97";

/**
 * Which frames are heartbeats (ROOMS_HEARTBEATS): a text of the list, spaces around it allowed. Costs a length
 * compare for any other frame, and a Set lookup for a short one.
 */
export function heartbeatTest(texts: readonly string[]): (raw: string) => boolean {
  const set = new Set(texts);
  const longest = Math.max(0, ...texts.map((t) => t.length));
  return (raw) => raw.length <= longest + 8 && (set.has(raw) || set.has(raw.trim()));
}

export const EVENT_TYPES = ["ordinary", "updateRoomName", "updateUserInfo", "createContainer", "addContainer", "removeContainer", "autoReturn"] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** Longest text of a message, and of a name or icon address. */
export const MAX_CONTENT = 10_000;
export const MAX_NAME = 64;
export const MAX_ICON = 1024;

export type Fields = Record<string, unknown>;

/** A non-empty string, also from a number (Java clients send ids as numbers). */
export function str(v: unknown): string | undefined {
  if (typeof v === "string") return v.length ? v : undefined;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

const bad = (message: string): never => fail("bad_request", message);

/** `accessoryContent` as an object, also from JSON text. */
function accessory(v: unknown, type: string): Record<string, unknown> {
  let o = v;
  if (typeof v === "string") {
    try {
      o = JSON.parse(v);
    } catch {
      o = undefined;
    }
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) bad(`a ${type} message needs accessoryContent, an object`);
  return o as Record<string, unknown>;
}

function duration(a: Record<string, unknown>, type: string): void {
  const d = a.duration;
  if (d === undefined || d === null) return;
  const n = typeof d === "string" && d.trim() !== "" ? Number(d) : d;
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) bad(`accessoryContent.duration of a ${type} message must be a number of seconds`);
}

function text(a: Record<string, unknown>, key: string, type: string, required: boolean): void {
  const v = a[key];
  if (v === undefined || v === null) {
    if (required) bad(`a ${type} message needs accessoryContent.${key}`);
    return;
  }
  if (typeof v !== "string" || (required && !v)) bad(`accessoryContent.${key} must be a string`);
}

/** The body of an ordinary message (eventType absent or `ordinary`), checked against its messageType. */
export function messageBody(f: Fields, who: Speaker): RoomsBody {
  const type = str(f.messageType);
  if (!type) bad(`messageType is required: one of ${MESSAGE_TYPES.join(", ")}`);
  if (!(MESSAGE_TYPES as readonly string[]).includes(type!)) fail("unknown_type", `unknown messageType "${type}": one of ${MESSAGE_TYPES.join(", ")}`);
  const raw = f.messageContent;
  const content = raw === undefined || raw === null ? "" : typeof raw === "string" ? raw : typeof raw === "number" ? String(raw) : bad("messageContent must be a string");
  if (content.length > MAX_CONTENT) bad(`messageContent is at most ${MAX_CONTENT} characters`);
  const body: RoomsBody = { messageType: type!, messageContent: content, eventType: "ordinary", nickName: who.name, userIcon: iconOf(f.userIcon) ?? who.icon };
  switch (type) {
    case "text":
      if (!content) bad("a text message needs messageContent");
      break;
    case "picture": {
      const a = accessory(f.accessoryContent, type);
      text(a, "file", type, true);
      text(a, "previewUrl", type, false);
      body.accessoryContent = a;
      break;
    }
    case "video":
    case "voice": {
      const a = accessory(f.accessoryContent, type);
      text(a, "file", type, true);
      if (type === "video") text(a, "previewUrl", type, false);
      duration(a, type);
      body.accessoryContent = a;
      break;
    }
    case "event": {
      const a = accessory(f.accessoryContent, type);
      text(a, "eventType", type, false);
      text(a, "eventDescription", type, false);
      body.accessoryContent = a;
      break;
    }
  }
  if (body.accessoryContent !== undefined && JSON.stringify(body.accessoryContent).length > MAX_CONTENT) bad(`accessoryContent is at most ${MAX_CONTENT} characters of JSON`);
  const accept = str(f.acceptId);
  const target = str(f.targetId);
  if (accept) body.acceptId = accept.slice(0, 128);
  if (target) body.targetId = target.slice(0, 128);
  return body;
}

/** An icon address from a frame, or undefined when absent. */
export function iconOf(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  if (v.length > MAX_ICON) bad(`an icon address is at most ${MAX_ICON} characters`);
  return v;
}

/** The messageType an event frame carries along (text when it names none of the five). */
export function typeOf(f: Fields): string {
  const t = str(f.messageType);
  return t && (MESSAGE_TYPES as readonly string[]).includes(t) ? t : "text";
}

/**
 * A frame's fields; `ignore` for a bare text that is no JSON at all (the original parses every frame as JSON and
 * drops one that fails, answering nothing); or the message of a bad_frame error for what was meant as JSON (it
 * starts with `{` or `[`) but is broken, and for JSON that is not an object.
 */
export function decode(raw: string): { fields: Fields } | { ignore: true } | { error: string } {
  let f: unknown;
  try {
    f = JSON.parse(raw);
  } catch {
    return /^\s*[[{]/.test(raw) ? { error: "a frame is a JSON object (or a heartbeat text)" } : { ignore: true };
  }
  if (typeof f !== "object" || f === null || Array.isArray(f)) return { error: "a frame is a JSON object" };
  return { fields: f as Fields };
}
