// The chat list of a user: direct conversations with unread counts, "awaiting my reply" and recency.
import { contactsOf, type ContactRow } from "../store/contacts.ts";
import type { Store } from "../store/store.ts";
import type { Chat } from "./chat.ts";
import { directConvId } from "./ids.ts";

export type { ContactRow };

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

  list(userId: string): Promise<ContactRow[]> {
    return contactsOf(this.store.db, userId);
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

export const isRecent = (r: ContactRow, now = Date.now()) => r.lastMsgAt !== null && now - r.lastMsgAt <= RECENT_MS;
