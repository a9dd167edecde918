// Every Redis key and pub/sub channel name is built here, so the layout is visible in one place.
// All of them start with REDIS_PREFIX (default "chat:"), so several deployments can share one Redis.

export class Keys {
  constructor(readonly prefix = "chat:") {}

  // ---- pub/sub channels ----
  /** Events for one user's connections, subscribed by the nodes holding one of them. */
  userChannel(userId: string): string {
    return `${this.prefix}u:${userId}`;
  }
  /** Events for one room or group topic, subscribed by the nodes holding a member. */
  topicChannel(topic: string): string {
    return `${this.prefix}t:${topic}`;
  }

  // ---- presence (presence/redis.ts) ----
  /** ZSET node id → the Redis-clock millisecond its lease ends; a node past it is dead. */
  nodes(): string {
    return `${this.prefix}p:nodes`;
  }
  /** SET of the node ids a user is connected to. */
  userNodes(userId: string): string {
    return `${this.prefix}p:on:${userId}`;
  }
  /** HASH user id → role, of the users connected to one node (what to clean when it dies). */
  nodeUsers(nodeId: string): string {
    return `${this.prefix}p:nu:${nodeId}`;
  }
  /** SET of the users of a role online anywhere (sampled with SRANDMEMBER). */
  role(role: string): string {
    return `${this.prefix}p:role:${role}`;
  }
  /** HASH node id → that node's member count of a room. */
  room(room: string): string {
    return `${this.prefix}p:room:${room}`;
  }
  /** SET of the rooms one node holds members of. */
  nodeRooms(nodeId: string): string {
    return `${this.prefix}p:nr:${nodeId}`;
  }
  /** STRING: the node id holding id slot `slot` (0..1023), the node bits of its message ids. */
  idSlot(slot: number): string {
    return `${this.prefix}p:slot:${slot}`;
  }
  /** STRING: a short lock taken by the node that cleans up after a dead one. */
  sweepLock(nodeId: string): string {
    return `${this.prefix}p:sweep:${nodeId}`;
  }
  // ---- password-login attempt limits (presence/login-redis.ts) ----
  /** STRING counter of one login-attempt key (core/ratelimit.ts LoginThrottle), expiring with its window. */
  loginAttempts(key: string): string {
    return `${this.prefix}l:${key}`;
  }
  /** Pub/sub channel every node subscribes to: a user was changed (disabled, role), drop what is cached of it. */
  usersChannel(): string {
    return `${this.prefix}x:users`;
  }
  // ---- desk routing (desk/redis.ts); liveness comes from the presence leases in nodes() ----
  /** HASH of an online agent: group, cap (capacity), susp ("1" suspended). */
  deskAgent(agentId: string): string {
    return `${this.prefix}d:a:${agentId}`;
  }
  /** HASH node id → that node's session count of an agent. */
  deskAgentNodes(agentId: string): string {
    return `${this.prefix}d:an:${agentId}`;
  }
  /** SET of the online guests an agent serves now (its load). */
  deskLoad(agentId: string): string {
    return `${this.prefix}d:l:${agentId}`;
  }
  /** HASH of an online guest: group, agent (serving it now), last (its last agent, for stickiness). */
  deskGuest(guestId: string): string {
    return `${this.prefix}d:g:${guestId}`;
  }
  /** HASH node id → that node's session count of a guest. */
  deskGuestNodes(guestId: string): string {
    return `${this.prefix}d:gn:${guestId}`;
  }
  /** SET of the agents of a group with an online record (candidates of a routing pick). */
  deskGroupAgents(groupId: string): string {
    return `${this.prefix}d:on:${groupId}`;
  }
  /** ZSET agent → load, of a group's agents that are not suspended and below capacity (the pick is its head). */
  deskFree(groupId: string): string {
    return `${this.prefix}d:f:${groupId}`;
  }
  /** LIST: a group's waiting guests, first first. */
  deskQueue(groupId: string): string {
    return `${this.prefix}d:q:${groupId}`;
  }
  /** SET of the agents with a session on one node (what to clean when it dies). */
  deskNodeAgents(nodeId: string): string {
    return `${this.prefix}d:na:${nodeId}`;
  }
  /** SET of the guests with a session on one node. */
  deskNodeGuests(nodeId: string): string {
    return `${this.prefix}d:ng:${nodeId}`;
  }
  /** SET of the nodes holding desk entries (a node missing from it has had its entries swept or lost). */
  deskNodes(): string {
    return `${this.prefix}d:nodes`;
  }
  /** STRING: the last routing version handed out (microseconds on Redis's clock, strictly increasing). */
  deskVersion(): string {
    return `${this.prefix}d:ver`;
  }
  // ---- operator's console (console/stats.ts) ----
  /** STRING (JSON, expiring): a node's latest console snapshot. */
  consoleSnapshot(nodeId: string): string {
    return `${this.prefix}console:n:${nodeId}`;
  }
  /** LIST (JSON, the last 600): a node's per-second console samples. */
  consoleHistory(nodeId: string): string {
    return `${this.prefix}console:h:${nodeId}`;
  }
  /** ZSET user id → the Redis-clock ms until which a console wants to know its connections per protocol. */
  consoleWants(): string {
    return `${this.prefix}console:wants`;
  }
  /** HASH node id → JSON of that node's connections of one wanted user per protocol (expiring). */
  consoleUser(userId: string): string {
    return `${this.prefix}console:u:${userId}`;
  }
}
