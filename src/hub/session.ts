import type { ServerWebSocket } from "bun";
import type { CoreEvent } from "../core/types.ts";

export type Frame = string | Uint8Array;

/** A wire protocol: a pure translator between frames and core commands/events. */
export interface Dialect {
  readonly name: string;
  /**
   * Encodes an event for one wire format (`codec`, see Session.codec), or undefined when the event is not
   * for this protocol. Pure: no side effects (the hub calls it once per codec per event and shares the bytes
   * among all recipients). A protocol with no frame that carries several events returns one frame per event
   * of a room tick: they are sent in order.
   */
  encode(ev: CoreEvent, codec: string): Frame | Frame[] | undefined;
  /**
   * A message pushed to a connection of this protocol counts as delivered once the socket took the frame and
   * wrote it out (core/delivery.ts): set by protocols without client acknowledgements (J-IM, rooms).
   */
  readonly marksOnPush?: boolean;
  /**
   * Runs before the WebSocket upgrade: refuse with an HTTP response, or hand over what the handshake
   * established (a user authenticated from the query string, the wire format, dialect state). `peer` is the
   * client's address (what password-login limits count by).
   */
  upgrade?(req: Request, url: URL, peer: string): Promise<Response | Partial<Pick<Session, "userId" | "role" | "codec" | "state">>>;
  open(s: Session): void | Promise<void>;
  message(s: Session, data: string | Buffer): void | Promise<void>;
  /**
   * Optional fast path, run synchronously before `message`: answers a trivial frame (a heartbeat) at once
   * and returns true, or returns false to let `message` handle it.
   */
  quick?(s: Session, data: string | Buffer): boolean;
  /**
   * Answers a frame that arrived while MAX_FRAMES_IN_FLIGHT frames of its connection were still being
   * handled, with the protocol's own "too busy, retry" error (native 4290): the frame is not handled.
   * Runs synchronously; it should only read what the answer needs (the frame's id).
   */
  busy(s: Session, data: string | Buffer): void;
  close(s: Session, code: number, reason: string): void | Promise<void>;
}

/** A connection's standing in one room it is behind in (hub/slow.ts). */
export interface Lag {
  /** droppable items it missed */
  dropped: number;
  /** set once it missed a must-deliver message: the seq to fetch history after */
  after?: number;
}

/** Connection state, kept on Bun's ws.data (one object per connection, for its whole life). */
export interface Session {
  readonly id: string;
  readonly dialect: Dialect;
  /** Key of the encode-once cache: dialect plus wire format. */
  codec: string;
  userId?: string;
  /** The user's role (users.role), set with userId. */
  role?: string;
  ws: ServerWebSocket<Session>;
  closed: boolean;
  /** Topics (rooms, groups) this connection is subscribed to through the hub (NO_TOPICS until its first). */
  topics: Set<string>;
  /** Room topics this connection was taken out of for backpressure, until it drains (hub/slow.ts). */
  lag?: Map<string, Lag>;
  lagTimer?: ReturnType<typeof setTimeout>;
  /** Frames received and not yet handled to the end (transport/server.ts caps them at MAX_FRAMES_IN_FLIGHT). */
  inflight: number;
  /** Frames refused in a row for being past that cap; a connection that keeps flooding is closed. */
  refusedInRow: number;
  /** Frames written to this socket by the hub (not topic publishes); a protocol's idle rule may read it. */
  framesOut?: number;
  /** Owned by the dialect. */
  state: Record<string, unknown>;
}

/** The shared empty topic set of every connection that has joined no topic yet; never added to (Hub.join replaces it). */
export const NO_TOPICS: ReadonlySet<string> = new Set<string>();
