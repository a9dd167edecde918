// Messaging commands: send, offline sync, cursors, history. Framework-free: it takes commands from any
// dialect, applies the rules, persists through the store and pushes events outward through `emit`.
import { fail } from "./errors.ts";
import { storableJson, storableText } from "./storable.ts";
import { directConvId, directPeer, hasReceiptCounts } from "./conv-ids.ts";
import type { PageMarks, PulledMark } from "./delivery.ts";
import { IdGen, USER_ID_RE } from "./ids.ts";
import { metric } from "./metrics.ts";
import type { ChatStore, Inboxes, ReceiptQueries } from "./ports.ts";
import type { InboxQuery, InboxRow, UserRow } from "./records.ts";
import { Receipts, RECEIPT_WINDOW } from "./receipts.ts";
import { ackOf, type Ack, type CoreEvent, type Message, type ReceiptCount } from "./types.ts";
import type { GroupWriter } from "./writer.ts";

export interface SendInput {
  kind?: string;
  body: unknown;
  /** The client's own message id: a retry (same sender, same conversation, same id) returns the first ack. */
  cmid?: string;
}

export interface ChatDeps {
  store: Omit<ChatStore, "appendBatch" | "upsertUser">;
  inboxes: Pick<Inboxes, "inboxOf">;
  receipts: ReceiptQueries;
  writer: Pick<GroupWriter, "append">;
  ids: Pick<IdGen, "next">;
  /** Pushes an event to the recipients' connections; `skip` is the sending session. */
  emit(ev: CoreEvent, skip?: string): void;
  /** How long group receipts are gathered before they are pushed. */
  receiptDebounceMs?: number;
  log?: (msg: string) => void;
  /**
   * Stores the delivered marks of the pushes the user's connections (any protocol) wrote out so far. Every offline
   * read calls it first, so a pull never offers again what a socket already took.
   */
  flushPushed?(userId: string): Promise<void>;
  /**
   * Told when a user's record changed here (role, disabled, deleted), so every node drops what it cached of the
   * user (and ends a disabled user's connections); the composition root carries it across the cluster.
   */
  userChanged?(id: string): void;
}

/** How long a node trusts a cached active user without reading it again (when a cluster-wide change is missed). */
export const KNOWN_USER_TTL_MS = 30_000;
const KNOWN_USERS_MAX = 100_000;

export const MAX_PAGE = 500;
export const CONV_KINDS = ["direct", "group", "room", "container"];
export const KIND_RE = /^[\w.:-]{1,32}$/;
/** The message kind of a rich card (title, image, description, link): sent by service accounts only. */
export const CARD_KIND = "card";

const mSent = metric("chat_messages_in_total", "Messages accepted and committed");
const mBlocked = metric("chat_messages_blocked_total", "Sends refused by the recipient's blacklist");
const mDup = metric("chat_messages_duplicate_total", "Retried sends answered with their first ack");

export class Chat {
  /**
   * Active users seen recently (id → role, until when trusted), so a send does not look its recipient up every
   * time. Bounded; an entry lives KNOWN_USER_TTL_MS, and a change anywhere in the cluster drops it (forgetUser).
   */
  private readonly knownUsers = new Map<string, { role: string; nick: string; avatar: string; until: number }>();
  readonly receipts: Receipts;

  constructor(private readonly d: ChatDeps) {
    this.receipts = new Receipts(d.receipts, (ev) => d.emit(ev), d.receiptDebounceMs ?? 500, d.log ?? console.error);
  }

  /** The role of an active (existing, not disabled) user, or undefined. */
  async activeUser(id: string): Promise<{ id: string; role: string } | undefined> {
    const k = await this.known(id);
    return k && { id, role: k.role };
  }

