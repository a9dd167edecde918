// The services one node runs, built in server.ts and handed to the transport, HTTP API and dialects.
import type { Bus } from "./bus/bus.ts";
import type { Config } from "./config.ts";
import type { Chat } from "./core/chat.ts";
import type { Contacts } from "./core/contacts.ts";
import type { Containers } from "./core/containers.ts";
import type { Logins } from "./core/logins.ts";
import type { SessionLimits } from "./core/limits.ts";
import type { Messaging } from "./core/send.ts";
import type { Desk } from "./core/desk.ts";
import type { Groups } from "./core/groups.ts";
import type { Live } from "./core/live.ts";
import type { Livepush } from "./core/livepush.ts";
import type { Memberships } from "./core/ports.ts";
import type { Social } from "./core/social.ts";
import type { MessageRefs } from "./core/message-refs.ts";
import type { ServiceAccounts } from "./core/service-accounts.ts";
import type { Recalls } from "./core/recall.ts";
import type { TokenService } from "./core/tokens.ts";
import type { Hub } from "./hub/hub.ts";
import type { Presence } from "./presence/presence.ts";
import type { Store } from "./store/store.ts";

export interface App {
  cfg: Config;
  store: Store;
  storeDriver: "postgres" | "pglite";
  bus: Bus;
  presence: Presence;
  hub: Hub;
  chat: Chat;
  /** Why writes fail for the store being unreachable (the writer's last error), cleared by the next commit. */
  writesFailing(): string | undefined;
  tokens: TokenService;
  /** Token (JWT or registered opaque token) and password logins. */
  logins: Logins;
  /** The one send command (direct, group, desk container) of every protocol and the server API. */
  messaging: Messaging;
  /** The per-connection rate limit every protocol charges its sends and reads to. */
  limits: SessionLimits;
  contacts: Contacts;
  groups: Groups;
  memberships: Memberships;
  desk: Desk;
  /** Rooms protocol: its rooms, customer-service containers, accounts and auto-replies. */
  containers: Containers;
  social: Social;
  recalls: Recalls;
  /** Live rooms: join/leave, droppable and must-deliver messages, slow mode, mutes. */
  live: Live;
  /** Receipts given as message ids (the social API). */
  messageRefs: MessageRefs;
  /** Service accounts: users writing to them, back-office pushes from them, their inbox and outbox. */
  serviceAccounts: ServiceAccounts;
  /** Livepush protocol rules: its messages, server-driven pushes and hosting (core/livepush.ts). */
  livepush: Livepush;
  log: Logger;
  startedAt: number;
  /** true once SIGTERM (or stop()) began: new connections are refused. */
  draining: boolean;
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function makeLogger(level: Config["logLevel"], nodeId: string): Logger {
  const order = { debug: 0, info: 1, warn: 2, error: 3 };
  const at = (l: keyof typeof order) => (msg: string) => {
    if (order[l] >= order[level]) console.error(`${new Date().toISOString()} ${l} [${nodeId}] ${msg}`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
