// Every Redis key and pub/sub channel name is built here, so the layout is visible in one place.
// All of them start with REDIS_PREFIX (default "chat:"), so several deployments can share one Redis.
//
// On a Redis Cluster (`cluster` true) names carry hash tags (the part in braces is all Redis hashes to pick a
// slot). Every state key (presence, desk routing, login attempts, console) is tagged with the prefix itself,
// `chat:{chat:}p:nodes`: they all live in one slot, so every script (presence, desk routing, login limits) runs
// on one shard over keys it may all touch. Each channel is tagged with its own user or topic id,
// `chat:u:{alice}`: CRC16 of distinct ids spreads channels evenly over the slots, hence over any even split of
// the slots between shards (measured in docs/deploy.md, "Redis"; test/unit/keys.test.ts). A plain Redis keeps
// the untagged names.

export class Keys {
  /** the start of every state key: the prefix, then on a cluster the hash tag of the prefix */
  private readonly s: string;
  private readonly uHead: string;
  private readonly tHead: string;

  constructor(
    readonly prefix = "chat:",
    readonly cluster = false,
  ) {
    this.s = cluster ? `${prefix}{${prefix}}` : prefix;
    this.uHead = `${prefix}u:${cluster ? "{" : ""}`;
    this.tHead = `${prefix}t:${cluster ? "{" : ""}`;
  }

  /** The hash-tagged form of an id, on a cluster (its own slot). */
  private tag(id: string): string {
    return this.cluster ? `{${id}}` : id;
  }

  // ---- pub/sub channels ----
  /** Events for one user's connections, subscribed by the nodes holding one of them. */
  userChannel(userId: string): string {
    return `${this.prefix}u:${this.tag(userId)}`;
  }
  /** Events for one room or group topic, subscribed by the nodes holding a member. */
  topicChannel(topic: string): string {
    return `${this.prefix}t:${this.tag(topic)}`;
  }

  /** The user or topic a channel of userChannel or topicChannel is for (undefined for any other channel). */
  channelId(channel: string): { user: string } | { topic: string } | undefined {
    const id = (head: string) => {
      if (!channel.startsWith(head) || (this.cluster && !channel.endsWith("}"))) return undefined;
      return channel.slice(head.length, this.cluster ? -1 : undefined);
    };
    const user = id(this.uHead);
    if (user !== undefined) return { user };
    const topic = id(this.tHead);
    return topic === undefined ? undefined : { topic };
  }

  // ---- presence (presence/redis.ts) ----
  /** ZSET node id → the Redis-clock millisecond its lease ends; a node past it is dead. */
  nodes(): string {
    return `${this.s}p:nodes`;
  }
  /** SET of the node ids a user is connected to. */
  userNodes(userId: string): string {
    return `${this.s}p:on:${userId}`;
  }
  /** HASH user id → role, of the users connected to one node (what to clean when it dies). */
  nodeUsers(nodeId: string): string {
    return `${this.s}p:nu:${nodeId}`;
  }
  /** SET of the users of a role online anywhere (sampled with SRANDMEMBER). */
  role(role: string): string {
    return `${this.s}p:role:${role}`;
  }
  /** HASH node id → that node's member count of a room. */
  room(room: string): string {
    return `${this.s}p:room:${room}`;
  }
  /** SET of the rooms one node holds members of. */
  nodeRooms(nodeId: string): string {
    return `${this.s}p:nr:${nodeId}`;
  }
  /** STRING: the node id holding id slot `slot` (0..1023), the node bits of its message ids. */
  idSlot(slot: number): string {
    return `${this.s}p:slot:${slot}`;
  }
  /** STRING: a short lock taken by the node that cleans up after a dead one. */
  sweepLock(nodeId: string): string {
    return `${this.s}p:sweep:${nodeId}`;
  }
  // ---- password-login attempt limits (presence/login-redis.ts) ----
  /** STRING counter of one login-attempt key (core/ratelimit.ts LoginThrottle), expiring with its window. */
  loginAttempts(key: string): string {
    return `${this.s}l:${key}`;
  }
  /** Pub/sub channel every node subscribes to: a user was changed (disabled, role), drop what is cached of it. */
  usersChannel(): string {
    return `${this.prefix}x:users`;
  }
  // ---- desk routing (desk/redis.ts); liveness comes from the presence leases in nodes() ----
  /** HASH of an online agent: group, cap (capacity), susp ("1" suspended). */
  deskAgent(agentId: string): string {
    return `${this.s}d:a:${agentId}`;
  }
  /** HASH node id → that node's session count of an agent. */
  deskAgentNodes(agentId: string): string {
    return `${this.s}d:an:${agentId}`;
  }
  /** SET of the online guests an agent serves now (its load). */
  deskLoad(agentId: string): string {
    return `${this.s}d:l:${agentId}`;
  }
  /** HASH of an online guest: group, agent (serving it now), last (its last agent, for stickiness). */
  deskGuest(guestId: string): string {
    return `${this.s}d:g:${guestId}`;
  }
  /** HASH node id → that node's session count of a guest. */
  deskGuestNodes(guestId: string): string {
    return `${this.s}d:gn:${guestId}`;
  }
  /** SET of the agents of a group with an online record (candidates of a routing pick). */
  deskGroupAgents(groupId: string): string {
    return `${this.s}d:on:${groupId}`;
  }
  /** ZSET agent → load, of a group's agents that are not suspended and below capacity (the pick is its head). */
  deskFree(groupId: string): string {
    return `${this.s}d:f:${groupId}`;
  }
  /** LIST: a group's waiting guests, first first. */
  deskQueue(groupId: string): string {
    return `${this.s}d:q:${groupId}`;
  }
  /** SET of the agents with a session on one node (what to clean when it dies). */
  deskNodeAgents(nodeId: string): string {
    return `${this.s}d:na:${nodeId}`;
  }
  /** SET of the guests with a session on one node. */
  deskNodeGuests(nodeId: string): string {
    return `${this.s}d:ng:${nodeId}`;
  }
  /** SET of the nodes holding desk entries (a node missing from it has had its entries swept or lost). */
  deskNodes(): string {
    return `${this.s}d:nodes`;
  }
  /** STRING: the last routing version handed out (microseconds on Redis's clock, strictly increasing). */
  deskVersion(): string {
    return `${this.s}d:ver`;
  }
  // ---- operator's console (console/stats.ts) ----
  /** STRING (JSON, expiring): a node's latest console snapshot. */
  consoleSnapshot(nodeId: string): string {
    return `${this.s}console:n:${nodeId}`;
  }
  /** LIST (JSON, the last 600): a node's per-second console samples. */
  consoleHistory(nodeId: string): string {
    return `${this.s}console:h:${nodeId}`;
  }
  /** ZSET user id → the Redis-clock ms until which a console wants to know its connections per protocol. */
  consoleWants(): string {
    return `${this.s}console:wants`;
  }
  /** HASH node id → JSON of that node's connections of one wanted user per protocol (expiring). */
  consoleUser(userId: string): string {
    return `${this.s}console:u:${userId}`;
  }
}
