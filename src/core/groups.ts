// Groups: conversation `g:<groupId>`, kind `group`, one of four subtypes with their own rules.
//  - user          private: members are added by the owner or an admin; nobody joins by themselves
//  - interest      open: anyone joins by id (J-IM groups are these; a join may create one)
//  - neighbourhood open, and discoverable by its `area` attribute (required at creation)
//  - service       a service account: anyone subscribes, only the owner and admins post
// Roles: owner (one), admin, member. The owner names admins, hands ownership over and dissolves the group;
// admins add, remove and mute members; everyone may leave — an owner who leaves hands ownership to the
// longest-standing admin, else the longest-standing member. The server API (actor `null`) may do anything.
import type { Chat, SendInput } from "./chat.ts";
import { groupConvId, groupIdOf } from "./conv-ids.ts";
import { fail } from "./errors.ts";
import type { Conversations, Memberships, Users } from "./ports.ts";
import type { ConversationRow, MemberInfo } from "./records.ts";
import { storableJson, storableText } from "./storable.ts";
import type { IdGen } from "./ids.ts";
import type { Ack, CoreEvent, MemberChange } from "./types.ts";

export const GROUP_KINDS = ["user", "interest", "neighbourhood", "service"] as const;
export type GroupKind = (typeof GROUP_KINDS)[number];
export const GROUP_ID_RE = /^[\w.@-]{1,128}$/;
export const MAX_GROUP_MEMBERS = 10_000;

const OPEN: ReadonlySet<string> = new Set(["interest", "neighbourhood", "service"]);
const RANK: Record<string, number> = { owner: 3, admin: 2, member: 1 };

export interface GroupInfo {
  id: string;
  conv: string;
  kind: GroupKind;
  name: string;
  avatar: string;
  owner: string | null;
  attributes: Record<string, unknown>;
  members: number;
  lastSeq: number;
  createdAt: number;
}

export interface GroupInput {
  id?: string;
  kind: string;
  name?: string;
  avatar?: string;
  attributes?: Record<string, unknown>;
  members?: string[];
}

/** `null` is the server API: trusted, no role needed. */
export type Actor = string | null;

export class Groups {
  constructor(
    private readonly store: Users & Conversations,
    private readonly memberships: Memberships,
    private readonly chat: Pick<Chat, "commit" | "requireMember" | "userExists">,
    private readonly ids: IdGen,
    private readonly emit: (ev: CoreEvent, skip?: string) => void,
  ) {}

  async create(owner: string, g: GroupInput): Promise<GroupInfo> {
    if (!GROUP_KINDS.includes(g.kind as GroupKind)) fail("bad_request", `\`kind\` must be one of ${GROUP_KINDS.join(", ")}`);
    const id = g.id === undefined ? this.ids.next().toString() : checkId(g.id);
    const attributes = g.attributes ?? {};
    checkStorable(g);
    if (g.kind === "neighbourhood" && (typeof attributes.area !== "string" || !attributes.area)) {
      fail("bad_request", "a neighbourhood group needs `attributes.area`");
    }
    if (!(await this.chat.userExists(owner))) fail("not_found", `no user ${owner}`);
    const others = [...new Set(g.members ?? [])].filter((u) => u !== owner);
    if (others.length + 1 > MAX_GROUP_MEMBERS) fail("bad_request", `a group holds at most ${MAX_GROUP_MEMBERS} members`);
    const conv = groupConvId(id);
    const made = await this.store.createConversation(
      { id: conv, kind: "group", subtype: g.kind, name: g.name ?? "", avatar: g.avatar ?? "", ownerId: owner, attributes },
      { [owner]: "owner" },
    );
    if (!made) fail("conflict", `group ${id} exists`);
    if (others.length) await this.addUsers(owner, conv, others);
    return this.info(null, id);
  }

  async info(viewer: Actor, groupId: string): Promise<GroupInfo> {
    const c = await this.group(groupId);
    if (viewer !== null && c.subtype === "user") await this.chat.requireMember(c.id, viewer);
    return infoOf(c, await this.memberships.memberCount(c.id));
  }

  async members(viewer: Actor, groupId: string): Promise<MemberInfo[]> {
    const c = await this.group(groupId);
    if (viewer !== null) await this.chat.requireMember(c.id, viewer);
    return this.memberships.listMembers(c.id);
  }

  /** Open groups of a kind, e.g. the neighbourhood groups of an area. */
  async discover(kind: string, area: string | undefined, limit = 100): Promise<GroupInfo[]> {
    if (!OPEN.has(kind)) fail("bad_request", "only interest, neighbourhood and service groups are listed");
    storableText(area, "`area`");
    const rows = await this.memberships.findConversations({ kind: "group", subtype: kind, attr: area ? ["area", area] : undefined, limit });
    return Promise.all(rows.map(async (c) => infoOf(c, await this.memberships.memberCount(c.id))));
  }

