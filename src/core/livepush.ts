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
import {
  AUTOMATIC,
  bodyOf,
  callIdOf,
  chatTypeOf,
  checkExtras,
  checkFields,
  type Hosting,
  HOSTING_LISTS,
  HOSTING_TRIGGERS,
  hostingOf,
  line,
  type LpBody,
  lpMessage,
  type LpMessage,
  MAX_LINES,
  num,
  PUBLISHED,
  type PublishExtras,
  type SendFields,
  toInput,
  type UserInfo,
} from "./livepush-fields.ts";
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

