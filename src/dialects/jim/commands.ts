// The J-IM command table (docs/jim.md): command number → the core command it calls. Every rule is the core's;
// a handler reads its frame's fields, calls the core and answers with the command's codes (a failure the core
// refuses is the command's failure code, encode.ts FAILURE). Reads (19, 17) take READ_COST from the rate limit.
import type { App } from "../../app.ts";
import { MAX_PAGE } from "../../core/chat.ts";
import { isRecent } from "../../core/contacts.ts";
import { CoreError } from "../../core/errors.ts";
import { directConvId, groupConvId } from "../../core/conv-ids.ts";
import type { Charge } from "../../core/limits.ts";
import type { Message } from "../../core/types.ts";
import type { Session } from "../../hub/session.ts";
import type { UserRow } from "../../core/records.ts";
import { Cmd, fields, int, str, type Fields } from "./decode.ts";
import { chatBody, groupOf, jimUser, jsonObject, newJimId, resp, type JimBody } from "./encode.ts";

/** Offline pulls read at most this many pages of MAX_PAGE. */
const MAX_OFFLINE_PAGES = 20;

export interface Command {
  charge?: Charge;
  run(s: Session, me: string, f: Fields): Promise<void>;
}

/** The core services J-IM calls. */
export type JimCore = Pick<App, "chat" | "hub" | "logins" | "messaging" | "limits" | "contacts" | "groups" | "recalls" | "presence">;

