// Receipts given as message ids (protocols whose clients know messages by id, not by conversation and seq):
// each message's conversation cursor of the caller moves up to it. Only a recipient sets them: the caller must
// be a member of the message's conversation and not its sender. The cursor rules (forward only, the peer told
// at once in a 1:1 chat, group senders told counts, debounced) are Chat's.
import type { Chat } from "./chat.ts";
import { fail } from "./errors.ts";
import type { MessageIndex } from "./ports.ts";

/** Message ids a receipt call takes at once. */
export const MAX_RECEIPT_IDS = 100;
const MSG_ID_RE = /^[1-9]\d{0,18}$/;

export class MessageRefs {
  constructor(
    private readonly index: Pick<MessageIndex, "byIds">,
    private readonly chat: Pick<Chat, "advanceMany" | "requireMember">,
  ) {}

  /** Marks messages received (`delivered`) or `read` by `userId`; refused whole when any is not the user's to mark. */
  async confirm(userId: string, ids: string[], field: "delivered" | "read"): Promise<number> {
    if (!Array.isArray(ids) || !ids.length || ids.length > MAX_RECEIPT_IDS) fail("bad_request", `give 1-${MAX_RECEIPT_IDS} message ids`);
    for (const id of ids) if (typeof id !== "string" || !MSG_ID_RE.test(id) || BigInt(id) >= 2n ** 63n) fail("bad_request", `\`${String(id).slice(0, 32)}\` is not a message id`);
    const wanted = [...new Set(ids)];
    const msgs = await this.index.byIds(wanted.map((i) => BigInt(i)));
    if (msgs.length < wanted.length) {
      const found = new Set(msgs.map((m) => m.id));
      fail("not_found", `no message ${wanted.find((i) => !found.has(i))}`);
    }
    const top = new Map<string, number>();
    for (const m of msgs) {
      if (m.from === userId) fail("forbidden", `message ${m.id} is your own: only a recipient sets its status`);
      top.set(m.conv, Math.max(top.get(m.conv) ?? 0, m.seq));
    }
    for (const conv of top.keys()) {
      try {
        await this.chat.requireMember(conv, userId);
      } catch {
        fail("forbidden", "only a recipient of a message sets its status");
      }
    }
    await this.chat.advanceMany(userId, field, top);
    return msgs.length;
  }
}
