// The core's ports: everything the core needs from the outside, named here and implemented by adapters
// (the store in src/store/, the hub in src/hub/, presence in src/presence/), one implementation per file.
// The core imports no adapter; the composition root (src/server.ts) hands each service the ports it uses.
import type {
  AppendItem,
  AppendResult,
  AutoReplyRow,
  ContainerAttrs,
  ContainerRow,
  ConversationRow,
  DeskAgentRow,
  DeskGroupRow,
  FriendRow,
  HistoryQuery,
  InboxQuery,
  InboxRow,
  MemberInfo,
  MemberRow,
  NewConversation,
  OpenResult,
  ReceiptRow,
  RequestRow,
  RoomRow,
  RoomsAccountRow,
  UserInput,
  UserRef,
  UserRow,
} from "./records.ts";
import type { CoreEvent, Message } from "./types.ts";

// Two ports keep their own module, beside the rules that use them: the desk's routing state (memory and
// Redis implementations) and the login-attempt counter of the password throttle.
export type { DeskState } from "./desk-state.ts";
export type { AttemptCounter } from "./ratelimit.ts";

/** Appends a batch of messages in one transaction (the group-commit writer's store function). (store/append.ts) */
export type AppendBatch = (items: AppendItem[], stages?: AppendStages) => Promise<AppendResult[]>;

/**
 * How a batch lets the next one overlap it (core/writer.ts). A writer's batches travel on one connection in
 * order: `sent` is called once the batch is on its way (a next batch sent now runs after it); `batch` names
 * the batch, and `after` the one in flight before it: this one commits only if that one did, else it fails
 * and the writer writes it again after that one, so seqs keep the order of the sends.
 */
export interface AppendStages {
  batch?: number;
  after?: number;
  sent?(): void;
}

/** User records. (store/users.ts) */
export interface Users {
  getUser(id: string): Promise<UserRow | undefined>;
  getUsers(ids: string[]): Promise<UserRow[]>;
  upsertUser(u: UserInput): Promise<UserRow>;
}

/** Conversations and who is a member of them. (store/conversations.ts) */
export interface Conversations {
  getConversation(id: string): Promise<ConversationRow | undefined>;
  /** False, with nobody added, when the id is taken. */
  createConversation(c: NewConversation, memberRoles: Record<string, string>): Promise<boolean>;
  getMember(convId: string, userId: string): Promise<MemberRow | undefined>;
  memberIds(convId: string): Promise<string[]>;
}

/** Stored messages and the members' delivered/read cursors over them. (store/messages.ts) */
export interface Messages {
  appendBatch: AppendBatch;
  pending(userId: string, opts: { conv?: string; limit: number; after?: { conv: string; seq: number } }): Promise<Message[]>;
  pull(userId: string, opts: { conv?: string; limit: number }): Promise<{ msgs: Message[]; moved: Map<string, number> }>;
  history(convId: string, q: HistoryQuery): Promise<Message[]>;
  advanceCursor(userId: string, convId: string, field: "delivered" | "read", seq: number): Promise<number | undefined>;
  advanceCursors(userId: string, field: "delivered" | "read", to: { conv: string; seq: number }[]): Promise<Map<string, number>>;
  advancePushed(userId: string, pushed: { conv: string; seqs: readonly number[] }[]): Promise<Map<string, number>>;
  /** Delivered cursors of pulled pages of any number of users, in one statement; returns those that moved. */
  advancePulled(marks: readonly { user: string; conv: string; seq: number }[]): Promise<{ user: string; conv: string; seq: number }[]>;
}

/** Users, conversations and messages: the one store every messaging service reads. */
export type ChatStore = Users & Conversations & Messages;

/** Membership changes and conversation lists. (store/memberships.ts) */
export interface Memberships {
  /** Adds members (existing ones are left as they are); returns the ids added. */
  addMembers(convId: string, roles: Record<string, string>): Promise<string[]>;
  removeMember(convId: string, userId: string): Promise<boolean>;
  setMemberRole(convId: string, userId: string, role: string): Promise<boolean>;
  transferOwner(convId: string, from: string, to: string): Promise<boolean>;
  setMute(convId: string, userId: string, until: Date | null): Promise<boolean>;
  listMembers(convId: string, limit?: number): Promise<MemberInfo[]>;
  memberCount(convId: string): Promise<number>;
  updateConversation(convId: string, set: Partial<Pick<ConversationRow, "name" | "avatar" | "attributes" | "closed" | "slowModeSec">>): Promise<boolean>;
  findConversations(q: { kind: string; subtype?: string; attr?: [string, string]; limit: number }): Promise<ConversationRow[]>;
  conversationsWithMembers(userId: string, kind: string): Promise<{ conv: string; name: string; members: string[] }[]>;
  /** The same for several users at once: user → its conversations of `kind`; a user in none has no entry. */
  conversationsWithMembersOf(userIds: readonly string[], kind: string): Promise<Map<string, { conv: string; name: string; members: string[] }[]>>;
}

/** A user's conversation list. (store/inbox.ts) */
export interface Inboxes {
  inboxOf(userId: string, q: InboxQuery): Promise<InboxRow[]>;
  /** The last `n` messages of each conversation. */
  lastMessagesOf(convs: string[], n: number): Promise<Map<string, Message[]>>;
}

/** Delivered/read counts and readers, from the members' cursors. (store/receipts.ts) */
export interface ReceiptQueries {
  receiptCounts(conv: string, lo: number, hi: number, sender?: string): Promise<ReceiptRow[]>;
  readersOf(conv: string, seq: number, sender: string, limit?: number): Promise<string[]>;
}

