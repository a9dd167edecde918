// Every Redis key and pub/sub channel name is built here, so the layout is visible in one place.
const P = "chat:";

export const keys = {
  /** Pub/sub: events for one user's connections, subscribed by nodes holding one of them. */
  userChannel: (userId: string) => `${P}u:${userId}`,
  /** Pub/sub: events for one room or group topic, subscribed by nodes holding a member. */
  topicChannel: (topic: string) => `${P}t:${topic}`,
  /** Pub/sub: control messages for every node (shutdown notices, config). */
  broadcastChannel: () => `${P}all`,
};