  /**
   * A user joins an open group by itself. With `createAs`, a group that does not exist yet is created
   * with the user as its owner (J-IM: the first join creates the group).
   */
  async join(userId: string, groupId: string, createAs?: GroupKind): Promise<void> {
    const conv = groupConvId(checkId(groupId));
    let c = await this.store.getConversation(conv);
    if (!c && createAs) {
      // Only the join that actually created the group owns it; one that lost the race joins like anyone.
      const made = await this.store.createConversation(
        { id: conv, kind: "group", subtype: createAs, name: groupId, ownerId: userId },
        { [userId]: "owner" },
      );
      if (made) return this.notify(conv, userId, "join", userId);
      c = await this.store.getConversation(conv);
    }
    if (!c || c.kind !== "group") fail("not_found", `no group ${groupId}`);
    if (c!.closed) fail("forbidden", `group ${groupId} is dissolved`);
    if (!OPEN.has(c!.subtype ?? "")) fail("forbidden", `group ${groupId} is private: a member must add you`);
    if ((await this.memberships.memberCount(conv)) >= MAX_GROUP_MEMBERS) fail("forbidden", `group ${groupId} is full`);
    if ((await this.memberships.addMembers(conv, { [userId]: "member" })).length) await this.notify(conv, userId, "join", userId);
  }

  /** Adds users (owner or admin, or the server API). Returns those actually added. */
  async add(actor: Actor, groupId: string, userIds: string[]): Promise<string[]> {
    const c = await this.group(groupId);
    await this.need(actor, c, "admin");
    return this.addUsers(actor, c.id, userIds);
  }

  /** Leaves; an owner first hands ownership to the longest-standing admin, else member. */
  async leave(userId: string, groupId: string): Promise<boolean> {
    const conv = groupConvId(checkId(groupId));
    const m = await this.store.getMember(conv, userId);
    if (!m) return false;
    if (m.role === "owner") {
      const others = (await this.memberships.listMembers(conv)).filter((x) => x.user !== userId);
      const heir = others.find((x) => x.role === "admin") ?? others[0];
      if (heir && (await this.memberships.transferOwner(conv, userId, heir.user))) {
        await this.notify(conv, heir.user, "role", userId, { role: "owner" });
      }
    }
    return this.drop(conv, userId, userId);
  }

  /** Removes a member: an admin removes members, the owner removes anyone. */
  async remove(actor: Actor, groupId: string, userId: string): Promise<boolean> {
    const c = await this.group(groupId);
    const target = await this.store.getMember(c.id, userId);
    if (!target) return false;
    if (target.role === "owner") fail("forbidden", "the owner cannot be removed");
    await this.need(actor, c, target.role === "admin" ? "owner" : "admin");
    return this.drop(c.id, userId, actor);
  }

  /** Owner only: makes a member an admin or a member; `owner` hands ownership over. */
  async setRole(actor: Actor, groupId: string, userId: string, role: string): Promise<void> {
    const c = await this.group(groupId);
    if (role !== "admin" && role !== "member" && role !== "owner") fail("bad_request", "`role` must be owner, admin or member");
    await this.need(actor, c, "owner");
    if (!(await this.store.getMember(c.id, userId))) fail("not_member", `${userId} is not a member of ${groupId}`);
    if (role === "owner") {
      if (c.ownerId === userId) return;
      if (!c.ownerId || !(await this.memberships.transferOwner(c.id, c.ownerId, userId))) fail("not_found", "no owner to hand over from");
    } else {
      if (c.ownerId === userId) fail("forbidden", "hand ownership over before changing the owner's role");
      await this.memberships.setMemberRole(c.id, userId, role);
    }
    await this.notify(c.id, userId, "role", actor, { role });
  }