  /** The cached record (role, nick, avatar) of an active user, read once per KNOWN_USER_TTL_MS. */
  private async known(id: string): Promise<{ role: string; nick: string; avatar: string } | undefined> {
    const now = Date.now();
    const known = this.knownUsers.get(id);
    if (known && known.until > now) return known;
    const u = await this.d.store.getUser(id);
    if (!u || u.disabled) {
      this.knownUsers.delete(id);
      return undefined;
    }
    if (this.knownUsers.size >= KNOWN_USERS_MAX) this.knownUsers.clear();
    const entry = { role: u.role, nick: u.nick, avatar: u.avatar, until: now + KNOWN_USER_TTL_MS };
    this.knownUsers.set(id, entry);
    return entry;
  }

  async userExists(id: string): Promise<boolean> {
    return (await this.activeUser(id)) !== undefined;
  }

  /** A user's profile (nick, avatar, attributes) as stored, or undefined when there is no such user. */
  profile(id: string): Promise<UserRow | undefined> {
    return this.d.store.getUser(id);
  }

  /** The profiles of several users, in one read (users that do not exist are left out). */
  profiles(ids: string[]): Promise<UserRow[]> {
    return this.d.store.getUsers(ids);
  }

  /** A user's record was changed on this node: every node forgets what it cached of the user. */
  forgetUser(id: string): void {
    this.knownUsers.delete(id);
    this.d.userChanged?.(id);
  }

  /** Another node changed a user's record: drop this node's cached copy only. */
  dropUser(id: string): void {
    this.knownUsers.delete(id);
  }

  /** A 1:1 message. The conversation is created by its first message. */
  async sendDirect(from: string, to: string, input: SendInput, skip?: string): Promise<Ack> {
    if (typeof to !== "string" || !USER_ID_RE.test(to)) fail("bad_request", "`to` must be a user id");
    if (to === from) fail("bad_request", "cannot send a message to yourself");
    if (!(await this.userExists(to))) fail("not_found", `no user ${to}`);
    const conv = directConvId(from, to);
    return this.commit(from, conv, input, [from, to], skip, { kind: "direct", members: [from, to] }, to);
  }

  /** Stores through the group-commit writer and pushes to `to` once committed. */
  async commit(
    from: string,
    conv: string,
    input: SendInput,
    to: string[],
    skip?: string,
    create?: { kind: string; members: string[] },
    /** a 1:1 recipient, whose blacklist is checked in the writing transaction */
    recipient?: string,
    /** the kind of group (core/groups.ts) a group message is posted to, carried on its event */
    group?: string,
  ): Promise<Ack> {
    const kind = input.kind ?? "text";
    if (!KIND_RE.test(kind)) fail("bad_request", "`kind` must be 1-32 characters of [A-Za-z0-9_.:-]");
    if (input.body === undefined) fail("bad_request", "`body` is required");
    if (input.cmid !== undefined && (typeof input.cmid !== "string" || input.cmid.length === 0 || input.cmid.length > 64)) {
      fail("bad_request", "`cmid` must be a string of 1-64 characters");
    }
    // Every send of every protocol passes here: what Postgres cannot store is refused before the writer.
    storableText(input.cmid, "`cmid`");
    storableJson(input.body, "`body`");
    // The sender's name and avatar travel with the message event (protocols that show them with a push read
    // them there); cached like any active user.
    const who = await this.known(from);
    // A rich card (kind `card`) comes from a service account, or is posted into a service group by its owner or admins.
    if (kind === CARD_KIND && who?.role !== "service" && group !== "service") fail("forbidden", "only service accounts send rich cards");
    const now = Date.now();
    const r = await this.d.writer.append({
      id: this.d.ids.next(now),
      conv,
      sender: from,
      kind,
      body: input.body,
      cmid: input.cmid,
      at: new Date(now),
      create,
      recipient,
    });
    if (r.refused) {
      mBlocked.value++;
      // 1:1: the recipient blocked the sender; a container (desk): the agent serving it did.
      return fail("blocked", recipient ? `${recipient} does not accept your messages` : "the agent serving this conversation does not accept your messages");
    }
    const { msg, dup } = r;
    if (dup) mDup.value++;
    else {
      mSent.value++;
      this.d.emit({ type: "message", msg, to, ...(who ? { sender: { nick: who.nick, avatar: who.avatar } } : {}), ...(group ? { group } : {}) }, skip);
    }
    return ackOf(msg, dup);
  }

