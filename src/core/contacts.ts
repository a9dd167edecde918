// The 1:1 chat list of a user ("contacts"): direct conversations holding messages, with unread counts,
// "awaiting my reply" and recency — the inbox (store/inbox.ts) narrowed to direct conversations.
import { inboxOf } from "../store/inbox.ts";
import type { Store } from "../store/store.ts";
import type { Chat } from "./chat.ts";
import { directConvId } from "./ids.ts";

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

export class Contacts {
  constructor(
    private readonly store: Store,
    private readonly chat: Chat,
  ) {}

  async list(userId: string): Promise<ContactRow[]> {
    const rows = await inboxOf(this.store.db, userId, { kind: "direct", limit: 10_000 });
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
    const c = await this.store.getConversation(conv);
    if (!c || !(await this.store.getMember(conv, userId))) return;
    await this.chat.advance(userId, conv, "read", c.lastSeq);
  }
}

export const isRecent = (r: { lastMsgAt: number | null }, now = Date.now()) => r.lastMsgAt !== null && now - r.lastMsgAt <= RECENT_MS;
