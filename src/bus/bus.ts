// The cross-node bus carries already-encoded envelopes. A node subscribes to a channel only while it
// holds a local member of it: the hub knows when a user's or topic's first local session arrives and its
// last leaves, and calls subscribe/unsubscribe exactly then. The bus keeps no count of its own.

export type BusState = "ok" | "degraded" | "down";

export interface Bus {
  readonly kind: "memory" | "redis";
  /** false when no other node can hear this bus (a lone in-process bus): publishing is skipped. */
  readonly hasPeers: boolean;
  state(): BusState;
  publish(channel: string, payload: Uint8Array): void;
  /** The same payload to several channels (one command on Redis, however many recipients an event has). */
  publishMany(channels: string[], payload: Uint8Array): void;
  /**
   * Subscribes this node to a channel. Subscribing a channel it is subscribed to already is one subscription
   * (resolves when that one is active). Rejects on failure, leaving the channel unsubscribed.
   */
  subscribe(channel: string): Promise<void>;
  /** Ends the channel's subscription (nothing when not subscribed). */
  unsubscribe(channel: string): void;
  /** Subscribed channels. */
  subscriptions(): number;
  /** Adds a listener of every envelope received on a subscribed channel (the hub; user changes). */
  onMessage(handler: (channel: string, payload: Uint8Array) => void): void;
  /** Runs `fn` each time the bus is back after an outage (messages published meanwhile were missed). */
  onRecover?(fn: () => void): void;
  close(): Promise<void>;
}
