// The one send command of every protocol and of the server API: a message to a user (`to`) or into a
// conversation (`conv`). What the conversation is (direct, group, desk container) is decided here, and each
// kind's rules (membership, roles, mutes, who serves a guest) are checked once, by the service that owns it.
// Live rooms (`r:`, Live.send: droppable or must-deliver) and the rooms protocol (Containers: a speaker's mode)
// have commands of their own.
import type { Ack } from "./types.ts";
import type { Chat, SendInput } from "./chat.ts";
import { directConvId, directPeer, groupIdOf, guestOf } from "./conv-ids.ts";
import type { Desk } from "./desk.ts";
import { fail } from "./errors.ts";
import type { Groups } from "./groups.ts";

/** Exactly one of: a user (a 1:1 message), or a conversation id. */
export interface SendTarget {
  to?: string;
  conv?: string;
}

export interface SendOptions {
  /** the sending connection: it is not pushed its own message (its ack says it all) */
  session?: string;
  /** the server API: the sender may be any existing user; a group's roles, mutes and closing do not apply */
  trusted?: boolean;
}

export interface MessagingDeps {
  chat: Chat;
  groups: Groups;
  desk: Desk;
}

export class Messaging {
  constructor(private readonly d: MessagingDeps) {}

  async send(from: string, target: SendTarget, input: SendInput, o: SendOptions = {}): Promise<Ack> {
    const { to, conv } = target;
    if ((to === undefined) === (conv === undefined)) fail("bad_request", "give exactly one of `to` (a user) or `conv`");
    if (o.trusted && !(await this.d.chat.userExists(from))) fail("not_found", `no user ${from}`);
    if (to !== undefined) return this.d.chat.sendDirect(from, to, input, o.session);
    if (typeof conv !== "string" || !conv) return fail("bad_request", "`conv` must be a conversation id");
    const peer = directPeer(conv, from);
    if (peer !== undefined) {
      if (directConvId(from, peer) !== conv) fail("not_member", `not a member of ${conv}`);
      return this.d.chat.sendDirect(from, peer, input, o.session);
    }
    const group = groupIdOf(conv);
    if (group !== undefined) return this.d.groups.send(from, group, input, o.session, o.trusted);
    const guest = guestOf(conv);
    if (guest !== undefined) return this.d.desk.send(from, guest, input, o.session);
    return fail("not_found", `cannot send to ${conv}`);
  }
}
