// In-process bus: the default for one process. Several MemoryBus instances on one MemoryBroker behave
// like nodes on one Redis, which is how the bus contract test runs both implementations alike.
import type { Bus, BusState } from "./bus.ts";

export class MemoryBroker {
  readonly subscribers = new Map<string, Set<MemoryBus>>();
}

export class MemoryBus implements Bus {
  readonly kind = "memory" as const;
  private readonly channels = new Set<string>();
  private readonly handlers: ((channel: string, payload: Uint8Array) => void)[] = [];

  readonly hasPeers: boolean;
  private readonly broker: MemoryBroker;

  constructor(broker?: MemoryBroker) {
    this.hasPeers = broker !== undefined;
    this.broker = broker ?? new MemoryBroker();
  }

  state(): BusState {
    return "ok";
  }

  publishMany(channels: string[], payload: Uint8Array): void {
    for (const ch of channels) this.publish(ch, payload);
  }

  publish(channel: string, payload: Uint8Array): void {
    const subs = this.broker.subscribers.get(channel);
    if (!subs) return;
    // Asynchronous like a network bus, so callers never depend on re-entrant delivery.
    for (const bus of subs) queueMicrotask(() => bus.handlers.forEach((h) => h(channel, payload)));
  }

  async subscribe(channel: string): Promise<void> {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    let set = this.broker.subscribers.get(channel);
    if (!set) this.broker.subscribers.set(channel, (set = new Set()));
    set.add(this);
  }

  unsubscribe(channel: string): void {
    if (!this.channels.delete(channel)) return;
    const set = this.broker.subscribers.get(channel);
    set?.delete(this);
    if (set?.size === 0) this.broker.subscribers.delete(channel);
  }

  subscriptions(): number {
    return this.channels.size;
  }

  onMessage(handler: (channel: string, payload: Uint8Array) => void): void {
    this.handlers.push(handler);
  }

  async close(): Promise<void> {
    for (const ch of [...this.channels]) this.unsubscribe(ch);
  }
}