  /** Mutes a member for `seconds` (0 lifts the mute). An admin mutes members; the owner mutes admins too. */
  async mute(actor: Actor, groupId: string, userId: string, seconds: number): Promise<number | null> {
    const c = await this.group(groupId);
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 366 * 86400) fail("bad_request", "`seconds` must be 0..31622400");
    const target = await this.store.getMember(c.id, userId);
    if (!target) fail("not_member", `${userId} is not a member of ${groupId}`);
    if (target!.role === "owner") fail("forbidden", "the owner cannot be muted");
    await this.need(actor, c, target!.role === "admin" ? "owner" : "admin");
    const until = seconds ? Date.now() + seconds * 1000 : null;
    await this.memberships.setMute(c.id, userId, until === null ? null : new Date(until));
    await this.notify(c.id, userId, "mute", actor, { mutedUntil: until });
    return until;
  }

  async update(actor: Actor, groupId: string, set: { name?: string; avatar?: string; attributes?: Record<string, unknown> }) {
    const c = await this.group(groupId);
    await this.need(actor, c, "admin");
    checkStorable(set);
    await this.memberships.updateConversation(c.id, set);
    return this.info(null, groupId);
  }

  /** Owner only: closes the group. Members are told; history stays readable, nobody can post. */
  async dissolve(actor: Actor, groupId: string): Promise<void> {
    const c = await this.group(groupId);
    await this.need(actor, c, "owner");
    await this.memberships.updateConversation(c.id, { closed: true });
    const to = await this.store.memberIds(c.id);
    this.emit({ type: "member", conv: c.id, user: { id: c.ownerId ?? "", nick: "" }, change: "dissolve", by: actor, to });
  }

  /**
   * A member posts to the group. Refused when the group is dissolved, when the sender is muted, and in a
   * service group unless the sender is its owner or an admin. `trusted` (the server API) skips the checks.
   */
  async send(from: string, groupId: string, input: SendInput, skip?: string, trusted = false): Promise<Ack> {
    const c = await this.group(groupId);
    if (!trusted) {
      if (c.closed) fail("forbidden", `group ${groupId} is dissolved`);
      const m = await this.chat.requireMember(c.id, from);
      const left = m.mutedUntil ? m.mutedUntil.getTime() - Date.now() : 0;
      if (left > 0) fail("muted", `you are muted in this group for ${Math.ceil(left / 1000)} s`, left);
      if (c.subtype === "service" && m.role === "member") fail("forbidden", "only the owner and admins post in a service group");
    }
    return this.chat.commit(from, c.id, input, await this.store.memberIds(c.id), skip, undefined, undefined, c.subtype ?? undefined);
  }

  private async addUsers(actor: Actor, conv: string, userIds: string[]): Promise<string[]> {
    if (!Array.isArray(userIds) || userIds.length > 1000) fail("bad_request", "`users` must be a list of at most 1000 user ids");
    if ((await this.memberships.memberCount(conv)) + userIds.length > MAX_GROUP_MEMBERS) {
      fail("forbidden", `a group holds at most ${MAX_GROUP_MEMBERS} members`);
    }
    const added = await this.memberships.addMembers(conv, Object.fromEntries(userIds.map((u) => [u, "member"])));
    for (const u of added) await this.notify(conv, u, "join", actor);
    return added;
  }

  private async drop(conv: string, userId: string, by: Actor): Promise<boolean> {
    if (!(await this.memberships.removeMember(conv, userId))) return false;
    // The leaver is told too: its other devices drop the group.
    await this.notify(conv, userId, "leave", by, undefined, [userId]);
    return true;
  }

  private async notify(conv: string, userId: string, change: MemberChange, by: Actor, extra?: { role?: string; mutedUntil?: number | null }, also: string[] = []) {
    const nick = (await this.store.getUser(userId))?.nick ?? "";
    const to = [...(await this.store.memberIds(conv)), ...also];
    this.emit({ type: "member", conv, user: { id: userId, nick }, change, by, ...extra, to });
  }

  private async group(groupId: string): Promise<ConversationRow> {
    const c = await this.store.getConversation(groupConvId(checkId(groupId)));
    if (!c || c.kind !== "group") fail("not_found", `no group ${groupId}`);
    return c!;
  }

  /** The actor's role must be at least `min` (the server API always passes). */
  private async need(actor: Actor, c: ConversationRow, min: "admin" | "owner"): Promise<void> {
    if (actor === null) return;
    const m = await this.store.getMember(c.id, actor);
    if (!m) fail("not_member", `not a member of group ${groupIdOf(c.id)}`);
    if ((RANK[m!.role] ?? 0) < RANK[min]!) fail("forbidden", `only the ${min === "owner" ? "owner" : "owner or an admin"} may do this`);
  }
}

/** A group's client-given text must be storable (core/storable.ts). */
function checkStorable(g: { name?: string; avatar?: string; attributes?: Record<string, unknown> }): void {
  storableText(g.name, "`name`");
  storableText(g.avatar, "`avatar`");
  storableJson(g.attributes, "`attributes`");
}

function checkId(groupId: string): string {
  if (typeof groupId !== "string" || !GROUP_ID_RE.test(groupId)) fail("bad_request", "a group id is 1-128 characters of [A-Za-z0-9_.@-]");
  return groupId;
}

function infoOf(c: ConversationRow, members: number): GroupInfo {
  return {
    id: groupIdOf(c.id)!,
    conv: c.id,
    kind: c.subtype as GroupKind,
    name: c.name,
    avatar: c.avatar,
    owner: c.ownerId,
    attributes: c.attributes,
    members,
    lastSeq: c.lastSeq,
    createdAt: c.createdAt.getTime(),
    ...(c.closed ? { closed: true } : {}),
  };
}
