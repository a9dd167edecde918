// A WebSocket test client with an awaited queue: `await c.next()` instead of callbacks, no sleeps.
import { pack, unpack } from "msgpackr";
import { FrameQueue } from "./frames.ts";

export class Client {
  private frames = new FrameQueue();
  closed: Promise<{ code: number; reason: string }>;
  isClosed = false;
  private seq = 0;

  /** For the protocol clients of test/helpers/protocol/, which are Clients with their own `request`. */
  protected constructor(
    readonly ws: WebSocket,
    readonly binary: boolean,
  ) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      this.frames.push(typeof e.data === "string" ? tryJson(e.data) : unpack(new Uint8Array(e.data as ArrayBuffer)));
    };
    this.closed = new Promise((resolve) => {
      ws.onclose = (e) => {
        this.isClosed = true;
        this.frames.end(new Error(`closed ${e.code} ${e.reason} while waiting`));
        resolve({ code: e.code, reason: e.reason });
      };
    });
  }

  static async connect(url: string, opts: { binary?: boolean; protocols?: string[] } = {}): Promise<Client> {
    return Client.opened(new Client(new WebSocket(url, opts.protocols), opts.binary ?? false), url);
  }

  /** Resolves with `c` once its socket is open. */
  protected static async opened<C extends Client>(c: C, url: string): Promise<C> {
    await new Promise<void>((resolve, reject) => {
      c.ws.onopen = () => resolve();
      c.ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return c;
  }

  send(frame: unknown): void {
    if (typeof frame === "string" || frame instanceof Uint8Array) this.ws.send(frame);
    else this.ws.send(this.binary ? pack(frame) : JSON.stringify(frame));
  }

  /** The next frame (matching `pred`, if given), in arrival order; frames skipped by `pred` stay queued. */
  next(pred: (f: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
    return this.frames.next(pred, timeoutMs);
  }

  /** Sends a request with a fresh id and awaits the reply carrying that id. */
  async request(frame: Record<string, unknown>): Promise<any> {
    const id = `r${++this.seq}`;
    this.send({ ...frame, id });
    return this.next((f) => f && f.id === id);
  }

  /** A native-protocol request that must succeed: an error frame fails the test with the frame in the message. */
  async ok(frame: Record<string, unknown>): Promise<any> {
    const r = await this.request(frame);
    if (r?.t === "error") throw new Error(`${frame.t}: ${JSON.stringify(r)}`);
    return r;
  }

  /** Native protocol: every message a sync returns (a peek above the delivered cursor), all pages, in order. */
  async syncAll(conv?: string): Promise<any[]> {
    const out: any[] = [];
    let after: unknown;
    for (;;) {
      const r = await this.ok({ t: "sync", ...(conv ? { conv } : {}), limit: 500, ...(after ? { after } : {}) });
      out.push(...r.msgs);
      if (!r.more) return out;
      const last = r.msgs[r.msgs.length - 1];
      after = { conv: last.conv, seq: last.seq };
    }
  }

  /** Connects to the native protocol with a token in the query and awaits the welcome for `user`. */
  static async native(wsUrl: string, token: string, user: string): Promise<Client> {
    const c = await Client.connect(`${wsUrl}/ws?token=${token}`);
    const w = await c.next();
    if (w?.t !== "welcome" || w.user !== user) throw new Error(`expected a welcome for ${user}, got ${JSON.stringify(w)}`);
    return c;
  }

  /** Frames already received and not yet taken. */
  pending(): any[] {
    return this.frames.pending();
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close();
    return this.closed;
  }
}

function tryJson(s: string): any {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
