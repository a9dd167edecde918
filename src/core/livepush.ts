// The livepush rules (docs/livepush.md): a live-streaming app's messages and its server-driven pushes, for the
// long-poll protocol (src/dialects/livepush/) and the server API alike. Everything a poll returns is a stored
// core message (except group dials, chat_type 8, which are never stored) read from the user's delivered
// cursor, so a lost poll response loses nothing. Here:
//  - the message a poll shows (`view`): the seed's fields, `user_info` from a per-node profile cache;
//  - who may send what (`send`, the send endpoint; `publish`, the app backend's chat_types 1-11);
//  - the server-driven pushes: a user comes online (21, 22, 24, 25, 29), buys VIP (23), follows someone (43),
//    a group dial was answered (40), one-click greeting (28);
//  - hosting (托管): a host's scripts, the greeting, the auto-reply (at most once per user per window), the
//    scripted lines on the app backend's triggers (27, 41, 42, 44), and her copy of each.
// Notices about a user (21-24, 40, 43) and a hosting host's copies are stored in the recipient's conversation
// with the system user (LIVEPUSH_SYSTEM_USER), carrying `uid` and `receive_uid` in the body, so they neither
// appear as written by the user they are about nor get lost; hosting messages are the host's own messages in
// her conversation with the user, so every protocol shows them.
import type { Chat } from "./chat.ts";
import { directConvId, directPeer } from "./conv-ids.ts";
import { CoreError, fail } from "./errors.ts";
import { USER_ID_RE } from "./ids.ts";
import type { SocialGraph, Users } from "./ports.ts";
import type { UserRow } from "./records.ts";
import type { Messaging } from "./send.ts";
import type { Ack, CoreEvent, Message } from "./types.ts";

export interface LivepushSettings {
  /** the user the notices and hosting copies come from (created at start) */
  systemUser: string;
  /** a user counts as new this long after its account was made (22, 25) */
  newUserSec: number;
  /** "comes online" triggers at most once per user per this many seconds (per node) */
  onlineCooldownSec: number;
  vipHosts: number;
  newUserHosts: number;
  vipBuyHosts: number;
  hostingMales: number;
  followersMax: number;
  /** a hosting host auto-replies to one user at most once per this many seconds */
  replyWindowSec: number;
  /** recipients of one one-click greeting (28) */
  greetMax: number;
  profileTtlSec: number;
}

export const DEFAULT_LIVEPUSH: LivepushSettings = {
  systemUser: "livepush",
  newUserSec: 86400,
  onlineCooldownSec: 300,
  vipHosts: 10,
  newUserHosts: 10,
  vipBuyHosts: 30,
  hostingMales: 50,
  followersMax: 1000,
  replyWindowSec: 3600,
  greetMax: 50,
  profileTtlSec: 30,
};

/** Cluster-wide sampling of online users (presence). */
export interface OnlineSampler {
  /** Up to `n` distinct users of `role` online now anywhere in the cluster, at random. */
  sampleRole(role: string, n: number): Promise<string[]>;
  isOnline(userId: string): Promise<boolean>;
}

export interface LivepushDeps {
  chat: Pick<Chat, "commit" | "pending" | "confirmAll" | "profiles" | "userExists" | "forgetUser" | "history">;
  messaging: Pick<Messaging, "send">;
  users: Pick<Users, "getUser" | "upsertUser">;
  graph: Pick<SocialGraph, "isBlocked" | "followList">;
  online: OnlineSampler;
  /** pushes an event that is not stored (group dials) to the users' connections */
  emit(ev: CoreEvent): void;
  newId(): string;
  settings: LivepushSettings;
  log(msg: string): void;
}

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

const HOSTING_LISTS = ["replies", "lines", "scripts", "declines", "behaviours"] as const;
/** hosting trigger chat_type → the list of the host's lines it sends */
export const HOSTING_TRIGGERS = new Map<number, (typeof HOSTING_LISTS)[number]>([
  [27, "lines"],
  [41, "scripts"],
  [42, "declines"],
  [44, "behaviours"],
]);
/** chat_types sent by hosting: never answered by an auto-reply */
const AUTOMATIC = new Set([21, 22, 23, 24, 25, 26, 27, 29, 40, 41, 42, 43, 44]);
/** chat_types the app backend publishes between two users */
export const PUBLISHED = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

