// Service accounts (公众号): a service account is a user whose role is `service`. Users write to it 1:1 (its
// inbox); the operator's back office (the server API key) pushes messages from it to users, each into the 1:1
// conversation of the account with that user (created by the first message, both members); and reads what it
// received or sent, page by page. Its broadcasts to subscribers are posts into a group of kind `service`
// (core/groups.ts: only the owner and admins post). The blacklist applies as to any 1:1 message: a user who
// blocked the account gets nothing from it.
import type { SendInput } from "./chat.ts";
import type { Chat } from "./chat.ts";
import { directConvId } from "./conv-ids.ts";
import { CoreError, fail } from "./errors.ts";
import { USER_ID_RE } from "./ids.ts";
import type { MessageIndex } from "./ports.ts";
import type { Messaging } from "./send.ts";
import type { Ack, Message } from "./types.ts";

/** Users one push from a service account reaches at most. */
export const MAX_SERVICE_PUSH_USERS = 1000;
export const SERVICE_ROLE = "service";

export interface ServiceDeps {
  index: Pick<MessageIndex, "directPage">;
  chat: Pick<Chat, "activeUser">;
  messaging: Pick<Messaging, "send">;
}

export class ServiceAccounts {
  constructor(private readonly d: ServiceDeps) {}

  /** Refused `not_found` unless `id` is an active service account. */
  async account(id: string): Promise<void> {
    if (typeof id !== "string" || !USER_ID_RE.test(id)) fail("bad_request", "a service account id is a user id");
    if ((await this.d.chat.activeUser(id))?.role !== SERVICE_ROLE) fail("not_found", `no service account ${id}`);
  }

  /** A user writes to a service account (its inbox). */
  async write(from: string, service: string, input: SendInput, session?: string): Promise<Ack> {
    await this.account(service);
    return this.d.messaging.send(from, { to: service }, input, { session }) as Promise<Ack>;
  }

  /**
   * The back office pushes one message from `service` to each of `users` (1:1). Every user must exist (else
   * nothing is sent); a user who blocked the account is skipped: its entry is the `blocked` error, the others
   * their acks, in the order given.
   */
  async push(service: string, users: string[], input: SendInput): Promise<(Ack | CoreError)[]> {
    await this.account(service);
    if (!Array.isArray(users) || !users.length || users.length > MAX_SERVICE_PUSH_USERS) fail("bad_request", `give 1-${MAX_SERVICE_PUSH_USERS} users`);
    for (const u of users) {
      if (typeof u !== "string" || !USER_ID_RE.test(u)) fail("bad_request", "a user id is 1-128 characters of [A-Za-z0-9_.@-]");
      if (u === service) fail("bad_request", "a service account does not write to itself");
    }
    const found = await Promise.all(users.map((u) => this.d.chat.activeUser(u)));
    const missing = users.find((_, i) => !found[i]);
    if (missing !== undefined) fail("not_found", `no user ${missing}`);
    // All at once: the writer commits them in shared batches.
    return Promise.all(
      users.map((u) =>
        (this.d.messaging.send(service, { to: u }, input, { trusted: true }) as Promise<Ack>).catch((e) => {
          if (e instanceof CoreError && e.name === "blocked") return e;
          throw e;
        }),
      ),
    );
  }

  /** What the account received (`sent` false) or sent, newest first, with one user or with all. */
  async page(service: string, q: { sent: boolean; user?: string; page: number; size: number }): Promise<{ total: number; msgs: Message[] }> {
    await this.account(service);
    if (!Number.isInteger(q.page) || q.page < 1 || q.page > 1_000_000) fail("bad_request", "`page` is 1 or more");
    if (!Number.isInteger(q.size) || q.size < 1 || q.size > 500) fail("bad_request", "`page_size` is 1-500");
    if (q.user !== undefined && (typeof q.user !== "string" || !USER_ID_RE.test(q.user))) fail("bad_request", "`user_id` must be a user id");
    const conv = q.user === undefined ? undefined : directConvId(service, q.user);
    return this.d.index.directPage(service, { sent: q.sent, conv, offset: (q.page - 1) * q.size, limit: q.size });
  }
}
