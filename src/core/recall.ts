// Recall: a sender takes back its own message within the recall window. The body is hidden from every
// later read (history, offline, chat lists) and the conversation's members are told; a live room's viewers
// are not stored members, so there the recall goes out on the room's tick.
import { isLiveRoom } from "./conv-ids.ts";
import { fail } from "./errors.ts";
import type { Live } from "./live.ts";
import type { Conversations, RecallRecords } from "./ports.ts";
import type { CoreEvent, Message } from "./types.ts";

export class Recalls {
  constructor(
    private readonly records: RecallRecords,
    private readonly conversations: Pick<Conversations, "memberIds">,
    private readonly rooms: Pick<Live, "recalled">,
    private readonly windowSec: number,
    private readonly emit: (ev: CoreEvent, skip?: string) => void,
  ) {}

  /** Recalls `userId`'s message named by its client id or its server id (decimal). */
  async recall(userId: string, ref: { cmid?: string; id?: string }, skip?: string): Promise<Message> {
    let id: bigint | undefined;
    if (ref.id !== undefined) {
      if (!/^\d{1,19}$/.test(ref.id)) fail("bad_request", "`id` must be a message id");
      id = BigInt(ref.id);
    } else if (!ref.cmid) fail("bad_request", "name the message to recall");
    const msg = await this.records.ownMessage(userId, { id, cmid: ref.cmid });
    if (!msg) fail("not_found", "no such message of yours");
    if (Date.now() - msg!.ts >= this.windowSec * 1000) fail("recall_expired", `messages can be recalled for ${this.windowSec} s`);
    if (await this.records.markRecalled(BigInt(msg!.id))) {
      if (isLiveRoom(msg!.conv)) this.rooms.recalled(msg!.conv, msg!.id, msg!.seq, userId);
      else {
        const to = await this.conversations.memberIds(msg!.conv);
        this.emit({ type: "recall", conv: msg!.conv, id: msg!.id, seq: msg!.seq, from: userId, cmid: msg!.cmid, to }, skip);
      }
    }
    return { ...msg!, body: null, recalled: true };
  }
}
