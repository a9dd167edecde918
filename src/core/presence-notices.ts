// Online and offline notices: when a user's first connection anywhere in the cluster opens, or its last one
// closes (the cluster presence decides both, presence/), the members of each of its groups are told with one
// `presence` event per group. So one notice per user, group and login, however many connections the user
// opens, and only to groups the user is in. Groups here are `g:<id>` conversations; the rooms protocol's rooms
// (`g:rooms:`) have their own in/out notices and are left out. Each protocol decides how to show the event
// (J-IM: commands 9 and 10) or ignores it.
import { isRoomsConv } from "./conv-ids.ts";
import type { Memberships, PresenceView, Users } from "./ports.ts";
import type { CoreEvent } from "./types.ts";

export type PresenceChange = "online" | "offline";

export interface PresenceNoticesDeps {
  memberships: Pick<Memberships, "conversationsWithMembersOf">;
  users: Pick<Users, "getUsers">;
  /** Who is online (cluster-wide): a notice goes only to members online now (the others load the list anew). */
  presence: Pick<PresenceView, "onlineOf">;
  emit: (ev: CoreEvent) => void;
  log: (msg: string) => void;
}

/** Status changes looked up in one go at most (a reconnect storm is taken in slices of this many). */
export const NOTICE_BATCH = 500;

interface Change {
  userId: string;
  change: PresenceChange;
  done: () => void;
}

/**
 * The changes are looked up in batches, one at a time: every change that comes in while a batch is being looked
 * up goes in the next one, so a quiet node looks each up at once and a node taking many logins (a reconnect
 * storm, a node's connections coming back after a restart) asks the store once per batch instead of once per
 * login and logout. Changes are told in the order they came, each user's too.
 */
export class PresenceNotices {
  private queue: Change[] = [];
  private draining?: Promise<void>;

  constructor(private readonly d: PresenceNoticesDeps) {}

  /** The user's cluster-wide status changed: one event per group of the user, to that group's members. Resolves once told. */
  changed(userId: string, change: PresenceChange): Promise<void> {
    return new Promise((done) => {
      this.queue.push({ userId, change, done });
      this.drain();
    });
  }

  /** Resolves once the notices under way are out. */
  async settled(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private drain(): void {
    this.draining ??= (async () => {
      while (this.queue.length) {
        const batch = this.queue.splice(0, NOTICE_BATCH);
        await this.notify(batch);
        for (const c of batch) c.done();
      }
    })().finally(() => {
      this.draining = undefined;
      // A change queued after the loop saw the queue empty, before this ran.
      if (this.queue.length) this.drain();
    });
  }

  private async notify(batch: Change[]): Promise<void> {
    const users = [...new Set(batch.map((c) => c.userId))];
    try {
      // One statement for all the users' groups and their members, one presence call for all of those members,
      // one for the names of the users with someone to tell.
      const groupsOf = await this.d.memberships.conversationsWithMembersOf(users, "group");
      const told = batch
        .map((c) => ({ c, groups: (groupsOf.get(c.userId) ?? []).filter((g) => !isRoomsConv(g.conv)) }))
        .filter((t) => t.groups.length);
      if (!told.length) return;
      const everyone = new Set<string>();
      for (const { c, groups } of told) for (const g of groups) for (const u of g.members) if (u !== c.userId) everyone.add(u);
      // A member offline now reads the list anew when it logs in: only those online are sent the notice.
      const online = everyone.size ? await this.d.presence.onlineOf([...everyone]) : new Set<string>();
      // The user itself too, when online (its own connections see themselves come in, as the original sends).
      const notices = told
        .flatMap(({ c, groups }) => groups.map((g) => ({ c, conv: g.conv, to: g.members.filter((u) => (u === c.userId ? c.change === "online" : online.has(u))) })))
        .filter((n) => n.to.length);
      if (!notices.length) return;
      const nicks = new Map((await this.d.users.getUsers([...new Set(notices.map((n) => n.c.userId))])).map((u) => [u.id, u.nick]));
      for (const { c, conv, to } of notices) this.d.emit({ type: "presence", conv, user: { id: c.userId, nick: nicks.get(c.userId) ?? "" }, change: c.change, to });
    } catch (e) {
      // A notice is a courtesy: a store away costs the notices, never the connections.
      this.d.log(`presence notices of ${users.length} user(s) (${users.slice(0, 3).join(", ")}${users.length > 3 ? ", …" : ""}): ${(e as Error).message}`);
    }
  }
}
