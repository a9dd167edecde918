// The cross-node bus carries already-encoded envelopes. A node subscribes to a channel only while it
// holds a local member of it: subscribe/unsubscribe are reference-counted by the implementation.

export type BusState = "ok" | "degraded" | "down";

export interface Bus {
  readonly kind: "memory" | "redis";
  /** false when no other node can hear this bus (a lone in-process bus): publishing is skipped. */
  readonly hasPeers: boolean;
  state(): BusState;
  publish(channel: string, payload: Uint8Array): void;
  /** The same payload to several channels (one command on Redis, however many recipients an event has). */
  publishMany(channels: string[], payload: Uint8Array): void;
  /** Counts one more local interest; the first one subscribes. Rejects (and rolls back) on failure. */
  subscribe(channel: string): Promise<void>;
  /** Counts one interest less; the last one unsubscribes. */
  unsubscribe(channel: string): void;
  /** Live subscriptions (channels with a positive count). */
  subscriptions(): number;
  /** Adds a listener of every envelope received on a subscribed channel (the hub; user changes). */
  onMessage(handler: (channel: string, payload: Uint8Array) => void): void;
  /** Runs `fn` each time the bus is back after an outage (messages published meanwhile were missed). */
  onRecover?(fn: () => void): void;
  close(): Promise<void>;
}