/** A sender's own messages, and hiding a recalled one. (store/recall.ts) */
export interface RecallRecords {
  ownMessage(sender: string, ref: { cmid?: string; id?: bigint }): Promise<Message | undefined>;
  /** True when the message was not recalled before. */
  markRecalled(id: bigint): Promise<boolean>;
}

/** Live rooms' settings and mutes. (store/rooms.ts) */
export interface RoomRecords {
  getRoom(conv: string): Promise<RoomRow | undefined>;
  ensureRoom(conv: string, name: string): Promise<RoomRow>;
  upsertRoom(conv: string, set: { name?: string; ownerId?: string | null; slowModeSec?: number }): Promise<RoomRow>;
  activeMutes(conv: string): Promise<Map<string, number>>;
  setRoomMute(conv: string, userId: string, until: Date | null): Promise<void>;
}

/** Friends, requests, blacklist and follows. (store/social.ts) */
export interface SocialGraph {
  requestFriend(from: string, to: string, note: string): Promise<"friends" | "accepted" | "pending">;
  answerRequest(me: string, from: string, accept: boolean): Promise<boolean>;
  requestsOf(me: string, dir: "in" | "out", status?: string): Promise<RequestRow[]>;
  friendsOf(me: string): Promise<FriendRow[]>;
  unfriend(a: string, b: string): Promise<boolean>;
  setRemark(me: string, friend: string, remark: string): Promise<boolean>;
  block(me: string, other: string): Promise<void>;
  unblock(me: string, other: string): Promise<boolean>;
  isBlocked(by: string, who: string): Promise<boolean>;
  blockedBy(me: string): Promise<UserRef[]>;
  follow(me: string, host: string): Promise<boolean>;
  unfollow(me: string, host: string): Promise<boolean>;
  followList(who: string, side: "followers" | "following", limit: number, after?: string): Promise<UserRef[]>;
  followCounts(who: string): Promise<{ followers: number; following: number }>;
}

/** Desk agent groups, agents and guests' conversations. (store/desk.ts) */
export interface DeskRecords {
  putGroup(g: { id: string; name?: string; disabled?: boolean }): Promise<DeskGroupRow>;
  group(id: string): Promise<DeskGroupRow | undefined>;
  groups(): Promise<DeskGroupRow[]>;
  putAgent(a: { userId: string; groupId?: string; capacity?: number; disabled?: boolean }): Promise<DeskAgentRow | undefined>;
  agent(userId: string): Promise<DeskAgentRow | undefined>;
  /** An agent's record with its group, in one read. */
  agentWithGroup(userId: string): Promise<{ agent: DeskAgentRow; group: DeskGroupRow | null } | undefined>;
  agents(groupId?: string): Promise<DeskAgentRow[]>;
  /** The guest's conversation, created (guest as its only member) when it is new; `group` is updated. */
  guestConversation(guest: string, group: string): Promise<ConversationRow>;
  /** Hands the guest's conversation to `to` when `version` is newer than the last move (and the owner is still `from`). */
  handOver(guest: string, to: string, version: number, from?: string): Promise<boolean>;
}

/** Rooms-protocol rooms, containers, accounts and auto-replies. (store/containers.ts) */
export interface ContainerRecords {
  enterRoom(conv: string, name: string, userId: string): Promise<void>;
  container(id: string): Promise<ContainerRow | undefined>;
  open(id: string, by: string, attrs: ContainerAttrs, mayCreate: boolean): Promise<OpenResult>;
  setAttrs(id: string, attrs: ContainerAttrs): Promise<void>;
  addAgent(id: string, agent: string, fromSeq: number): Promise<boolean>;
  addUsers(id: string, userIds: string[]): Promise<string[]>;
  close(id: string): Promise<boolean>;
  agentContainers(agent: string, limit: number): Promise<{ id: string; conv: string; room?: string }[]>;
  account(clientType: string, account: string): Promise<RoomsAccountRow | undefined>;
  putAccount(a: { clientType: string; account: string; userId: string; passwordHash: string }): Promise<RoomsAccountRow>;
  deleteAccount(clientType: string, account: string): Promise<boolean>;
  autoReply(code: string): Promise<AutoReplyRow | undefined>;
  autoReplies(): Promise<AutoReplyRow[]>;
  putAutoReply(r: { code: string; content: string; name?: string; icon?: string }): Promise<AutoReplyRow>;
  deleteAutoReply(code: string): Promise<boolean>;
}

/** Registered opaque login tokens, by hash. (store/app-tokens.ts) */
export interface AppTokens {
  put(hash: string, userId: string, expiresAt: Date): Promise<boolean>;
  userOf(hash: string): Promise<{ userId: string; expiresAt: Date } | undefined>;
}

/** Who is online, across the cluster. (presence/presence.ts) */
export interface PresenceView {
  onlineOf(ids: string[]): Promise<Set<string>>;
  /** Connections in a topic (room or container) across the cluster. */
  roomCount(topic: string): Promise<number>;
}

/** Where core events go out: to their recipients' connections (hub/hub.ts). `skip` is the sending session. */
export interface EventSink {
  dispatch(ev: CoreEvent, skip?: string): void;
  /** To every connection subscribed to `topic` (rooms, containers), across the cluster. */
  publish(topic: string, ev: CoreEvent): void;
}

/** Messages found by id, and a user's 1:1 messages page by page (service accounts' inboxes). (store/message-index.ts) */
export interface MessageIndex {
  byIds(ids: bigint[]): Promise<Message[]>;
  /**
   * The 1:1 messages `user` received (`sent` false) or sent, newest first, in all its direct conversations or in
   * `conv` only; with their total.
   */
  directPage(user: string, q: { sent: boolean; conv?: string; offset: number; limit: number }): Promise<{ total: number; msgs: Message[] }>;
}