const MAX_CONTENT = 4000;
const MAX_LINE = 500;
const MAX_LINES = 20;
const CACHE_MAX = 100_000;
const CALLS_MAX = 10_000;
const CALL_TTL_MS = 10 * 60_000;
/** the last messages of a conversation read for an auto-reply given within the window (on any node) */
const REPLY_LOOKBACK = 50;

interface Cached {
  info: UserInfo;
  role: string;
  sex: number;
  vip: number;
  createdAt: number;
  attributes: Record<string, unknown>;
  until: number;
}

const num = (v: unknown, def: number) => (typeof v === "number" && Number.isFinite(v) ? v : typeof v === "string" && v !== "" && Number.isFinite(Number(v)) ? Number(v) : def);
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

export class Livepush {
  private readonly cache = new Map<string, Cached>();
  private readonly cameAt = new Map<string, number>();
  private readonly replied = new Map<string, number>();
  /** group dials (8) by call id: who got them, so an answer (10) tells the others (40) */
  private readonly calls = new Map<string, { host: string; to: string[]; until: number }>();
  readonly s: LivepushSettings;

  constructor(private readonly d: LivepushDeps) {
    this.s = d.settings;
  }

  /** Creates the system user the notices come from, when it is missing. */
  async start(): Promise<void> {
    if (!(await this.d.users.getUser(this.s.systemUser))) {
      await this.d.users.upsertUser({ id: this.s.systemUser, nick: "系统消息", role: "service" });
    }
  }

  // ---- profiles ----------------------------------------------------------------------------------------

  /** Cached profiles of `ids` (one read for the missing ones); unknown users are left out. */
  async profiles(ids: Iterable<string>): Promise<Map<string, Cached>> {
    const now = Date.now();
    const out = new Map<string, Cached>();
    const miss: string[] = [];
    for (const id of new Set(ids)) {
      const c = this.cache.get(id);
      if (c && c.until > now) out.set(id, c);
      else miss.push(id);
    }
    if (miss.length) {
      if (this.cache.size + miss.length > CACHE_MAX) this.cache.clear();
      for (const u of await this.d.chat.profiles(miss)) {
        const c = this.cached(u, now);
        this.cache.set(u.id, c);
        out.set(u.id, c);
      }
    }
    return out;
  }

  /** A user's record changed (on any node): its cached profile and hosting settings are read again. */
  dropProfile(id: string): void {
    this.cache.delete(id);
  }

  private async profile(id: string): Promise<Cached | undefined> {
    return (await this.profiles([id])).get(id);
  }

  private cached(u: UserRow, now: number): Cached {
    const a = u.attributes ?? {};
    return {
      info: {
        id: u.id,
        nickname: u.nick,
        head_image: u.avatar,
        vip: String(u.vip),
        sex: String(u.sex),
        user_type: u.role === "robot" ? "1" : "0",
        enable_call: num(a.enable_call, 1),
        video_price: num(a.video_price, 0),
        audio_price: num(a.audio_price, 0),
        gift_count: num(a.gift_count, 0),
      },
      role: u.role,
      sex: u.sex,
      vip: u.vip,
      createdAt: u.createdAt.getTime(),
      attributes: a,
      until: now + this.s.profileTtlSec * 1000,
    };
  }

  private static blank(id: string): UserInfo {
    return { id, nickname: "", head_image: "", vip: "0", sex: "0", user_type: "0", enable_call: 0, video_price: 0, audio_price: 0, gift_count: 0 };
  }

  // ---- what a poll shows -------------------------------------------------------------------------------

