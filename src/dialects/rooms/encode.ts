// Rooms protocol frames out (seed 004, docs/rooms.md): messages, in/out notices and errors as the client
// receives them. Pure functions of their input.
import type { RoomsBody } from "../../core/containers.ts";
import { ErrorCodes, type ErrorName } from "../../core/errors.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import { containerOfConv, roomOfConv } from "../../core/conv-ids.ts";
import { str, type Fields } from "./decode.ts";

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

const isRoomsConv = (conv: string) => conv.startsWith("g:rooms:") || conv.startsWith("c:rooms:");
/** A message's frame, made once per message and shared by its recipients (a cache, not state). */
const frames = new WeakMap<Message, string>();

export function frameOf(m: Message): string {
  let f = frames.get(m);
  if (!f) frames.set(m, (f = messageFrame(m)));
  return f;
}

/** Dialect.encode: messages of rooms and containers, and in/out notices. */
export function encode(ev: CoreEvent): string | undefined {
  switch (ev.type) {
    case "message":
      return isRoomsConv(ev.msg.conv) ? frameOf(ev.msg) : undefined;
    case "roomNotice":
      return noticeFrame(ev);
    default:
      return undefined;
  }
}
