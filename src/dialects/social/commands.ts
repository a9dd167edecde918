// The social API's interfaces (docs/social.md): path → method, who may call it (a user's token or the server
// API key), what it costs from the caller's rate limit, its decoder, and the core command it runs. A refusal is
// the CoreError the core throws; index.ts answers it in the protocol's error format.
import type { App } from "../../app.ts";
import { directPeer, groupConvId, groupIdOf, isRoomsConv } from "../../core/conv-ids.ts";
import { CoreError, fail } from "../../core/errors.ts";
import { GROUP_KINDS } from "../../core/groups.ts";
import type { Charge } from "../../core/limits.ts";
import type { Message } from "../../core/types.ts";
import { decoders, type Params } from "./decode.ts";
import { pushBody, pushOf, type Formats } from "./encode.ts";

/** What the social API uses of the node: core services only (no store). */
export type SocialCore = Pick<App, "messaging" | "groups" | "social" | "chat" | "messageRefs" | "serviceAccounts" | "hub">;

export interface Ctx {
  /** the caller (a user), or null for the back office (server API key) */
  me: string;
  fmt: Formats;
}

export interface Interface {
  /** GET interfaces also take POST; POST interfaces take POST only */
  method: "GET" | "POST";
  /** `user`: uid + token; `cms`: the server API key */
  auth: "user" | "cms";
  charge: Charge;
  run(ctx: Ctx, p: Params): Promise<unknown>;
  summary: string;
  /** the answer's top-level key besides `datas` that also carries the result (a seed example's own wrapping) */
  alsoAs?: string;
}

const STATUS = new Map([
  ["pending", "0"],
  ["accepted", "1"],
  ["refused", "2"],
]);

/** One page of a list: all of it without a page size. */
function pageOf<T>(all: T[], page: number, size?: number): T[] {
  return size === undefined ? (page === 1 ? all : []) : all.slice((page - 1) * size, page * size);
}

