// One schema for Postgres (postgres.js) and the embedded PGlite store. Migrations in drizzle/ are
// generated from this file by drizzle-kit (`bun run db:generate`) and applied at start by both drivers.
import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const users = pgTable("users", {
  id: text("id").primaryKey(),
  nick: text("nick").notNull().default(""),
  avatar: text("avatar").notNull().default(""),
  /** user | host | agent | advisor | visitor | robot | service */
  role: text("role").notNull().default("user"),
  sex: integer("sex").notNull().default(0),
  vip: integer("vip").notNull().default(0),
  attributes: jsonb("attributes").$type<Record<string, unknown>>().notNull().default({}),
  /** Password hash (Bun.password, argon2id) for protocols that log in with a name and password. */
  passwordHash: text("password_hash"),
  disabled: boolean("disabled").notNull().default(false),
  createdAt: ts("created_at").notNull().defaultNow(),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

export const conversations = pgTable(
  "conversations",
  {
    /** d:<a>:<b> (a < b) · g:<id> · r:<id> · c:<id> */
    id: text("id").primaryKey(),
    /** direct | group | room | container */
    kind: text("kind").notNull(),
    /** group kind: user | interest | neighbourhood | service; null for the others */
    subtype: text("subtype"),
    name: text("name").notNull().default(""),
    avatar: text("avatar").notNull().default(""),
    ownerId: text("owner_id"),
    attributes: jsonb("attributes").$type<Record<string, unknown>>().notNull().default({}),
    /** Highest committed seq; seqs are 1..lastSeq without gaps. */
    lastSeq: bigint("last_seq", { mode: "number" }).notNull().default(0),
    /** Time of the message `last_seq` (message times never go back within a conversation, see store/append.ts). */
    lastMsgAt: ts("last_msg_at"),
    /**
     * The partition mark (docs/storage.md): the first message of the conversation in the newest partition
     * period it wrote in, and its time. Every message with seq >= mark_seq has created_at >= mark_at, so a
     * read of seqs above the mark is pruned to the partitions from mark_at on. -infinity: no mark yet.
     */
    markSeq: bigint("mark_seq", { mode: "number" }).notNull().default(0),
    markAt: ts("mark_at").notNull().default(sql`'-infinity'`),
    slowModeSec: integer("slow_mode_sec").notNull().default(0),
    closed: boolean("closed").notNull().default(false),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("conversations_kind_idx").on(t.kind)],
);

export const members = pgTable(
  "members",
  {
    convId: text("conv_id").notNull(),
    userId: text("user_id").notNull(),
    /** owner | admin | member | agent */
    role: text("role").notNull().default("member"),
    mutedUntil: ts("muted_until"),
    deliveredSeq: bigint("delivered_seq", { mode: "number" }).notNull().default(0),
    readSeq: bigint("read_seq", { mode: "number" }).notNull().default(0),
    /** Seq of the member's own latest message: "awaiting my reply" = someone wrote after it. */
    lastSentSeq: bigint("last_sent_seq", { mode: "number" }).notNull().default(0),
    joinedAt: ts("joined_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.convId, t.userId] }), index("members_user_idx").on(t.userId)],
);

// Partitioned by range of created_at (drizzle/0003_partition_messages.sql, store/partitions.ts): drizzle-kit
// cannot express partitioning, so that migration is written by hand. Unique indexes of a partitioned table must
// hold its partition key, so the primary key is (id, created_at) and (conv_id, seq) and the client-id index are
// plain indexes: their uniqueness rests on the conversation row lock every append takes (store/append.ts).
export const messages = pgTable(
  "messages",
  {
    /** Time-sortable server id (see core/ids.ts). */
    id: bigint("id", { mode: "bigint" }).notNull(),
    convId: text("conv_id").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    senderId: text("sender_id").notNull(),
    kind: text("kind").notNull().default("text"),
    body: jsonb("body").$type<unknown>().notNull(),
    clientMsgId: text("client_msg_id"),
    createdAt: ts("created_at").notNull(),
    recalledAt: ts("recalled_at"),
  },
  (t) => [
    primaryKey({ name: "messages_pkey", columns: [t.id, t.createdAt] }),
    index("messages_conv_seq_idx").on(t.convId, t.seq),
    // A client id names a retry within one conversation: the same id in another conversation is another
    // message. Sender and client id lead, so a recall by client id (store/recall.ts) uses this index too.
    index("messages_sender_cmid_conv_idx").on(t.senderId, t.clientMsgId, t.convId).where(sql`client_msg_id is not null`),
    index("messages_conv_time_idx").on(t.convId, t.createdAt),
  ],
);

export const friendRequests = pgTable(
  "friend_requests",
  {
    fromId: text("from_id").notNull(),
    toId: text("to_id").notNull(),
    /** pending | accepted | refused */
    status: text("status").notNull().default("pending"),
    note: text("note").notNull().default(""),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.fromId, t.toId] }), index("friend_requests_to_idx").on(t.toId)],
);

export const friendships = pgTable(
  "friendships",
  {
    userId: text("user_id").notNull(),
    friendId: text("friend_id").notNull(),
    remark: text("remark").notNull().default(""),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.friendId] })],
);

