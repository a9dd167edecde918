// J-IM frames out (docs/jim.md): status codes with their exact texts, the chat body a core Message becomes, the
// failure answer of each command, and the pushes. Pure functions of their input.
import { directPeer } from "../../core/conv-ids.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import { Cmd } from "./decode.ts";

/** Status code → msg, byte for byte as the original server sends them. */
export const Status: Record<number, string> = {
  200: "success ",
  10000: "ok 发送成功",
  10001: "offline 用户不在线",
  10002:
    "send failed 消息发送失败,数据格式不正确,请参考:{'from':来源ID,'to':目标ID,'cmd':'消息命令码','createTime':消息创建时间(Long型),'msgType':Integer消息类型,'content':内容}",
  10003: "ok 获取用户信息成功!",
  10004: "get user failed ! 获取用户信息失败!",
  10005: "ok 获取所有在线用户信息成功!",
  10006: "ok 获取所有离线用户信息成功!",
  10007: "ok 登录成功!",
  10008: "login failed ! 登录失败!",
  10009: "ok 鉴权成功!",
  10010: "auth failed! 鉴权失败!",
  10011: "join group ok! 加入群组成功!",
  10012: "join group failed! 加入群组失败!",
  10013: "Protocol version number does not match 协议版本号不匹配!",
  10014: "unsupported cmd command 不支持的cmd命令!",
  10015: "get user message failed! 获取用户消息失败!",
  10016: "get user message ok! 获取离线消息成功!",
  10017: "cmd failed! 未知的cmd命令!",
  10018: "get user message ok! 获取历史消息成功!",
  10019: "online 用户在线",
  10020: "Invalid verification! 不合法校验",
  10021: "close ok! 关闭成功",
  10022: "ok! 拉取离线消息成功!",
};

/** `{code?, command, data?, msg?}` with null fields left out, keys in the original's (sorted) order. */
export function resp(code: number | undefined, command: number, data?: unknown): string {
  const o: Record<string, unknown> = {};
  if (code !== undefined) o.code = code;
  o.command = command;
  if (data !== undefined && data !== null) o.data = data;
  if (code !== undefined && Status[code]) o.msg = Status[code];
  return JSON.stringify(o);
}

/** A JSON object from a Map keyed by ids: null-prototype, so an id like `__proto__` is a key like any other. */
export function jsonObject<V>(m: ReadonlyMap<string, V>): Record<string, V> {
  const o = Object.create(null) as Record<string, V>;
  for (const [k, v] of m) o[k] = v;
  return o;
}

/** The group id of a group conversation (`g:<id>`), else undefined. */
export const groupOf = (conv: string) => (conv.startsWith("g:") ? conv.slice(2) : undefined);

/** What a J-IM send stores as the message body (read back by chatBody). */
export interface JimBody {
  content: string;
  msgType: number;
  createTime: number;
  extras?: unknown;
}

/** The J-IM id of a message: the sender's own id when it gave one, else the server id as 32 hex digits. */
export function jimId(m: Pick<Message, "id" | "cmid">): string {
  if (m.cmid) return m.cmid;
  return BigInt(m.id).toString(16).padStart(32, "0");
}

export const newJimId = () => crypto.randomUUID().replace(/-/g, "");

/**
 * A core message as a J-IM chat body. Messages written by other protocols get their body as `content`
 * (JSON text unless it is a string) and msgType 0.
 */