export function jimCommands(app: JimCore): ReadonlyMap<number, Command> {
  const { chat, hub, logins, messaging, limits, contacts, groups, recalls, presence } = app;
  const send = (s: Session, code: number | undefined, command: number, data?: unknown) => hub.send(s, resp(code, command, data));

  const terminal = (attrs: Record<string, unknown> | undefined) => (typeof attrs?.terminal === "string" ? attrs.terminal : "ws");

  // ---- cmd 11 ----
  async function chatReq(s: Session, me: string, f: Fields) {
    const chatType = int(f.get("chattype"));
    const to = str(f.get("to"));
    const groupId = str(f.get("groupid")) ?? (chatType === 1 ? to : undefined);
    const raw = f.get("content");
    const content = typeof raw === "string" ? raw : raw === undefined || raw === null ? undefined : JSON.stringify(raw);
    if (content === undefined || (chatType === 2 && !to) || (chatType === 1 && !groupId) || (chatType !== 1 && chatType !== 2)) {
      return void send(s, 10002, Cmd.chatResp);
    }
    if (limits.take(s, "send")) return void send(s, 10002, Cmd.chatResp);
    const extras = f.get("extras");
    const body: JimBody = {
      content,
      msgType: int(f.get("msgtype")) ?? 0,
      createTime: int(f.get("createtime")) ?? Date.now(),
      ...(extras !== undefined && extras !== null ? { extras } : {}),
    };
    // The client's id is kept as the message's client id (retries are answered, not stored twice).
    const input = { kind: "text", body, cmid: str(f.get("id")) ?? newJimId() };
    try {
      if (chatType === 1) {
        await messaging.send(me, { conv: groupConvId(groupId!) }, input, { session: s.id });
        return void send(s, 10000, Cmd.chatResp);
      }
      await messaging.send(me, { to }, input, { session: s.id });
      send(s, (await presence.isOnline(to!)) ? 10000 : 10001, Cmd.chatResp);
    } catch (e) {
      if (!(e instanceof CoreError)) throw e;
      send(s, 10002, Cmd.chatResp);
    }
  }

  // ---- cmd 19 ----
  /** All offline messages (of one conversation, or all), page after page. */
  async function offline(me: string, conv: string | undefined): Promise<Message[]> {
    const out: Message[] = [];
    let after: { conv: string; seq: number } | undefined;
    for (let i = 0; i < MAX_OFFLINE_PAGES; i++) {
      const page = await chat.pending(me, { conv, limit: MAX_PAGE, after });
      out.push(...page.msgs);
      const last = page.msgs.at(-1);
      if (!page.more || !last) break;
      after = { conv: last.conv, seq: last.seq };
    }
    return out;
  }

  /**
   * `{friends: {peer: [...]}, groups: {groupId: [...]}, userid}`; `peer` is the sender unless given. Keyed by
   * user and group ids (any name, `__proto__` and `constructor` too): gathered in Maps.
   */
  function messageData(me: string, msgs: Message[], peer?: string) {
    const friends = new Map<string, unknown[]>();
    const groups = new Map<string, unknown[]>();
    for (const m of msgs) {
      if (m.recalled) continue;
      const g = groupOf(m.conv);
      const [by, key] = g !== undefined ? [groups, g] : [friends, peer ?? m.from];
      let list = by.get(key);
      if (!list) by.set(key, (list = []));
      list.push(chatBody(m));
    }
    // 3.x reads `userId`, 2.x `userid`.
    return { friends: jsonObject(friends), groups: jsonObject(groups), userId: me, userid: me };
  }

  async function getMessages(s: Session, me: string, f: Fields) {
    const type = int(f.get("type"));
    const userId = str(f.get("userid"));
    const from = str(f.get("fromuserid"));
    const groupId = str(f.get("groupid"));
    if (userId !== me || (type !== 0 && type !== 1 && type !== 2)) return void send(s, 10015, Cmd.getMessageResp);
    const conv = groupId ? groupConvId(groupId) : from ? directConvId(me, from) : undefined;
    if (type === 1) {
      if (!conv) return void send(s, 10015, Cmd.getMessageResp);
      const offset = Math.max(0, int(f.get("offset")) ?? 0);
      const count = Math.max(1, int(f.get("count")) ?? MAX_PAGE);
      let msgs: Message[] = [];
      try {
        const q = { from: int(f.get("begintime")), to: int(f.get("endtime")), limit: Math.min(offset + count, MAX_PAGE), desc: false };
        msgs = (await chat.history(me, conv, q)).msgs.slice(offset);
      } catch (e) {
        if (!(e instanceof CoreError && e.name === "not_member")) throw e;
      }
      msgs = msgs.filter((m) => !m.recalled);
      if (!msgs.length) return void send(s, 10018, Cmd.getMessageResp);
      return void send(s, 10018, Cmd.getMessageResp, messageData(me, msgs, from));
    }
    const msgs = await offline(me, conv);
    // Pulling one conversation is opening it (read); pulling everything is a sync (delivered).
    if (type === 0) await chat.confirmAll(me, msgs, conv ? "read" : "delivered");
    send(s, type === 0 ? 10016 : 10022, Cmd.getMessageResp, messageData(me, msgs));
  }

  // ---- cmd 17 ----
  async function userInfo(s: Session, me: string, f: Fields) {
    const type = int(f.get("type"));
    if (str(f.get("userid")) !== me) return void send(s, 10004, Cmd.getUserResp);
    const meRow = await chat.profile(me);
    if (!meRow) return void send(s, 10004, Cmd.getUserResp);
    const rows = await contacts.list(me);
    if (type === 1) {
      const data = rows.map((r) => jimUser(r.peer, r.nick, { avatar: r.avatar, terminal: terminal(r.attributes) }));
      return void send(s, 200, Cmd.getUserResp, data);
    }
    if (type === 2) {
      const x = fields(f.get("extras"));
      const pullType = int(x.get("pulltype")) ?? 1;
      const key = (str(x.get("searchkey")) ?? "").toLowerCase();
      const now = Date.now();
      const picked = rows.filter(
        (r) =>
          (pullType !== 2 || r.awaiting) && (pullType !== 3 || isRecent(r, now)) && (!key || r.nick.toLowerCase().includes(key)),
      );
      // The last 10 messages of every picked contact in one query.
      const last = await contacts.lastMessages(picked, 10);
      const friends = [];
      for (const r of picked) {
        friends.push({
          avatar: r.avatar,
          historyMessage: (last.get(r.conv) ?? []).filter((m) => !m.recalled).map(chatBody),
          lastMessageTime: r.lastMsgAt,
          nickname: r.nick,
          unReadNum: r.unread,
          userId: r.peer,
        });
      }
      const sum = contacts.summary(rows, now);
      return void send(s, 200, Cmd.getUserResp, {
        allContactsNum: sum.all,
        avatar: meRow.avatar,
        friends,
        lastedContactsNum: sum.recent,
        nickname: meRow.nick,
        pendingReplyNum: sum.awaiting,
        pullType,
        userId: me,
      });
    }
    if (type === 0) {
      // Upstream J-IM: the user with its groups, each holding only the members online now (all groups at once).
      const view = await contacts.onlineByConversation(me, "group", rows.map((r) => r.peer));
      const group = (id: string, name: string, online: UserRow[]) => {
        const users = online.map((u) => jimUser(u.id, u.nick, { avatar: u.avatar, terminal: terminal(u.attributes) }));
        // 3.x reads `groupId`, 2.x `group_id`.
        return { avatar: "", groupId: id, group_id: id, name, online: users.length, users };
      };
      const groups = view.convs.map((c) => group(groupOf(c.conv)!, c.name, c.online));
      const friends = [group("friends", "friends", view.peers)];
      return void send(s, 10005, Cmd.getUserResp, {
        avatar: meRow.avatar,
        friends,
        groups,
        id: me,
        nick: meRow.nick,
        status: "online",
        terminal: terminal(meRow.attributes),
        userId: me,
      });
    }
    send(s, 10004, Cmd.getUserResp);
  }

  // A Map: the command number comes from the client.
  return new Map<number, Command>([
    [Cmd.chat, { run: chatReq }],
    [Cmd.heartbeat, { run: async (s) => void send(s, undefined, Cmd.heartbeat, { createTime: Date.now(), hbbyte: -128 }) }],
    [Cmd.getMessageReq, { charge: "read", run: getMessages }],
    [Cmd.getUserReq, { charge: "read", run: userInfo }],
    [Cmd.authReq, { run: async (s, me, f) => {
      const token = str(f.get("token"));
      const who = token ? await logins.byToken(token) : undefined;
      if (who?.id !== me) return void send(s, 10010, Cmd.authResp);
      return void send(s, 10009, Cmd.authResp, { createTime: Date.now(), token });
    } }],
    [Cmd.joinGroupReq, { run: async (s, me, f) => {
      const groupId = str(f.get("groupid")) ?? str(f.get("group"));
      try {
        if (!groupId) throw new CoreError("bad_request", "groupId is required");
        await groups.join(me, groupId, "interest");
      } catch (e) {
        if (!(e instanceof CoreError)) throw e;
        return void send(s, 10012, Cmd.joinGroupResp, { group: groupId, result: 0 });
      }
      return void send(s, 10011, Cmd.joinGroupResp, { group: groupId, result: 1 });
    } }],
    [Cmd.exitGroupNotify, { run: async (s, me, f) => {
      // Leaving a group: the members and the leaver receive command 10.
      const groupId = str(f.get("groupid")) ?? str(f.get("group"));
      const left = groupId ? await groups.leave(me, groupId) : false;
      if (!left) send(s, 10012, Cmd.exitGroupNotify);
      return;
    } }],
    [Cmd.close, { run: async (s, me, f) => {
      const who = str(f.get("userid"));
      if (who !== undefined && who !== me) return void send(s, 10020, Cmd.close);
      send(s, 10021, Cmd.close);
      const all = who === me ? [...(hub.sessionsOf(me) ?? [])] : [s];
      for (const x of all) x.ws.close(1000, "close ok");
      return;
    } }],
    [Cmd.cancelMsgReq, { run: async (s, me, f) => {
      // The message by its J-IM id (the client id it was sent with).
      const id = str(f.get("id")) ?? str(f.get("msgid"));
      if (!id) return void send(s, 10002, Cmd.cancelMsgResp);
      await recalls.recall(me, { cmid: id }, s.id);
      return void send(s, 10000, Cmd.cancelMsgResp, { id });
    } }],
  ]);
}
