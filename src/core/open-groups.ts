// Open groups: a group exists once someone joins it, anyone may join, members send to all members.
// The J-IM model (join by group id). Conversation id `g:<groupId>`, kind `group`, subtype `open`.
import { removeMember } from "../store/memberships.ts";
import type { Store } from "../store/store.ts";
import type { Chat, SendInput } from "./chat.ts";
import { fail } from "./errors.ts";
import type { Ack, CoreEvent } from "./types.ts";

export const GROUP_ID_RE = /^[\w.@-]{1,128}$/;
export const groupConvId = (groupId: string) => `g:${groupId}`;

export class OpenGroups {
  constructor(
    private readonly store: Store,
    private readonly chat: Chat,
    private readonly emit: (ev: CoreEvent) => void,
  ) {}

  /** Joins (creating the group when it is new) and tells the members; returns the members after the join. */
  async join(userId: string, groupId: string): Promise<string[]> {
    const conv = groupConvId(check(groupId));
    const c = await this.store.getConversation(conv);
    if (c && (c.kind !== "group" || c.subtype !== "open")) fail("forbidden", `group ${groupId} is not open to join`);
    if (c?.closed) fail("forbidden", `group ${groupId} is closed`);
    await this.store.createConversation(
      { id: conv, kind: "group", subtype: "open", name: groupId, ownerId: userId },
      { [userId]: c ? "member" : "owner" },
    );
    const members = await this.store.memberIds(conv);
    await this.notify(conv, userId, "join", members);
    return members;
  }

  /** Leaves and tells the members left and the leaver; false when the user was not a member. */
  async leave(userId: string, groupId: string): Promise<boolean> {
    const conv = groupConvId(check(groupId));
    if (!(await removeMember(this.store.db, conv, userId))) return false;
    await this.notify(conv, userId, "leave", [...(await this.store.memberIds(conv)), userId]);
    return true;
  }

  private async notify(conv: string, userId: string, change: "join" | "leave", to: string[]) {
    const nick = (await this.store.getUser(userId))?.nick ?? "";
    this.emit({ type: "member", conv, user: { id: userId, nick }, change, to });
  }

  async members(userId: string, groupId: string): Promise<string[]> {
    const conv = groupConvId(check(groupId));
    await this.chat.requireMember(conv, userId);
    return this.store.memberIds(conv);
  }

  async send(from: string, groupId: string, input: SendInput, skip?: string): Promise<Ack> {
    const members = await this.members(from, groupId);
    return this.chat.commit(from, groupConvId(groupId), input, members, skip);
  }
}

function check(groupId: string): string {
  if (typeof groupId !== "string" || !GROUP_ID_RE.test(groupId)) fail("bad_request", "`groupId` must be 1-128 characters of [A-Za-z0-9_.@-]");
  return groupId;
}
