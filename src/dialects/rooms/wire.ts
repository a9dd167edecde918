// Rooms protocol wire format (seed 004, docs/rooms.md): the heartbeat text, the sent frame checked into a
// message body, and the frames a client receives (messages, in/out notices, errors).
import { MESSAGE_TYPES, type RoomsBody, type Speaker } from "../../core/containers.ts";
import { ErrorCodes, fail, type ErrorName } from "../../core/errors.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import { containerOfConv, roomOfConv } from "../../core/conv-ids.ts";

/** Sent by an idle client; refreshes the idle timer and is not answered. */
export const HEARTBEAT = "d98591378b184375b1c3ab5ded0964f0e6c00ba934154583ac97";

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

/** A message as the client receives it. Bodies written by other protocols show as text. */
export function messageFrame(m: Message): string {
  const b = m.body && typeof m.body === "object" && !Array.isArray(m.body) ? (m.body as Partial<RoomsBody>) : undefined;
  const ours = typeof b?.messageType === "string";
  const o: Record<string, unknown> = {
    messageContent: ours ? b!.messageContent ?? "" : typeof m.body === "string" ? m.body : JSON.stringify(m.body),
    messageType: ours ? b!.messageType : "text",
    eventType: ours ? b!.eventType ?? "ordinary" : "ordinary",
  };
  if (ours && b!.acceptId !== undefined) o.acceptId = b!.acceptId;
  o.nickName = ours ? b!.nickName ?? "" : "";
  o.createUser = m.from;
  o.createTime = m.ts;
  const container = containerOfConv(m.conv);
  if (container !== undefined) o.containerId = container;
  const room = roomOfConv(m.conv);
  if (room !== undefined) o.roomName = room;
  if (ours && b!.targetId !== undefined) o.targetId = b!.targetId;
  o.userIcon = ours ? b!.userIcon ?? "" : "";
  if (ours && b!.accessoryContent !== undefined) o.accessoryContent = b!.accessoryContent;
  if (ours && b!.code !== undefined) o.code = b!.code;
  o.messageId = m.id;
  o.seq = m.seq;
  return JSON.stringify(o);
}

/** In/out notices with the seed's texts; a name or icon change as an updateUserInfo event. */
export function noticeFrame(ev: Extract<CoreEvent, { type: "roomNotice" }>): string {
  const container = containerOfConv(ev.conv);
  if (ev.action === "userInfo") {
    return JSON.stringify({
      messageContent: ev.user.nick,
      messageType: "text",
      eventType: "updateUserInfo",
      nickName: ev.user.nick,
      createUser: ev.user.id,
      createTime: ev.ts,
      ...(container !== undefined ? { containerId: container } : {}),
      roomName: ev.room,
      userIcon: ev.user.icon,
      userIconUpdate: ev.user.icon,
    });
  }
  const name = ev.user.nick;
  const text =
    ev.action === "in"
      ? `${name} 进来了，现在共有【${ev.count}】人在线`
      : ev.action === "out"
        ? `${name}, 离开了，现在共有【${ev.count}】人在线`
        : `${name} 关闭了容器，所有人已退出，现在共有【0】人在线`;
  return JSON.stringify({
    messageType: "notice",
    nickName: name,
    count: ev.count,
    userId: ev.user.id,
    action: ev.action,
    messageContent: text,
    roomName: ev.room,
    ...(container !== undefined ? { containerId: container } : {}),
  });
}

/** An error answer: the connection stays open (a refused login is closed after it). */
export function errorFrame(name: ErrorName, message: string, f?: Fields, retryAfterMs?: number): string {
  const o: Record<string, unknown> = { messageType: "error", code: ErrorCodes[name], error: name, messageContent: message };
  if (retryAfterMs) o.retryAfterMs = retryAfterMs;
  const ev = f && str(f.eventType);
  if (ev) o.eventType = ev;
  return JSON.stringify(o);
}
