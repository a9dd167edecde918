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
  memberships: Pick<Memberships, "conversationsWithMembers">;
  users: Pick<Users, "getUser">;
  /** Who is online (cluster-wide): a notice goes only to members online now (the others load the list anew). */
  presence: Pick<PresenceView, "onlineOf">;
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
      // One statement for the groups and their members, one presence call for all of them, one for the user's name.
      const groups = (await this.d.memberships.conversationsWithMembers(userId, "group")).filter((g) => !isRoomsConv(g.conv));
      if (!groups.length) return;
      const everyone = new Set<string>();
      for (const g of groups) for (const u of g.members) if (u !== userId) everyone.add(u);
      // A member offline now reads the list anew when it logs in: only those online are sent the notice.
      const online = everyone.size ? await this.d.presence.onlineOf([...everyone]) : new Set<string>();
      // The user itself too, when online (its own connections see themselves come in, as the original sends).
      if (change === "online") online.add(userId);
      if (!online.size) return;
      const nick = (await this.d.users.getUser(userId))?.nick ?? "";
      for (const g of groups) {
        const to = g.members.filter((u) => online.has(u));
        if (to.length) this.d.emit({ type: "presence", conv: g.conv, user: { id: userId, nick }, change, to });
      }
    } catch (e) {
      // A notice is a courtesy: a store away costs the notice, never the connection.
      this.d.log(`presence notice ${change} of ${userId}: ${(e as Error).message}`);
    }
  }
}