  /** Messages others wrote above the user's delivered cursor (all conversations, or one). Does not move it. */
  async pending(userId: string, opts: { conv?: string; limit?: number; after?: { conv: string; seq: number } }) {
    const limit = clampLimit(opts.limit, 100);
    await this.d.flushPushed?.(userId);
    const msgs = await this.d.store.pending(userId, { ...opts, limit: limit + 1 });
    return { msgs: msgs.slice(0, limit), more: msgs.length > limit };
  }

  /**
   * Pull over a socket: the page of `pending`, with the marks that confirm it (its highest seq per conversation).
   * The reply carrying it hands them to the hub, which stores them once the socket wrote the reply out
   * (core/delivery.ts: marked delivered only after the socket took it). `skip`: the pulling session.
   */
  async pullPage(userId: string, opts: { conv?: string; limit?: number }, skip?: string) {
    const { msgs, more } = await this.pending(userId, opts);
    const tops = new Map<string, number>();
    for (const m of msgs) if (m.seq > (tops.get(m.conv) ?? 0)) tops.set(m.conv, m.seq);
    const marks: PageMarks = { tops, skip };
    return { msgs, more, marks };
  }

  /** Stores pulled pages' delivered marks (of any number of users) in one statement; the cursors that moved are told. */
  async markPulled(marks: readonly PulledMark[]): Promise<void> {
    const skips = new Map<string, string | undefined>();
    for (const m of marks) skips.set(`${m.user}\n${m.conv}`, m.skip);
    for (const { user, conv, seq } of await this.d.store.advancePulled(marks)) {
      this.advanced(user, conv, "delivered", seq, skips.get(`${user}\n${conv}`));
    }
  }

  /**
   * Pull and mark delivered in one statement, for a transport that cannot tell when its answer was taken (an
   * HTTP response): the page returned is confirmed in the same call.
   */
  async pull(userId: string, opts: { conv?: string; limit?: number }) {
    const limit = clampLimit(opts.limit, 100);
    await this.d.flushPushed?.(userId);
    const { msgs, moved } = await this.d.store.pull(userId, { conv: opts.conv, limit });
    for (const [conv, v] of moved) this.advanced(userId, conv, "delivered", v);
    return { msgs: msgs.slice(0, limit), more: msgs.length > limit };
  }

  /**
   * Moves the cursor of each conversation in `msgs` to its highest seq there, in one statement (a
   * 100-message pull over 10 chats went from ~12 ms of sequential updates to one ~1 ms round trip).
   */
  async confirmAll(userId: string, msgs: Message[], field: "delivered" | "read"): Promise<void> {
    const top = new Map<string, number>();
    for (const m of msgs) top.set(m.conv, Math.max(top.get(m.conv) ?? 0, m.seq));
    await this.advanceMany(userId, field, top);
  }

  /** Moves several cursors of one user in one statement (conversation → seq); those it is no member of are skipped. */
  async advanceMany(userId: string, field: "delivered" | "read", to: ReadonlyMap<string, number>): Promise<void> {
    const moved = await this.d.store.advanceCursors(userId, field, [...to].map(([conv, seq]) => ({ conv, seq })));
    for (const [conv, v] of moved) this.advanced(userId, conv, field, v);
  }

  /**
   * Delivered marks of pushes (conversation → the seqs pushed to, and written out by, the user's
   * connections), in one statement: each cursor moves over pushed messages only and stops before the first
   * message of another sender that was not pushed (sent while the user was away, not pulled yet).
   */
  async markPushed(userId: string, pushed: ReadonlyMap<string, readonly number[]>): Promise<void> {
    const moved = await this.d.store.advancePushed(userId, [...pushed].map(([conv, seqs]) => ({ conv, seqs })));
    for (const [conv, v] of moved) this.advanced(userId, conv, "delivered", v);
  }

