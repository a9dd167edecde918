import type { ServerWebSocket } from "bun";
import type { CoreEvent } from "../core/types.ts";

export type Frame = string | Uint8Array;

/** A wire protocol: a pure translator between frames and core commands/events. */
export interface Dialect {
  readonly name: string;
  /**
   * Encodes an event for one session, or undefined when the event is not for it. The hub encodes once
   * per codec (and per user when `encodesPerUser`) within one dispatch and shares the bytes.
   */
  encode(ev: CoreEvent, s: Session): Frame | undefined;
  readonly encodesPerUser?: boolean;
  /**
   * Runs before the WebSocket upgrade: refuse with an HTTP response, or hand over what the handshake
   * established (a user authenticated from the query string, the wire format, dialect state).
   */
  upgrade?(req: Request, url: URL): Promise<Response | Partial<Pick<Session, "userId" | "codec" | "state">>>;
  open(s: Session): void | Promise<void>;
  message(s: Session, data: string | Buffer): void | Promise<void>;
  close(s: Session, code: number, reason: string): void | Promise<void>;
}

/** Connection state, kept on Bun's ws.data (one object per connection, for its whole life). */
export interface Session {
  readonly id: string;
  readonly dialect: Dialect;
  /** Key of the encode-once cache: dialect plus wire format. */
  codec: string;
  userId?: string;
  ws: ServerWebSocket<Session>;
  readonly query: URLSearchParams;
  readonly headers: Headers;
  readonly ip: string;
  readonly openedAt: number;
  closed: boolean;
  /** Owned by the dialect. */
  state: Record<string, unknown>;
}
