// Redis pub/sub bus (ioredis): one connection publishes, one subscribes. Channels are subscribed only
// while a local member needs them (reference-counted; a failed SUBSCRIBE rolls the count back), never
// with PSUBSCRIBE, so Redis traffic grows with active topics rather than nodes x topics.
// ioredis reconnects by itself and re-subscribes every channel after a reconnect (autoResubscribe);
// publishes made while Redis is away are queued by ioredis and sent on reconnect (offline queue).
import Redis from "ioredis";
import type { Logger } from "../app.ts";
import type { Bus, BusState } from "./bus.ts";

export class RedisBus implements Bus {
  readonly kind = "redis" as const;
  readonly hasPeers = true;
  private readonly counts = new Map<string, number>();
  private handler: (channel: string, payload: Uint8Array) => void = () => {};

  private constructor(
    readonly pub: Redis,
    private readonly sub: Redis,
  ) {
    sub.on("messageBuffer", (ch: Buffer, payload: Buffer) => this.handler(ch.toString(), payload));
  }

  static async connect(url: string, log: Logger): Promise<RedisBus> {
    const opts = {
      lazyConnect: true,
      maxRetriesPerRequest: null,
      retryStrategy: (n: number) => Math.min(50 * n, 1000),
      enableAutoPipelining: true,
    };
    const pub = new Redis(url, { ...opts, connectionName: "chat-pub" });
    const sub = new Redis(url, { ...opts, connectionName: "chat-sub" });
    for (const [name, c] of [["pub", pub], ["sub", sub]] as const) {
      c.on("error", (e) => log.debug(`redis ${name}: ${e.message}`));
      c.on("reconnecting", () => log.warn(`redis ${name}: reconnecting`));
      c.on("ready", () => log.info(`redis ${name}: ready`));
    }
    await Promise.all([pub.connect(), sub.connect()]);
    return new RedisBus(pub, sub);
  }

  state(): BusState {
    const p = this.pub.status === "ready";
    const s = this.sub.status === "ready";
    return p && s ? "ok" : "degraded";
  }

  publish(channel: string, payload: Uint8Array): void {
    this.pub.publish(channel, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)).catch(() => {});
  }

  async subscribe(channel: string): Promise<void> {
    const n = this.counts.get(channel) ?? 0;
    this.counts.set(channel, n + 1);
    if (n > 0) return;
    try {
      await this.sub.subscribe(channel);
    } catch (e) {
      this.unsubscribe(channel);
      throw e;
    }
  }

  unsubscribe(channel: string): void {
    const n = this.counts.get(channel) ?? 0;
    if (n > 1) return void this.counts.set(channel, n - 1);
    if (n === 0) return;
    this.counts.delete(channel);
    this.sub.unsubscribe(channel).catch(() => {});
  }

  subscriptions(): number {
    return this.counts.size;
  }

  onMessage(handler: (channel: string, payload: Uint8Array) => void): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.counts.clear();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
