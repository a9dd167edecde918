// A user of the client SDK (client/) in a test: a ChatClient whose events go into awaited queues, so a test
// reads `await u.next("message", pred)` as it reads frames of a raw client (test/helpers/client.ts). The SDK
// decides what the app sees (each message once, in seq order, resumed after reconnects); a test of behaviour a
// user sees goes through it, a test of the wire (malformed frames, limits, close codes) through a raw client.
import { ChatClient, ChatError, type ChatClientOptions, type ChatEvents } from "../../client/src/index.ts";
import { FrameQueue } from "./frames.ts";
import { token, type Server } from "./protocol/common.ts";

type Ev = keyof ChatEvents;
const EVENTS: Ev[] = ["message", "recall", "receipt", "receipts", "member", "friend", "presence", "danmaku", "roomMessage", "roomPresence", "frame", "disconnected", "stopped", "resumed", "error"];

export class SdkUser {
  private readonly queues = new Map<Ev, FrameQueue>();
  /** Messages handed over during the first connect's resume (the offline sync), in order. */
  readonly synced: ChatEvents["message"][] = [];

  constructor(readonly client: ChatClient) {
    for (const ev of EVENTS) {
      const q = new FrameQueue();
      this.queues.set(ev, q);
      client.on(ev, (e) => q.push(e));
    }
  }

  /** The next event `ev` (matching `pred`), in arrival order; events skipped by `pred` stay queued. */
  next<K extends Ev>(ev: K, pred: (e: ChatEvents[K]) => boolean = () => true, timeoutMs?: number): Promise<ChatEvents[K]> {
    return this.queues.get(ev)!.next(pred as (e: any) => boolean, timeoutMs);
  }

  /** Events `ev` received and not yet taken. */
  pending<K extends Ev>(ev: K): ChatEvents[K][] {
    return this.queues.get(ev)!.pending();
  }

  /** A request that must succeed: resolves with the reply. */
  request(frame: Record<string, unknown> & { t: string }): Promise<any> {
    return this.client.request(frame);
  }

  /** A request that must be refused: resolves with the ChatError (fails the test if the request succeeds). */
  async refused(frame: Record<string, unknown> & { t: string }): Promise<ChatError> {
    return this.fails(this.client.request(frame));
  }

  /** A promise of the client that must reject with a ChatError: resolves with it. */
  async fails(p: Promise<unknown>): Promise<ChatError> {
    const r = await p.then(
      (v) => ({ v }),
      (e) => ({ e }),
    );
    if (!("e" in r)) throw new Error(`expected a refusal, got ${JSON.stringify(r.v)}`);
    if (!(r.e instanceof ChatError)) throw r.e;
    return r.e;
  }

  close(): void {
    this.client.close();
  }
}

/**
 * A connected SDK user of `srv` (a test server of this process or a node of a test cluster): its token made
 * through the server API unless given. Resolves after the first resume; what it synced is in `synced` and in
 * the `message` queue.
 */
export async function sdkLogin(srv: Server, user: string, opts: Partial<ChatClientOptions> & { token?: string; keep?: { close(): void }[] } = {}): Promise<SdkUser> {
  const { keep, ...o } = opts;
  const c = new ChatClient({ url: `${srv.wsUrl}/ws`, token: o.token ?? (await token(srv, user)), backoffMinMs: 20, backoffMaxMs: 200, ...o });
  const u = new SdkUser(c);
  let resumed = false;
  c.on("message", (m) => void (!resumed && u.synced.push(m)));
  await c.connect();
  resumed = true;
  keep?.push(u);
  return u;
}
