// A fuzzing connection: every frame received is kept until taken; a wait ends with the first matching frame,
// the socket's close, or a bounded timeout (a broken server fails the run instead of hanging it).
import { unpack } from "msgpackr";
import type { Wire } from "./mutate.ts";

export type Outcome = { frame: any } | { closed: number } | { timeout: true };

export class Conn {
  frames: any[] = [];
  closeCode?: number;
  private waiter?: { pred: (f: any) => boolean; done: (o: Outcome) => void };
  /** state a protocol keeps about the connection (its room, its user) */
  readonly info: Record<string, any> = {};

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => {
      let f: any;
      try {
        f = typeof e.data === "string" ? JSON.parse(e.data) : unpack(new Uint8Array(e.data as ArrayBuffer));
      } catch {
        f = { unparsable: String(e.data).slice(0, 200) };
      }
      this.frames.push(f);
      if (this.waiter?.pred(f)) {
        this.frames.pop();
        const w = this.waiter;
        this.waiter = undefined;
        w.done({ frame: f });
      }
    };
    ws.onclose = (e) => {
      this.closeCode = e.code;
      const w = this.waiter;
      this.waiter = undefined;
      w?.done({ closed: e.code });
    };
  }

  static open(url: string): Promise<Conn> {
    const ws = new WebSocket(url);
    const c = new Conn(ws);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(c);
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
  }

  private closing = false;

  get open(): boolean {
    return this.closeCode === undefined && !this.closing;
  }

  send(w: Wire): void {
    this.ws.send("text" in w ? w.text : w.binary);
  }

  /** The first frame (already received or coming) matching `pred`; frames before it that do not match stay. */
  wait(pred: (f: any) => boolean, ms: number): Promise<Outcome> {
    const i = this.frames.findIndex(pred);
    if (i >= 0) return Promise.resolve({ frame: this.frames.splice(i, 1)[0] });
    if (this.closeCode !== undefined) return Promise.resolve({ closed: this.closeCode });
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        resolve({ timeout: true });
      }, ms);
      this.waiter = {
        pred,
        done: (o) => {
          clearTimeout(t);
          resolve(o);
        },
      };
    });
  }

  /** The close code, once the socket closes (or `timeout`). */
  async closed(ms: number): Promise<number | "timeout"> {
    if (this.closeCode !== undefined) return this.closeCode;
    const o = await this.wait(() => false, ms);
    return "closed" in o ? o.closed : "timeout";
  }

  close(): void {
    if (this.open) this.ws.close();
    this.closing = true;
  }
}
