// The records the core reads and writes through its ports (ports.ts). The store maps its rows to these.
import type { Message } from "./types.ts";

export interface UserRow {
  id: string;
  nick: string;
  avatar: string;
  /** user | host | agent | advisor | visitor | robot | service */
  role: string;
  sex: number;
  vip: number;
  attributes: Record<string, unknown>;
  /** Password hash (Bun.password, argon2id) for protocols that log in with a name and password. */
  passwordHash: string | null;
  disabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface ConversationRow {
  /** built and parsed in conv-ids.ts */
  id: string;
  /** direct | group | room | container */
  kind: string;
  /** group kind: user | interest | neighbourhood | service; containers: desk | rooms; null for the others */
  subtype: string | null;
  name: string;
  avatar: string;
  ownerId: string | null;
  attributes: Record<string, unknown>;
  /** Highest committed seq; seqs are 1..lastSeq without gaps. */
  lastSeq: number;
  lastMsgAt: Date | null;
  slowModeSec: number;
  closed: boolean;
  createdAt: Date;
}

/** A conversation to create (ConversationStore.createConversation). */
export type NewConversation = Pick<ConversationRow, "id" | "kind"> & Partial<Omit<ConversationRow, "id" | "kind">>;

export interface MemberRow {
  convId: string;
  userId: string;
  /** owner | admin | member | agent */
  role: string;
  mutedUntil: Date | null;
  deliveredSeq: number;
  readSeq: number;
  /** Seq of the member's own latest message: "awaiting my reply" = someone wrote after it. */
  lastSentSeq: number;
  joinedAt: Date;
}

export interface DeskGroupRow {
  id: string;
  name: string;
  disabled: boolean;
  createdAt: Date;
}

export interface DeskAgentRow {
  userId: string;
  groupId: string;
  capacity: number;
  disabled: boolean;
  createdAt: Date;
}

/** A rooms-protocol login account (one namespace per client project, `clientType`). */
export interface RoomsAccountRow {
  clientType: string;
  account: string;
  userId: string;
  passwordHash: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A rooms-protocol auto-reply. */
export interface AutoReplyRow {
  code: string;
  content: string;
  name: string;
  icon: string;
  updatedAt: Date;
}

export interface UserInput {
  id: string;
  nick?: string;
  avatar?: string;
  role?: string;
  sex?: number;
  vip?: number;
  attributes?: Record<string, unknown>;
  passwordHash?: string | null;
  disabled?: boolean;
}

/** One message to append. `members` creates the conversation and its members if missing (direct chats). */
export interface AppendItem {
  id: bigint;
  conv: string;
  sender: string;
  kind: string;
  body: unknown;
  cmid?: string | null;
  at: Date;
  create?: { kind: string; members: string[] };
  /** A 1:1 recipient: the message is refused, inside the same transaction, if it blocked the sender. */
  recipient?: string;
}

/**
 * The stored message, and whether it had been stored before under the same (sender, client msg id);
 * or `refused` (nothing stored) when the recipient blocked the sender.
 */
export type AppendResult = { msg: Message; dup: boolean; refused?: undefined } | { refused: "blocked"; msg?: undefined; dup?: undefined };

export interface HistoryQuery {
  beforeSeq?: number;
  afterSeq?: number;
  from?: Date;
  to?: Date;
  limit: number;
  /** newest first when true */
  desc?: boolean;
}

export interface InboxRow {
  conv: string;
  kind: string;
  subtype: string | null;
  /** the group's name; for a direct conversation the peer's nick */
  name: string;
  avatar: string;
  /** the other user of a direct conversation */
  peer?: { id: string; nick: string; avatar: string; attributes: Record<string, unknown> };
  role: string;
  mutedUntil: number | null;
  lastSeq: number;
  /** time of the last message, ms: "last contact" */
  lastMsgAt: number | null;
  deliveredSeq: number;
  readSeq: number;
  /** others' messages above the read cursor, recalled ones excluded */
  unread: number;
  /** someone else wrote after the user's own latest message */
  awaiting: boolean;
  last?: Message;
}

export interface InboxQuery {
  kind?: string;
  /** only conversations with a message at or after this time (ms) */
  since?: number;
  /** only conversations whose last message is older than this (ms): the next page */
  before?: number;
  /** only conversations awaiting the user's reply */
  awaiting?: boolean;
  /** include conversations without any message yet */
  empty?: boolean;
  limit: number;
}

export interface MemberInfo {
  user: string;
  nick: string;
  role: string;
  /** ms since epoch, when a timed mute is in force */
  mutedUntil: number | null;
  readSeq: number;
  deliveredSeq: number;
}

export interface ReceiptRow {
  seq: number;
  sender: string;
  delivered: number;
  read: number;
}

export interface RoomRow {
  conv: string;
  name: string;
  ownerId: string | null;
  slowModeSec: number;
  lastSeq: number;
  closed: boolean;
  createdAt: Date;
}

export interface RequestRow {
  from: string;
  to: string;
  status: string;
  note: string;
  nick: string;
  updatedAt: number;
}

export interface FriendRow {
  user: string;
  nick: string;
  avatar: string;
  remark: string;
  since: number;
}

export interface UserRef {
  user: string;
  nick: string;
  avatar: string;
  since: number;
}

/** What a container conversation keeps in its attributes. */
export interface ContainerAttrs {
  /** the agent asked to serve it (createContainer's acceptId) */
  accept?: string;
  /** the business key */
  target?: string;
  /** the roomName of the connection that opened it */
  room?: string;
  /** seq of the latest createContainer: an agent joining starts reading after it */
  openedSeq?: number;
}

export interface ContainerRow {
  id: string;
  conv: string;
  closed: boolean;
  attrs: ContainerAttrs;
  lastSeq: number;
}

export type OpenResult = "created" | "reopened" | "open" | "forbidden";
