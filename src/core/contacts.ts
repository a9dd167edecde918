// The 1:1 chat list of a user ("contacts"): direct conversations holding messages, with unread counts,
// "awaiting my reply" and recency — the inbox narrowed to direct conversations.
import type { Chat } from "./chat.ts";
import { directConvId } from "./conv-ids.ts";
import type { Conversations, Inboxes, Memberships, PresenceView, Users } from "./ports.ts";
import type { UserRow } from "./records.ts";
import type { Message } from "./types.ts";

export interface ContactRow {
  conv: string;
  peer: string;
  nick: string;
  avatar: string;
  attributes: Record<string, unknown>;
  lastSeq: number;
  lastMsgAt: number | null;
  /** others' messages above the user's read cursor (recalled ones excluded) */
  unread: number;
  /** the peer wrote after the user's own latest message */
  awaiting: boolean;
}

/** "Recent contacts": a message within this window. */
export const RECENT_MS = 2 * 86400_000;

export interface ContactSummary {
  all: number;
  recent: number;
  awaiting: number;
}

/** A conversation of the user with its members online now. */
export interface OnlineGroup {
  conv: string;
  name: string;
  /** its members online now (the user included), by id */
  online: UserRow[];
}

/** Users looked up at most this many ids per statement. */
const USERS_PER_QUERY = 10_000;

export interface ContactsDeps {
  store: Users & Conversations;
  memberships: Pick<Memberships, "conversationsWithMembers">;
  inboxes: Inboxes;
  chat: Pick<Chat, "advance">;
  /** Which users are online now (cluster-wide). */
  presence: Pick<PresenceView, "onlineOf">;
}

export class Contacts {
  constructor(private readonly d: ContactsDeps) {}

  /**
   * The user's conversations of `kind` (groups) with their names and their members online now, and which of
   * `peers` are online now, in order: one query for the conversations and their members, one presence call,
   * one user lookup, however many groups the user is in.
   */
  async onlineByConversation(userId: string, kind: string, peers: string[]): Promise<{ convs: OnlineGroup[]; peers: UserRow[] }> {
    const convs = await this.d.memberships.conversationsWithMembers(userId, kind);
    const everyone = new Set(peers);
    for (const c of convs) for (const u of c.members) everyone.add(u);
    const online = everyone.size ? await this.d.presence.onlineOf([...everyone]) : new Set<string>();
    const ids = [...online];
    const users = new Map<string, UserRow>();
    for (let i = 0; i < ids.length; i += USERS_PER_QUERY) {
      for (const u of await this.d.store.getUsers(ids.slice(i, i + USERS_PER_QUERY))) users.set(u.id, u);
    }
    const pick = (list: string[]) => list.flatMap((id) => (online.has(id) && users.has(id) ? [users.get(id)!] : []));
    return { convs: convs.map((c) => ({ conv: c.conv, name: c.name, online: pick(c.members) })), peers: pick(peers) };
  }

  /** The last `n` messages of each contact's conversation, newest first (recalled ones flagged), in one query. */
  lastMessages(rows: ContactRow[], n: number): Promise<Map<string, Message[]>> {
    return this.d.inboxes.lastMessagesOf(rows.map((r) => r.conv), n);
  }

  async list(userId: string): Promise<ContactRow[]> {
    const rows = await this.d.inboxes.inboxOf(userId, { kind: "direct", limit: 10_000 });
    return rows
      .filter((r) => r.peer)
      .map((r) => ({
        conv: r.conv,
        peer: r.peer!.id,
        nick: r.peer!.nick,
        avatar: r.peer!.avatar,
        attributes: r.peer!.attributes,
        lastSeq: r.lastSeq,
        lastMsgAt: r.lastMsgAt,
        unread: r.unread,
        awaiting: r.awaiting,
      }));
  }

  summary(rows: ContactRow[], now = Date.now()): ContactSummary {
    return {
      all: rows.length,
      recent: rows.filter((r) => isRecent(r, now)).length,
      awaiting: rows.filter((r) => r.awaiting).length,
    };
  }

  /** Marks everything the peer wrote so far as read by `userId`. No-op when they never talked. */
  async markRead(userId: string, peer: string): Promise<void> {
    const conv = directConvId(userId, peer);
    const c = await this.d.store.getConversation(conv);
    if (!c || !(await this.d.store.getMember(conv, userId))) return;
    await this.d.chat.advance(userId, conv, "read", c.lastSeq);
  }
}

export const isRecent = (r: { lastMsgAt: number | null }, now = Date.now()) => r.lastMsgAt !== null && now - r.lastMsgAt <= RECENT_MS;