export function socialInterfaces(app: SocialCore): Map<string, Interface> {
  const { messaging, groups, social, chat, messageRefs, serviceAccounts, hub } = app;

  /** Nicknames and photos of users, in one read. */
  async function people(ids: string[]) {
    const rows = await chat.profiles([...new Set(ids)]);
    return new Map(rows.map((u) => [u.id, { nick: u.nick, avatar: u.avatar }]));
  }

  /** Messages in the push format, with their senders' names and their groups' kinds looked up once each. */
  async function pushes(msgs: Message[], fmt: Formats) {
    const who = await people(msgs.map((m) => m.from));
    const kinds = new Map<string, string | undefined>();
    for (const m of msgs) {
      const g = groupIdOf(m.conv);
      if (g !== undefined && !kinds.has(g)) kinds.set(g, await groups.info(null, g).then((i) => i.kind, () => undefined));
    }
    return msgs.map((m) => pushOf(m, who.get(m.from), kinds.get(groupIdOf(m.conv) ?? ""), fmt));
  }

  const msgId = (ack: { id: string }) => ack.id;

  const table: [string, Interface][] = [
    [
      "user/getUserList",
      {
        method: "GET",
        auth: "user",
        charge: "read",
        summary: "Members of an interest group (search_type 1) or neighbourhood (2), paged",
        async run({ me }, p) {
          const c = decoders.getUserList(p);
          const kind = c.searchType === 1 ? "interest" : "neighbourhood";
          if ((await groups.info(me, c.group)).kind !== kind) fail("not_found", `no ${kind} group ${c.group}`);
          const all = await groups.members(me, c.group);
          const page = pageOf(all, c.page, c.size);
          const who = await people(page.map((m) => m.user));
          const users = page.map((m) => ({ user_id: m.user, nickname: who.get(m.user)?.nick ?? m.nick, photo: who.get(m.user)?.avatar ?? "" }));
          // The seed's example calls the list `groups`, its table `users`: both are given.
          return { belong_id: c.group, search_type: String(c.searchType), total: String(all.length), users, groups: users };
        },
      },
    ],
    [
      "message/sendMessage",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "A 1:1 message to a user (send_type 0) or to a service account (2)",
        async run({ me }, p) {
          const c = decoders.sendMessage(p);
          if (c.sendType === 1) fail("bad_request", "`send_type` is 0 (a user) or 2 (a service account)");
          if (c.sendType === 2) return msgId(await serviceAccounts.write(me, c.to, c.input));
          return msgId(await messaging.send(me, { to: c.to }, c.input));
        },
      },
    ],
    [
      "message/sendGroupMessage",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "A message to a group: 1 user group, 2 interest group, 3 neighbourhood, 4 service account",
        async run({ me }, p) {
          const c = decoders.sendGroupMessage(p);
          const kind = GROUP_KINDS[c.groupType - 1];
          if ((await groups.info(null, c.group)).kind !== kind) fail("not_found", `no group ${c.group} of group_type ${c.groupType}`);
          return msgId(await messaging.send(me, { conv: groupConvId(c.group) }, c.input));
        },
      },
    ],
    [
      "message/updateMessageReceiveStatus",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Mark messages received (status 3), by a recipient",
        async run({ me }, p) {
          await messageRefs.confirm(me, decoders.receiveStatus(p).ids, "delivered");
          return 1;
        },
      },
    ],
    [
      "message/updateMessageReadStatus",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Mark a message read (status 4), by a recipient",
        async run({ me }, p) {
          await messageRefs.confirm(me, decoders.readStatus(p).ids, "read");
          return 1;
        },
      },
    ],
    [
      "message/getOfflineMessage",
      {
        method: "GET",
        auth: "user",
        charge: "read",
        summary: "Addition: what waits offline, in the push format, marked delivered by this call",
        async run({ me, fmt }, p) {
          const c = decoders.offline(p);
          const { msgs, more } = await chat.pull(me, { limit: c.size });
          // What this protocol shows: 1:1 chats and groups (as its push socket), not other protocols' rooms.
          const shown = msgs.filter((m) => (m.conv.startsWith("d:") || m.conv.startsWith("g:")) && !isRoomsConv(m.conv));
          return { total: String(shown.length), more: more ? 1 : 0, msgs: await pushes(shown, fmt) };
        },
      },
    ],
    [
      "user/addUserToBlacklist",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Block a user: its 1:1 messages and friend applications are refused",
        async run({ me }, p) {
          await social.block(me, decoders.user(p).to);
          return 1;
        },
      },
    ],
    [
      "user/delUserFromBlacklist",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Unblock a user (1 whether or not it was blocked)",
        async run({ me }, p) {
          await social.unblock(me, decoders.user(p).to);
          return 1;
        },
      },
    ],
    [
      "user/getUserBlacklist",
      {
        method: "POST",
        auth: "user",
        charge: "read",
        summary: "The users the caller blocked, paged (no page_size: all)",
        async run({ me, fmt }, p) {
          const c = decoders.page(p);
          const all = await social.blocked(me);
          const blacklist = pageOf(all, c.page, c.size).map((u) => ({ user_id: u.user, nickname: u.nick, photo: u.avatar, created: fmt.time(u.since) }));
          return { total: String(all.length), blacklist };
        },
      },
    ],
    [
      "user/isInBlacklist",
      {
        method: "POST",
        auth: "user",
        charge: "read",
        summary: "1 when the caller blocked to_uid, else 0",
        async run({ me }, p) {
          return (await social.isBlocked(me, decoders.user(p).to)) ? 1 : 0;
        },
      },
    ],
    [
      "user/addFriendApply",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Apply to be friends with to_uid, with a comment",
        async run({ me }, p) {
          const c = decoders.friendApply(p);
          await social.request(me, c.to, c.comment);
          return 1;
        },
      },
    ],
    [
      "user/getFriendApplyList",
      {
        method: "POST",
        auth: "user",
        charge: "read",
        summary: "The applications the caller received (status 0 pending, 1 accepted, 2 refused), paged",
        // The seed's example wraps the result in `applys` instead of `datas`: it is in both.
        alsoAs: "applys",
        async run({ me, fmt }, p) {
          const c = decoders.page(p);
          const all = await social.requests(me, "in");
          const page = pageOf(all, c.page, c.size);
          const who = await people(page.map((r) => r.from));
          const applys = page.map((r) => ({
            relation_apply_id: r.from,
            user_id: r.from,
            nickname: who.get(r.from)?.nick ?? r.nick,
            photo: who.get(r.from)?.avatar ?? "",
            comment: r.note,
            status: STATUS.get(r.status) ?? "0",
            created: fmt.time(r.updatedAt),
          }));
          return { total: String(all.length), applys };
        },
      },
    ],
    [
      "user/agreeFriendApply",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Accept a pending application (by its relation_apply_id): friends both ways",
        async run({ me }, p) {
          await social.answer(me, decoders.apply(p).from, true);
          return 1;
        },
      },
    ],
    [
      "user/refuseFriendApply",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "Addition: refuse a pending application (status 2)",
        async run({ me }, p) {
          await social.answer(me, decoders.apply(p).from, false);
          return 1;
        },
      },
    ],
    [
      "user/deleteFriend",
      {
        method: "POST",
        auth: "user",
        charge: "send",
        summary: "End a friendship, both ways (1 whether or not they were friends)",
        async run({ me }, p) {
          await social.remove(me, decoders.user(p).to);
          return 1;
        },
      },
    ],
    [
      "cms/sendMessage",
      {
        method: "POST",
        auth: "cms",
        charge: "send",
        summary: "Back office (server API key): push a message from a service account to users",
        async run(_ctx, p) {
          const c = decoders.cmsSend(p);
          const acks = await serviceAccounts.push(c.service, c.users, c.input);
          // One user: its message id; several: their ids in the order given, `0` for a user who blocked the account.
          if (acks.length === 1 && acks[0] instanceof CoreError) throw acks[0];
          return acks.map((a) => (a instanceof CoreError ? "0" : a.id)).join(",");
        },
      },
    ],
    [
      "cms/getServiceMsg",
      {
        method: "GET",
        auth: "cms",
        charge: "read",
        summary: "Back office (server API key): what a service account received (search_type 1) or sent (2), paged (50)",
        async run({ fmt }, p) {
          const c = decoders.cmsMessages(p);
          const sent = c.searchType === 2;
          const r = await serviceAccounts.page(c.service, { sent, user: c.user, page: c.page, size: c.size ?? 50 });
          const msgs = r.msgs.map((m) => {
            const { msg_type, body } = pushBody(m, fmt);
            const other = directPeer(m.conv, c.service) ?? "";
            return { msg_id: m.id, msg_type, body: JSON.stringify(body), created: String(Math.floor(m.ts / 1000)), user_id: sent ? other : m.from };
          });
          return { service_id: c.service, search_type: String(c.searchType), user_id: c.user ?? "", total: String(r.total), msgs };
        },
      },
    ],
  ];
  return new Map(table);
}