  /**
   * Confirms delivery (or reading) up to `seq`. Receipts: in a direct conversation the peer is told at once;
   * in groups and containers the senders get counts, debounced (receipts.ts). The user's other devices are
   * always told, so their unread counts follow.
   */
  async advance(userId: string, conv: string, field: "delivered" | "read", seq: number): Promise<number> {
    if (typeof conv !== "string" || !conv) fail("bad_request", "`conv` is required");
    if (!Number.isSafeInteger(seq) || seq < 0) fail("bad_request", "`seq` must be a non-negative integer");
    const v = await this.d.store.advanceCursor(userId, conv, field, seq);
    if (v === undefined) fail("not_member", `not a member of ${conv}`);
    this.advanced(userId, conv, field, v!);
    return v!;
  }

  /**
   * A cursor moved: the peer and the user's devices are told (but `skip`, the connection that pulled:
   * its reply says it all), group senders get counts.
   */
  private advanced(userId: string, conv: string, field: "delivered" | "read", v: number, skip?: string): void {
    const peer = directPeer(conv, userId);
    this.d.emit({ type: "cursor", conv, user: userId, field, seq: v, to: peer ? [peer, userId] : [userId] }, skip);
    if (!peer && hasReceiptCounts(conv)) this.receipts.touch(conv, v);
  }

  /** Delivered/read counts of the user's own messages with from <= seq <= to (at most RECEIPT_WINDOW of them). */
  async receiptCounts(userId: string, conv: string, from: number, to: number): Promise<ReceiptCount[]> {
    await this.requireMember(conv, userId);
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || to < from) fail("bad_request", "`from`..`to` must be a seq range");
    const rows = await this.d.receipts.receiptCounts(conv, Math.max(from, to - RECEIPT_WINDOW + 1), to, userId);
    return rows.map(({ seq, delivered, read }) => ({ seq, delivered, read }));
  }

  /** Who read the user's own message `seq`. */
  async readers(userId: string, conv: string, seq: number): Promise<string[]> {
    await this.requireMember(conv, userId);
    const [m] = await this.d.store.history(conv, { afterSeq: seq - 1, beforeSeq: seq + 1, limit: 1 });
    if (!m || m.from !== userId) fail("not_found", "no such message of yours");
    return this.d.receipts.readersOf(conv, seq, userId);
  }

  /** A page of a conversation the user belongs to. */
  async history(
    userId: string,
    conv: string,
    q: { before?: number; after?: number; from?: number; to?: number; limit?: number; desc?: boolean },
  ) {
    await this.requireMember(conv, userId);
    const limit = clampLimit(q.limit, 50);
    const desc = q.desc ?? q.after === undefined;
    const msgs = await this.d.store.history(conv, {
      beforeSeq: q.before,
      afterSeq: q.after,
      from: timeArg(q.from, "from"),
      to: timeArg(q.to, "to"),
      limit: limit + 1,
      desc,
    });
    return { msgs: msgs.slice(0, limit), more: msgs.length > limit };
  }

  /** The user's conversation list, most recent first. */
  inbox(userId: string, q: Omit<InboxQuery, "limit"> & { limit?: number }): Promise<InboxRow[]> {
    if (q.kind !== undefined && !CONV_KINDS.includes(q.kind)) fail("bad_request", `\`kind\` must be one of ${CONV_KINDS.join(", ")}`);
    timeArg(q.since, "since");
    timeArg(q.before, "before");
    return this.d.inboxes.inboxOf(userId, { ...q, limit: clampLimit(q.limit, 100) });
  }

  async requireMember(conv: string, userId: string) {
    if (typeof conv !== "string" || !conv) fail("bad_request", "`conv` is required");
    const m = await this.d.store.getMember(conv, userId);
    if (!m) fail("not_member", `not a member of ${conv}`);
    return m!;
  }
}

/** A time in epoch milliseconds from a client, as a Date; one no Date can hold (1e300) is a bad request. */
function timeArg(v: number | undefined, name: string): Date | undefined {
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) fail("bad_request", `\`${name}\` must be a time in epoch milliseconds`);
  return d;
}

function clampLimit(v: unknown, def: number): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || (v as number) < 1) fail("bad_request", "`limit` must be a positive integer");
  return Math.min(v as number, MAX_PAGE);
}