export const blocks = pgTable(
  "blocks",
  {
    userId: text("user_id").notNull(),
    blockedId: text("blocked_id").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.blockedId] })],
);

export const follows = pgTable(
  "follows",
  {
    userId: text("user_id").notNull(),
    followeeId: text("followee_id").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.followeeId] }), index("follows_followee_idx").on(t.followeeId)],
);

// ---- Login tokens handed out by app backends (J-IM `initUser`): opaque strings, stored as hashes ----
export const appTokens = pgTable(
  "app_tokens",
  {
    /** sha256 (hex) of the token: a leaked table does not leak usable tokens. */
    hash: text("hash").primaryKey(),
    userId: text("user_id").notNull(),
    expiresAt: ts("expires_at").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("app_tokens_user_idx").on(t.userId)],
);

// ---- Live rooms: timed mutes. Room viewers are not stored members (a room is large and its audience
// ephemeral), so a room's mutes live here instead of in members.muted_until. ----
export const roomMutes = pgTable(
  "room_mutes",
  {
    convId: text("conv_id").notNull(),
    userId: text("user_id").notNull(),
    until: ts("until").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.convId, t.userId] })],
);

// ---- Customer-service desk (seed 002): agent groups and agents. Guest conversations are `container`
// conversations (subtype `desk`, id `c:desk:<guest>`) whose owner_id is the serving agent. ----
export const deskGroups = pgTable("desk_groups", {
  id: text("id").primaryKey(),
  name: text("name").notNull().default(""),
  disabled: boolean("disabled").notNull().default(false),
  createdAt: ts("created_at").notNull().defaultNow(),
});

export const deskAgents = pgTable(
  "desk_agents",
  {
    /** the agent's user id */
    userId: text("user_id").primaryKey(),
    groupId: text("group_id").notNull(),
    /** most guests served at once */
    capacity: integer("capacity").notNull().default(10),
    disabled: boolean("disabled").notNull().default(false),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("desk_agents_group_idx").on(t.groupId)],
);

// ---- Rooms protocol (seed 004). Its rooms are group conversations `g:rooms:<room>` (subtype `rooms`), its
// containers `container` conversations `c:rooms:<id>` (subtype `rooms`); these are its login accounts (one
// namespace per client project, `clientType`) and its auto-replies. ----
export const roomsAccounts = pgTable(
  "rooms_accounts",
  {
    clientType: text("client_type").notNull(),
    account: text("account").notNull(),
    userId: text("user_id").notNull(),
    /** argon2id hash of the password's MD5 hex digest in lower case: clients send the digest */
    passwordHash: text("password_hash").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.clientType, t.account] }), index("rooms_accounts_user_idx").on(t.userId)],
);

export const autoReplies = pgTable("auto_replies", {
  /** what a client sends as `messageContent` of an `autoReturn` */
  code: text("code").primaryKey(),
  content: text("content").notNull(),
  /** shown as the reply's nickName and userIcon; empty = the serving agent's profile */
  name: text("name").notNull().default(""),
  icon: text("icon").notNull().default(""),
  updatedAt: ts("updated_at").notNull().defaultNow(),
});

// ---- Webhook outbox (core/webhooks.ts, docs/webhooks.md): events accepted for delivery, shared by the nodes.
// A node claims due rows by moving next_attempt_at past its request's time (a lease: a node that dies with
// claimed rows leaves them due again once the lease runs out), deletes a row once delivered, and moves
// next_attempt_at forward by the backoff after a failure. ----
export const webhookOutbox = pgTable(
  "webhook_outbox",
  {
    /** the event's id (receivers dedupe by it) */
    id: text("id").primaryKey(),
    kind: text("kind").notNull(),
    /** the event's JSON, signed as is on every attempt */
    body: text("body").notNull(),
    /** attempts claimed so far */
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: ts("next_attempt_at").notNull().defaultNow(),
    /** given up (dropped and counted) after this */
    expiresAt: ts("expires_at").notNull(),
    createdAt: ts("created_at").notNull().defaultNow(),
  },
  (t) => [index("webhook_outbox_due_idx").on(t.nextAttemptAt)],
);
