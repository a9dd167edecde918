// Online and offline notices: when a user's first connection anywhere in the cluster opens, or its last one
// closes (the cluster presence decides both, presence/), the members of each of its groups are told with one
// `presence` event per group. So one notice per user, group and login, however many connections the user
// opens, and only to groups the user is in. Groups here are `g:<id>` conversations; the rooms protocol's rooms
// (`g:rooms:`) have their own in/out notices and are left out. Each protocol decides how to show the event
// (J-IM: commands 9 and 10) or ignores it.
import { isRoomsConv } from "./conv-ids.ts";
import type { Memberships, Users } from "./ports.ts";
import type { CoreEvent } from "./types.ts";

export type PresenceChange = "online" | "offline";

export interface PresenceNoticesDeps {
  memberships: Pick<Memberships, "conversationsWithMembers">;
  users: Pick<Users, "getUser">;
  emit: (ev: CoreEvent) => void;
  log: (msg: string) => void;
}

export class PresenceNotices {
  /** notices being looked up (a draining node waits for them before it closes the store) */
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly d: PresenceNoticesDeps) {}

  /** The user's cluster-wide status changed: one event per group of the user, to that group's members. */
  changed(userId: string, change: PresenceChange): Promise<void> {
    const p = this.notify(userId, change).finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  /** Resolves once the notices under way are out. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private async notify(userId: string, change: PresenceChange): Promise<void> {
    try {
      // One statement for the groups and their members, one for the user's name.
      const groups = (await this.d.memberships.conversationsWithMembers(userId, "group")).filter((g) => !isRoomsConv(g.conv));
      if (!groups.length) return;
      const nick = (await this.d.users.getUser(userId))?.nick ?? "";
      for (const g of groups) this.d.emit({ type: "presence", conv: g.conv, user: { id: userId, nick }, change, to: g.members });
    } catch (e) {
      // A notice is a courtesy: a store away costs the notice, never the connection.
      this.d.log(`presence notice ${change} of ${userId}: ${(e as Error).message}`);
    }
  }
}