export function chatBody(m: Message): Record<string, unknown> {
  const b = m.body && typeof m.body === "object" && !Array.isArray(m.body) ? (m.body as Partial<JimBody>) : undefined;
  const jim = b !== undefined && typeof b.content === "string";
  const group = groupOf(m.conv);
  const o: Record<string, unknown> = {
    chatType: group !== undefined ? 1 : 2,
    cmd: Cmd.chat,
    content: jim ? b!.content : typeof m.body === "string" ? m.body : JSON.stringify(m.body),
    createTime: jim && typeof b!.createTime === "number" ? b!.createTime : m.ts,
  };
  if (jim && b!.extras !== undefined && b!.extras !== null) o.extras = b!.extras;
  o.from = m.from;
  // 3.x reads `groupId`, 2.x `group_id`: both (docs/jim.md, "Two generations").
  if (group !== undefined) (o.groupId = group), (o.group_id = group);
  o.id = jimId(m);
  o.msgType = jim && typeof b!.msgType === "number" ? b!.msgType : 0;
  o.to = group ?? directPeer(m.conv, m.from);
  return o;
}

/** A recall as J-IM pushes it (command 15): which message of which chat. */
export function recallBody(ev: Extract<CoreEvent, { type: "recall" }>): Record<string, unknown> {
  const group = groupOf(ev.conv);
  const o: Record<string, unknown> = { chatType: group !== undefined ? 1 : 2, cmd: Cmd.cancelMsgReq, from: ev.from };
  if (group !== undefined) (o.groupId = group), (o.group_id = group);
  o.id = jimId(ev);
  o.to = group ?? directPeer(ev.conv, ev.from);
  return o;
}

/** A user as both generations read it: 2.x `id`, 3.x `userId` (keys in sorted order, `extra` among them). */
export function jimUser(id: string, nick: string, extra: { avatar?: string; terminal?: string } = {}): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (extra.avatar !== undefined) o.avatar = extra.avatar;
  o.id = id;
  o.nick = nick;
  if (extra.terminal !== undefined) o.terminal = extra.terminal;
  o.userId = id;
  return o;
}

/**
 * Command 9 (joined, or came online) or 10 (left, or went offline): 2.x reads `data.group` and `data.user`, 3.x
 * the same fields at the top of the frame; both are sent.
 */
export function groupNotice(command: number, group: string, user: { id: string; nick: string }): string {
  const u = jimUser(user.id, user.nick);
  return JSON.stringify({ command, data: { group, user: u }, group, user: u });
}

/** A command's failure answer (code, command) when the core refuses it. */
export const FAILURE: Record<number, [number, number]> = {
  [Cmd.chat]: [10002, Cmd.chatResp],
  [Cmd.authReq]: [10010, Cmd.authResp],
  [Cmd.joinGroupReq]: [10012, Cmd.joinGroupResp],
  [Cmd.exitGroupNotify]: [10012, Cmd.exitGroupNotify],
  [Cmd.cancelMsgReq]: [10002, Cmd.cancelMsgResp],
  [Cmd.getUserReq]: [10004, Cmd.getUserResp],
  [Cmd.getMessageReq]: [10015, Cmd.getMessageResp],
};

/** A message's frame, made once per message and shared by its recipients (a cache, not state). */
const encoded = new WeakMap<Message, string>();

/** Dialect.encode: the pushes J-IM has (a message, a group join or exit, a member online or offline, a recall). */
export function encode(ev: CoreEvent): string | undefined {
  switch (ev.type) {
    case "message": {
      let frame = encoded.get(ev.msg);
      if (!frame) encoded.set(ev.msg, (frame = resp(undefined, Cmd.chat, chatBody(ev.msg))));
      return frame;
    }
    case "member": {
      const group = groupOf(ev.conv);
      if (group === undefined) return undefined;
      if (ev.change !== "join" && ev.change !== "leave") return undefined;
      return groupNotice(ev.change === "join" ? Cmd.joinGroupNotify : Cmd.exitGroupNotify, group, ev.user);
    }
    case "presence": {
      // A member came online (its first connection in the cluster) or went offline (its last one closed).
      const group = groupOf(ev.conv);
      if (group === undefined) return undefined;
      return groupNotice(ev.change === "online" ? Cmd.joinGroupNotify : Cmd.exitGroupNotify, group, ev.user);
    }
    case "recall":
      return resp(undefined, Cmd.cancelMsgReq, recallBody(ev));
    default:
      return undefined;
  }
}
