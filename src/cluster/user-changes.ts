// A user's record changed on one node (disabled, deleted, role): every node must stop trusting what it cached of
// the user, and a disabled user's connections must end everywhere. The core reports the change (Chat's
// `userChanged`); this carries it over the bus on one channel every node subscribes to (`<prefix>x:users`), in the
// hub's envelope layout (origin node header, then msgpack), and applies it on each node, this one included.
import type { Bus } from "../bus/bus.ts";
import type { Keys } from "../bus/keys.ts";
import type { Chat } from "../core/chat.ts";
import { CloseCodes } from "../core/errors.ts";
import { envelope, fromSelf, opened, originHeader } from "../hub/envelope.ts";
import type { Hub } from "../hub/hub.ts";

export class UserChanges {
  private readonly channel: string;
  private readonly origin: Uint8Array;

  constructor(
    private readonly bus: Bus,
    keys: Keys,
    private readonly chat: Pick<Chat, "dropUser" | "activeUser">,
    private readonly hub: Hub,
    private readonly log: (msg: string) => void,
  ) {
    this.channel = keys.usersChannel();
    this.origin = originHeader(hub.nodeId);
  }

  /** Listens to the other nodes' changes (resolves once subscribed). */
  async start(): Promise<void> {
    if (!this.bus.hasPeers) return;
    this.bus.onMessage((channel, payload) => {
      if (channel !== this.channel || fromSelf(payload, this.origin)) return;
      const user = opened<{ user?: unknown }>(payload)?.user;
      if (typeof user === "string") void this.apply(user);
    });
    await this.bus.subscribe(this.channel);
  }

  /** A change made on this node: applied here, and published to every other node. */
  changed(userId: string): void {
    void this.apply(userId);
    if (!this.bus.hasPeers) return;
    this.bus.publish(this.channel, envelope(this.origin, { user: userId }));
  }

  /** Forgets the cached user; a user no longer active loses its connections on this node. */
  private async apply(userId: string): Promise<void> {
    const chat = this.chat;
    chat.dropUser(userId);
    const sessions = this.hub.sessionsOf(userId);
    if (!sessions?.size) return;
    try {
      if (await chat.activeUser(userId)) return;
    } catch (e) {
      return this.log(`user change ${userId}: ${(e as Error).message}`);
    }
    for (const s of [...sessions]) if (!s.closed) s.ws.close(CloseCodes.authFailed, "user disabled");
  }
}