  /**
   * Stored messages as the poller sees them: `uid` the sender (or, for a notice or a hosting copy, the user it
   * is about), `user_info` the other party's profile (for a message sent on the poller's behalf, that of
   * `receive_uid`). Ordered by commit time.
   */
  async view(poller: string, msgs: Message[]): Promise<LpMessage[]> {
    const sorted = [...msgs].sort((a, b) => a.ts - b.ts || (a.id.length - b.id.length) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const parts = sorted.map((m) => {
      const b = bodyOf(m.body);
      const uid = typeof b.uid === "string" ? b.uid : m.from;
      const to = typeof b.receive_uid === "string" ? b.receive_uid : poller;
      return { m, b, uid, to, other: uid === poller ? to : uid };
    });
    const profiles = await this.profiles(parts.flatMap((p) => [p.other, p.m.from, poller]));
    return parts.map(({ m, b, uid, to, other }) => {
      const chatType = typeof b.chat_type === "number" ? b.chat_type : chatTypeOf(profiles.get(m.from)?.role, profiles.get(poller)?.role);
      return lpMessage(m.id, uid, to, b, chatType, Math.floor(m.ts / 1000), profiles.get(other)?.info ?? Livepush.blank(other));
    });
  }

  // ---- sending -----------------------------------------------------------------------------------------

  /**
   * The send endpoint: a message from `from` to one user (its chat_type from the two roles), or a one-click
   * greeting (28) to several. Acked after commit; the blacklist is checked where it is written.
   */
  async send(from: string, to: string[], input: SendFields): Promise<{ acks: Ack[]; refused: number }> {
    if (to.length === 0) fail("bad_request", "`to_uid` is required");
    if (to.length > this.s.greetMax) fail("bad_request", `at most ${this.s.greetMax} recipients`);
    for (const u of to) if (!USER_ID_RE.test(u)) fail("bad_request", "`to_uid` must be user ids");
    const fields = checkFields(input);
    if (to.length === 1) {
      const profiles = await this.profiles([from, to[0]!]);
      const chatType = chatTypeOf(profiles.get(from)?.role, profiles.get(to[0]!)?.role);
      const ack = (await this.d.messaging.send(from, { to: to[0] }, { ...toInput({ ...fields, chat_type: chatType }), cmid: input.cmid })) as Ack;
      return { acks: [ack], refused: 0 };
    }
    // One-click greeting: each recipient gets its own message; a recipient that blocked the sender is skipped.
    const acks: Ack[] = [];
    let refused = 0;
    await Promise.all(
      [...new Set(to)].filter((u) => u !== from).map(async (u) => {
        try {
          acks.push((await this.d.messaging.send(from, { to: u }, toInput({ ...fields, chat_type: 28, is_hello: 1 }))) as Ack);
        } catch (e) {
          if (e instanceof CoreError && (e.name === "blocked" || e.name === "not_found")) refused++;
          else throw e;
        }
      }),
    );
    return { acks, refused };
  }

  /**
   * The app backend publishes a message of chat_type 1-11 from `uid` to `to` (calls, gifts, service lines):
   * stored in their conversation, except a group dial (8), pushed to the polls holding now and never stored.
   * An answered group dial (10) tells the other users who got that dial (40).
   */
  async publish(uid: string, to: string[], chatType: number, input: SendFields & PublishExtras): Promise<{ acks: Ack[]; pushed: number }> {
    if (!PUBLISHED.has(chatType)) fail("bad_request", "`chat_type` must be 1-11");
    if (to.length === 0 || to.length > 1000) fail("bad_request", "`receive_uid`: 1-1000 users");
    const fields = { ...checkFields(input), ...checkExtras(input, chatType), chat_type: chatType };
    if (!(await this.d.chat.userExists(uid))) fail("not_found", `no user ${uid}`);
    if (chatType === 8) {
      const info = (await this.profile(uid))?.info ?? Livepush.blank(uid);
      const now = Date.now();
      const live = [...new Set(to)].filter((u) => u !== uid);
      for (const u of live) {
        if (await this.d.graph.isBlocked(u, uid)) continue;
        this.d.emit({ type: "notice", proto: "livepush", body: lpMessage(this.d.newId(), uid, u, fields, 8, Math.floor(now / 1000), info), to: [u] });
      }
      const callId = callIdOf(fields.call_data);
      if (callId !== undefined) {
        if (this.calls.size >= CALLS_MAX) this.sweepCalls(now, true);
        this.calls.set(callId, { host: uid, to: live, until: now + CALL_TTL_MS });
      }
      return { acks: [], pushed: live.length };
    }
    const acks: Ack[] = [];
    for (const u of to) acks.push((await this.d.messaging.send(uid, { to: u }, toInput(fields), { trusted: true })) as Ack);
    if (chatType === 10) await this.dialAnswered(uid, fields.call_data);
    return { acks, pushed: 0 };
  }

  /** 40: a group dial was answered by `by`: the other users who got it are told. */
  private async dialAnswered(by: string, callData: unknown): Promise<void> {
    const callId = callIdOf(callData);
    const call = callId !== undefined ? this.calls.get(callId) : undefined;
    if (!call) return;
    this.calls.delete(callId!);
    await Promise.all(call.to.filter((u) => u !== by).map((u) => this.notice(call.host, u, 40, "主播的群发视频已被接通", { call_data: { call_id: callId } })));
  }

  private sweepCalls(now: number, all = false): void {
    for (const [k, c] of this.calls) if (all || c.until <= now) this.calls.delete(k);
  }

  // ---- server-driven pushes ----------------------------------------------------------------------------

  /**
   * A user came online (was offline everywhere in the cluster): a host's followers are told (24) and a female
   * host with hosting greets online male users (29); a new user is announced to online hosts (22), and the
   * hosting hosts among them greet it (25); otherwise a VIP is announced to online hosts (21).
   */
  async cameOnline(user: string): Promise<void> {
    const now = Date.now();
    const last = this.cameAt.get(user);
    if (last !== undefined && now - last < this.s.onlineCooldownSec * 1000) return;
    if (this.cameAt.size >= CACHE_MAX) this.cameAt.clear();
    this.cameAt.set(user, now);
    const p = await this.profile(user);
    if (!p || user === this.s.systemUser) return;
    if (p.role === "host") {
      await this.toFollowers(user);
      const h = hostingOf(p.attributes);
      if (p.sex === 2 && h?.on && h.greeting) {
        const males = await this.sample("user", this.s.hostingMales, user, (c) => c.sex === 1);
        await Promise.all(males.map((u) => this.onBehalf(user, u, 29, h.greeting)));
      }
      return;
    }
    const isNew = now - p.createdAt < this.s.newUserSec * 1000 && !p.attributes.livepush_welcomed;
    if (isNew) {
      const hosts = await this.sample("host", this.s.newUserHosts, user);
      await Promise.all(hosts.map((h) => this.notice(user, h, 22, `新用户${p.info.nickname}来了`)));
      const profiles = await this.profiles(hosts);
      await Promise.all(
        hosts.map((h) => {
          const hs = hostingOf(profiles.get(h)?.attributes);
          return hs?.on && hs.greeting ? this.onBehalf(h, user, 25, hs.greeting) : undefined;
        }),
      );
      await this.setAttributes(user, { livepush_welcomed: now });
    } else if (p.vip > 0) {
      const hosts = await this.sample("host", this.s.vipHosts, user);
      await Promise.all(hosts.map((h) => this.notice(user, h, 21, `VIP用户${p.info.nickname}上线了`)));
    }
  }

  /** 23: the app backend reports that `user` bought VIP: online hosts are told. */
  async vipBought(user: string): Promise<number> {
    const p = await this.profile(user);
    if (!p) fail("not_found", `no user ${user}`);
    const hosts = await this.sample("host", this.s.vipBuyHosts, user);
    await Promise.all(hosts.map((h) => this.notice(user, h, 23, `${p!.info.nickname}开通了VIP`)));
    return hosts.length;
  }

  /** 43: `me` followed `other` (Social.follow): the followed user is told. */
  async followed(me: string, other: string): Promise<void> {
    const p = await this.profile(me);
    await this.notice(me, other, 43, `${p?.info.nickname ?? me}关注了你`);
  }

  private async toFollowers(host: string): Promise<void> {
    const p = await this.profile(host);
    let after: string | undefined;
    let sent = 0;
    while (sent < this.s.followersMax) {
      const page = await this.d.graph.followList(host, "followers", Math.min(500, this.s.followersMax - sent), after);
      if (page.length === 0) break;
      await Promise.all(page.map((f) => this.notice(host, f.user, 24, `你关注的主播${p?.info.nickname ?? host}上线了`)));
      sent += page.length;
      after = page[page.length - 1]!.user;
    }
  }

  /**
   * Up to `n` distinct users of `role` online now anywhere in the cluster, never `except`; with `where`, the
   * sample is drawn four times larger and filtered on the cached profiles.
   */
  async sample(role: string, n: number, except: string, where?: (c: Cached) => boolean): Promise<string[]> {
    if (n <= 0) return [];
    const picked = (await this.d.online.sampleRole(role, where ? n * 4 + 8 : n + 1)).filter((u) => u !== except);
    if (!where) return picked.slice(0, n);
    const profiles = await this.profiles(picked);
    return picked.filter((u) => {
      const c = profiles.get(u);
      return c !== undefined && where(c);
    }).slice(0, n);
  }

  // ---- hosting -----------------------------------------------------------------------------------------

  async hosting(host: string): Promise<Hosting> {
    const p = await this.profile(host);
    if (!p) fail("not_found", `no user ${host}`);
    return hostingOf(p!.attributes) ?? { on: false, greeting: "", replies: [], lines: [], scripts: [], declines: [], behaviours: [] };
  }

  /** A host turns hosting on or off with her scripts (the fields given replace the stored ones). */
  async setHosting(host: string, set: Partial<Hosting>): Promise<Hosting> {
    const u = await this.d.users.getUser(host);
    if (!u || u.disabled) fail("not_found", `no user ${host}`);
    if (u!.role !== "host") fail("forbidden", "only a host has hosting");
    const cur = hostingOf(u!.attributes) ?? { on: false, greeting: "", replies: [], lines: [], scripts: [], declines: [], behaviours: [] };
    const next: Hosting = { ...cur };
    if (set.on !== undefined) {
      if (typeof set.on !== "boolean") fail("bad_request", "`on` must be a boolean");
      next.on = set.on;
    }
    if (set.greeting !== undefined) next.greeting = line(set.greeting, "greeting");
    for (const k of HOSTING_LISTS) {
      const v = set[k];
      if (v === undefined) continue;
      if (!Array.isArray(v) || v.length > MAX_LINES) fail("bad_request", `\`${k}\` must be a list of at most ${MAX_LINES} lines`);
      next[k] = v.map((x) => line(x, k));
    }
    await this.setAttributes(host, { hosting: next }, u!);
    return next;
  }

  /** 27, 41, 42, 44: the app backend asks a hosting host's server side to send one of her lines to `user`. */
  async hostingSend(host: string, user: string, chatType: number): Promise<Ack | undefined> {
    const list = HOSTING_TRIGGERS.get(chatType);
    if (!list) fail("bad_request", "`chat_type` must be 27, 41, 42 or 44");
    if (!USER_ID_RE.test(user) || user === host) fail("bad_request", "`receive_uid` must be another user");
    const h = await this.hosting(host);
    if (!h.on) fail("conflict", `${host} has no hosting on`);
    const lines = h[list!];
    if (lines.length === 0) fail("not_found", `${host} has no ${list} lines`);
    return this.onBehalf(host, user, chatType, lines[Math.floor(Math.random() * lines.length)]!);
  }

  /**
   * Every committed message passes here (any protocol): a message to a host with hosting on gets her
   * auto-reply (26), at most once per user per LIVEPUSH_REPLY_WINDOW_SEC: a per-node map first, then the last
   * REPLY_LOOKBACK messages of their conversation (a reply another node gave).
   */
  observe(ev: CoreEvent): void {
    if (ev.type !== "message") return;
    const m = ev.msg;
    const host = directPeer(m.conv, m.from);
    if (host === undefined || m.from === this.s.systemUser || host === this.s.systemUser) return;
    const b = bodyOf(m.body);
    if (typeof b.chat_type === "number" && AUTOMATIC.has(b.chat_type)) return;
    // Most recipients are no hosts: a cached profile says so without an async round.
    const known = this.cache.get(host);
    if (known && known.until > Date.now() && known.role !== "host") return;
    void this.autoReply(host, m.from).catch((e) => this.d.log(`livepush auto-reply ${host} → ${m.from}: ${(e as Error).message}`));
  }

  private async autoReply(host: string, user: string): Promise<void> {
    const p = await this.profile(host);
    if (p?.role !== "host") return;
    const h = hostingOf(p.attributes);
    if (!h?.on || h.replies.length === 0) return;
    const key = `${host}\u0000${user}`;
    const now = Date.now();
    const until = this.replied.get(key);
    if (until !== undefined && until > now) return;
    if (this.replied.size >= CACHE_MAX) for (const [k, t] of this.replied) if (t <= now) this.replied.delete(k);
    if (this.replied.size >= CACHE_MAX) this.replied.clear();
    this.replied.set(key, now + this.s.replyWindowSec * 1000);
    // Another node may have answered within the window: her recent messages to the user say so.
    const since = now - this.s.replyWindowSec * 1000;
    const { msgs } = await this.d.chat.history(host, directConvId(host, user), { limit: REPLY_LOOKBACK, desc: true });
    if (msgs.some((m) => m.from === host && m.ts > since && bodyOf(m.body).chat_type === 26)) return;
    await this.onBehalf(host, user, 26, h.replies[Math.floor(Math.random() * h.replies.length)]!);
  }

  /**
   * A message the server sends on a hosting host's behalf: hers, in her conversation with `user` (refused when
   * the user blocked her), and a copy in her own system conversation (`uid` herself, `receive_uid` the user).
   */
  private async onBehalf(host: string, user: string, chatType: number, content: string): Promise<Ack | undefined> {
    const body: LpBody = { content, content_type: 1, chat_type: chatType, is_hello: chatType === 25 || chatType === 29 ? 1 : 0 };
    let ack: Ack;
    try {
      ack = (await this.d.messaging.send(host, { to: user }, { kind: "text", body }, { trusted: true })) as Ack;
    } catch (e) {
      if (e instanceof CoreError && (e.name === "blocked" || e.name === "not_found")) return undefined;
      throw e;
    }
    await this.system(host, { ...body, uid: host, receive_uid: user });
    return ack;
  }

  // ---- notices -----------------------------------------------------------------------------------------

  /** A notice about `about` to `to`, in `to`'s system conversation; skipped when `to` blocked `about`. */
  private async notice(about: string, to: string, chatType: number, content: string, extra: Partial<LpBody> = {}): Promise<void> {
    if (about === to || (await this.d.graph.isBlocked(to, about))) return;
    await this.system(to, { content, content_type: 1, chat_type: chatType, is_hello: 0, ...extra, uid: about, receive_uid: to });
  }

  private async system(to: string, body: LpBody): Promise<Ack> {
    const sys = this.s.systemUser;
    return this.d.chat.commit(sys, directConvId(sys, to), { kind: "livepush", body }, [to], undefined, { kind: "direct", members: [sys, to] }, to);
  }

  private async setAttributes(id: string, set: Record<string, unknown>, row?: UserRow): Promise<void> {
    const u = row ?? (await this.d.users.getUser(id));
    if (!u) return;
    await this.d.users.upsertUser({ id, attributes: { ...u.attributes, ...set } });
    this.cache.delete(id);
    this.d.chat.forgetUser(id);
  }
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

function checkFields(f: SendFields): LpBody {
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

function checkExtras(f: PublishExtras, chatType: number): Partial<LpBody> {
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

function line(v: unknown, name: string): string {
  if (typeof v !== "string" || v.length > MAX_LINE) fail("bad_request", `\`${name}\`: lines of at most ${MAX_LINE} characters`);
  return v as string;
}

const callIdOf = (d: unknown): string | undefined => {
  const id = d && typeof d === "object" ? (d as Record<string, unknown>).call_id : undefined;
  return typeof id === "string" || typeof id === "number" ? String(id) : undefined;
};

function toInput(b: LpBody): { kind: string; body: LpBody } {
  const plain = b.content_type === 1 && !b.call_data && !b.gift_data && !b.demand_gift;
  return { kind: plain ? "text" : "livepush", body: b };
}

function hostingOf(a: Record<string, unknown> | undefined): Hosting | undefined {
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
function bodyOf(body: unknown): Partial<LpBody> {
  if (typeof body === "string") return { content: body };
  if (!body || typeof body !== "object" || Array.isArray(body)) return { content: JSON.stringify(body ?? null) };
  const b = body as Record<string, unknown>;
  if (typeof b.content === "string") return b as Partial<LpBody>;
  if (typeof b.text === "string") return { content: b.text };
  return { content: JSON.stringify(b) };
}

function lpMessage(id: string, uid: string, to: string, b: Partial<LpBody>, chatType: number, ctime: number, info: UserInfo): LpMessage {
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
