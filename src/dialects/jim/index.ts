// The J-IM protocol (seed 001, docs/jim.md): JSON command frames `{cmd: n, ...}` answered with
// `{code, command, data, msg}`. Login happens during the handshake from the URL's `token` (or
// `username` + `password`). A pure translator: every rule lives in the core.
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import { isRecent } from "../../core/contacts.ts";
import { MAX_PAGE } from "../../core/chat.ts";
import { directConvId } from "../../core/ids.ts";
import { groupConvId } from "../../core/groups.ts";
import type { CoreEvent, Message } from "../../core/types.ts";
import type { Dialect, Frame, Session } from "../../hub/session.ts";
import type { UserRow } from "../../store/store.ts";
import { storeFailure } from "../../store/db.ts";
import { chatBody, Cmd, recallBody, fields, groupOf, int, jsonObject, newJimId, resp, str, type Fields, type JimBody } from "./wire.ts";

interface JimState {
  /** the handshake's credentials were refused: answer 10008 and close once open */
  refused?: boolean;
}

const st = (s: Session) => s.state as unknown as JimState;
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
/** Offline pulls read at most this many pages of MAX_PAGE. */
const MAX_OFFLINE_PAGES = 20;

export function jimDialect(app: App): Dialect {
  const { chat, hub, logins, messaging, limits, contacts, groups, recalls, presence, store, log } = app;
  const encoded = new WeakMap<Message, string>();
  const send = (s: Session, code: number | undefined, command: number, data?: unknown) => hub.send(s, resp(code, command, data));

  /** URL credentials, names matched leniently like frame fields. */
  async function login(url: URL, peer: string) {
    const q = fields(url.searchParams);
    const token = str(q.get("token"));
    if (token) return logins.byToken(token);
    const name = str(q.get("username"));
    return name ? logins.byPassword(name, q.get("password"), peer) : undefined;
  }

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
    return { friends: jsonObject(friends), groups: jsonObject(groups), userid: me };
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
    const meRow = await store.getUser(me);
    if (!meRow) return void send(s, 10004, Cmd.getUserResp);
    const rows = await contacts.list(me);
    if (type === 1) {
      const data = rows.map((r) => ({ avatar: r.avatar, id: r.peer, nick: r.nick, terminal: terminal(r.attributes) }));
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
        const users = online.map((u) => ({ avatar: u.avatar, id: u.id, nick: u.nick, terminal: terminal(u.attributes) }));
        return { avatar: "", group_id: id, name, online: users.length, users };
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
      });
    }
    send(s, 10004, Cmd.getUserResp);
  }

  async function handle(s: Session, me: string, cmd: number | undefined, f: Fields) {
    switch (cmd) {
      case Cmd.chat:
        return chatReq(s, me, f);
      case Cmd.heartbeat:
        return void send(s, undefined, Cmd.heartbeat, { createTime: Date.now(), hbbyte: -128 });
      case Cmd.getMessageReq:
        return getMessages(s, me, f);
      case Cmd.getUserReq:
        return userInfo(s, me, f);
      case Cmd.authReq: {
        const token = str(f.get("token"));
        const who = token ? await logins.byToken(token) : undefined;
        if (who?.id !== me) return void send(s, 10010, Cmd.authResp);
        return void send(s, 10009, Cmd.authResp, { createTime: Date.now(), token });
      }
      case Cmd.joinGroupReq: {
        const groupId = str(f.get("groupid")) ?? str(f.get("group"));
        try {
          if (!groupId) throw new CoreError("bad_request", "groupId is required");
          await groups.join(me, groupId, "interest");
        } catch (e) {
          if (!(e instanceof CoreError)) throw e;
          return void send(s, 10012, Cmd.joinGroupResp, { group: groupId, result: 0 });
        }
        return void send(s, 10011, Cmd.joinGroupResp, { group: groupId, result: 1 });
      }
      case Cmd.exitGroupNotify: {
        // Leaving a group: the members and the leaver receive command 10.
        const groupId = str(f.get("groupid")) ?? str(f.get("group"));
        const left = groupId ? await groups.leave(me, groupId) : false;
        if (!left) send(s, 10012, Cmd.exitGroupNotify);
        return;
      }
      case Cmd.close: {
        const who = str(f.get("userid"));
        if (who !== undefined && who !== me) return void send(s, 10020, Cmd.close);
        send(s, 10021, Cmd.close);
        const all = who === me ? [...(hub.sessionsOf(me) ?? [])] : [s];
        for (const x of all) x.ws.close(1000, "close ok");
        return;
      }
      case Cmd.cancelMsgReq: {
        // The message by its J-IM id (the client id it was sent with).
        const id = str(f.get("id")) ?? str(f.get("msgid"));
        if (!id) return void send(s, 10002, Cmd.cancelMsgResp);
        await recalls.recall(me, { cmid: id }, s.id);
        return void send(s, 10000, Cmd.cancelMsgResp, { id });
      }
      default:
        return void send(s, 10017, Cmd.unknown);
    }
  }

  return {
    name: "jim",
    // A push to a live J-IM connection counts as delivered once written out: the protocol has no client acknowledgement.
    marksOnPush: true,

    async upgrade(_req, url, peer) {
      const state: JimState = {};
      const who = await login(url, peer);
      if (!who) state.refused = true;
      return { userId: who?.id, role: who?.role, state: state as never };
    },

    async open(s) {
      if (st(s).refused || !s.userId) {
        send(s, 10008, Cmd.loginResp);
        return void s.ws.close(4001, "login failed");
      }
      const userId = s.userId;
      s.userId = undefined;
      // The login answer goes out before any push (the hub holds them until it is sent).
      await hub.bindUser(s, userId, s.role ?? "user", () => send(s, 10007, Cmd.loginResp));
    },

    busy(s, data) {
      // J-IM has no busy code: the command's failure answer (chat: 10002, as for the send rate).
      let cmd: number | undefined;
      try {
        cmd = int(fields(JSON.parse(typeof data === "string" ? data : data.toString("utf8"))).get("cmd"));
      } catch {}
      const [code, command] = FAILURE[cmd ?? 0] ?? [10017, Cmd.unknown];
      send(s, code, command);
    },

    async message(s, data) {
      let obj: unknown;
      try {
        obj = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
      } catch {
        return void send(s, 10017, Cmd.unknown);
      }
      const f = fields(obj);
      if (!s.userId) return void send(s, 10008, Cmd.loginResp);
      const cmd = int(f.get("cmd"));
      try {
        if (cmd === Cmd.getMessageReq || cmd === Cmd.getUserReq) {
          // Reads take READ_COST from the connection's rate bucket; over it, the command's failure answer.
          if (limits.take(s, "read")) {
            const [code, command] = FAILURE[cmd]!;
            return void send(s, code, command);
          }
          // A pull never repeats a push this user's connections already wrote out: their marks are stored first.
          if (cmd === Cmd.getMessageReq) await hub.flushMarks(s.userId);
        }
        await handle(s, s.userId, cmd, f);
      } catch (err) {
        // J-IM has no retryable code: a store that cannot be reached gets the command's failure code too.
        const e = storeFailure(err);
        if (!(e instanceof CoreError)) log.error(`jim cmd ${cmd} from ${s.userId}: ${(e as Error).stack ?? e}`);
        const [code, command] = FAILURE[cmd ?? 0] ?? [10017, Cmd.unknown];
        send(s, code, command);
      }
    },

    close() {},

    encode(ev: CoreEvent): Frame | undefined {
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
          const command = ev.change === "join" ? Cmd.joinGroupNotify : Cmd.exitGroupNotify;
          return resp(undefined, command, { group, user: { id: ev.user.id, nick: ev.user.nick } });
        }
        case "recall":
          return resp(undefined, Cmd.cancelMsgReq, recallBody(ev));
        default:
          return undefined;
      }
    },
  };
}
