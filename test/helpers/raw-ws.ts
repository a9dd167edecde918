// A WebSocket client over a plain TCP socket (node:net) that can stop reading: `pause()` leaves the
// server's frames in the kernel, so the server sees a genuinely stalled consumer (its send queue grows)
// until `resume()`. Speaks just enough RFC 6455 for tests: masked text frames out; text, close and ping in.
import net from "node:net";
import { FrameQueue } from "./frames.ts";

export class RawWs {
  private buf: Buffer = Buffer.alloc(0);
  private readonly frames = new FrameQueue();
  /** Resolves with the close frame's code (1006 when the connection ended without one). */
  readonly closed: Promise<{ code: number; reason: string }>;
  private onClose!: (c: { code: number; reason: string }) => void;
  private closeFrame?: { code: number; reason: string };
  /** Bytes read from the socket so far. */
  bytesRead = 0;

  private constructor(private readonly sock: net.Socket) {
    this.closed = new Promise((r) => (this.onClose = r));
    sock.on("close", () => {
      const c = this.closeFrame ?? { code: 1006, reason: "" };
      this.frames.end(new Error(`closed ${c.code} ${c.reason} while waiting`));
      this.onClose(c);
    });
    sock.on("error", () => {});
  }

  /** `headers`: extra request headers of the handshake (e.g. `authorization`). */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<RawWs> {
    const u = new URL(url);
    const sock = net.connect(Number(u.port), u.hostname);
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", () => resolve());
      sock.once("error", reject);
    });
    const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
    sock.write(
      `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
        Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("") +
        "\r\n",
    );
    const ws = new RawWs(sock);
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        sock.off("data", onData);
        if (!/^HTTP\/1\.1 101/.test(head.subarray(0, end).toString())) {
          sock.destroy();
          return reject(new Error(head.subarray(0, end).toString()));
        }
        sock.on("data", (chunk: Buffer) => ws.feed(chunk));
        ws.feed(head.subarray(end + 4));
        resolve();
      };
      sock.on("data", onData);
    });
    return ws;
  }

  /** Stops reading from the socket: what the server sends stays queued in the kernel and then in the server. */
  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  send(frame: unknown): void {
    this.sock.write(encodeFrame(0x1, Buffer.from(JSON.stringify(frame))));
  }

  /** The next frame matching `pred` (a close ends the wait with an error). */
  next(pred: (f: any) => boolean = () => true, timeoutMs = 10_000): Promise<any> {
    return this.frames.next(pred, timeoutMs);
  }

  /** Frames received and not taken. */
  pending(): any[] {
    return this.frames.pending();
  }

  close(): void {
    this.sock.destroy();
  }

  private feed(chunk: Buffer): void {
    this.bytesRead += chunk.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      const op = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const payload = this.buf.subarray(at, at + len);
      this.buf = this.buf.subarray(at + len);
      if (op === 0x1) this.frames.push(JSON.parse(payload.toString()));
      else if (op === 0x8) this.closeFrame = { code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString() };
      else if (op === 0x9) this.sock.write(encodeFrame(0xa, Buffer.from(payload)));
    }
  }

}

/** A client frame: FIN, the opcode, masked with a random key (RFC 6455 requires clients to mask). */
function encodeFrame(op: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | op, 0x80 | len]) : Buffer.from([0x80 | op, 0x80 | 126, len >> 8, len & 0xff]);
  if (len > 0xffff) throw new Error("frame too large for this test client");
  const mask = Buffer.from(crypto.getRandomValues(new Uint8Array(4)));
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([head, mask, body]);
}
