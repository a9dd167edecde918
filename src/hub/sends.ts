// Frames written to this node's sockets: one at a time, or held for the rest of a turn of the event loop and
// then written per socket in one corked write (Sends.corkTurn). Nothing is dropped silently: a frame the socket
// layer refuses closes its connection with 4100 (reconnect, then sync). A frame carrying a pushed message or a
// pulled page is reported to the delivered marks (core/delivery.ts) once its socket accepted it.
import type { DeliveryMarks, PageMarks } from "../core/delivery.ts";
import { CloseCodes } from "../core/errors.ts";
import { metric } from "../core/metrics.ts";
import type { Message } from "../core/types.ts";
import type { Frame, Session } from "./session.ts";

/** What a frame carries that counts as delivered once written out: a pushed message, or a pulled page's marks. */
export type Carried = Message | PageMarks;

const mOut = metric("chat_frames_out_total", "Frames written to sockets");
const mBackpressure = metric("chat_send_backpressure_total", "Sends queued under backpressure");
const mDropped = metric("chat_send_dropped_total", "Sends dropped by the socket layer");

/** Senders holding frames of a corked turn: a socket's close writes what they hold for it first. */
const holding = new Set<Sends>();
/** Prototypes of Bun's server sockets whose close was made to write held frames first. */
const hooked = new WeakSet<object>();

/**
 * Makes `close` on every socket of `ws`'s class write the frames a corked turn holds for it first (they were sent
 * before the close). Once per class of socket: no per-connection cost. A plain object (a test's fake socket) is
 * left alone.
 */
export function hookClose(ws: object): void {
  const proto = Object.getPrototypeOf(ws) as { close?: (...a: unknown[]) => unknown } | null;
  if (!proto || proto === Object.prototype || hooked.has(proto) || typeof proto.close !== "function") return;
  hooked.add(proto);
  const close = proto.close;
  proto.close = function (this: { data?: Session }, ...args: unknown[]) {
    if (holding.size && this.data) for (const h of holding) h.flushHeld(this.data);
    return close.apply(this, args);
  };
}

export class Sends {
  /** Frames of the corked turn (corkTurn), per socket, in order, each with the message or page it carries. */
  private held: Map<Session, [Frame | Frame[], Carried | undefined][]> | undefined;

  constructor(private readonly marks: DeliveryMarks<Session> | undefined) {}

  /**
   * Corks the rest of this turn of the event loop: frames sent until its end (setImmediate: after the promise
   * continuations of what runs now) are held per socket, then each socket's are written in one corked write —
   * one syscall per socket instead of one per frame. For bursts that answer many sockets at once (a committed
   * batch's acks and pushes). Order holds: a topic publish writes everything held first (uncork), a socket's
   * close what is held for it (hookClose).
   */
  corkTurn(): void {
    if (this.held) return;
    this.held = new Map();
    holding.add(this);
    setImmediate(() => this.uncork());
  }

  /** Writes everything held and ends the corked turn. */
  uncork(): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    holding.delete(this);
    for (const [s, frames] of held) this.writeHeld(s, frames);
  }

  /** Writes what the corked turn holds for one socket now (it is about to close). */
  flushHeld(s: Session): void {
    const frames = this.held?.get(s);
    if (!frames) return;
    this.held!.delete(s);
    this.writeHeld(s, frames);
  }

  private writeHeld(s: Session, frames: [Frame | Frame[], Carried | undefined][]): void {
    if (s.closed) return;
    s.ws.cork(() => {
      for (const [f, msg] of frames) if (!this.sendNow(s, f, msg)) break;
    });
  }

  /**
   * Writes a frame (or several, in order); returns false when the socket dropped one. Bun drops a frame when
   * the socket has more than BACKPRESSURE_BYTES queued; nothing is dropped silently, so that connection is
   * closed with 4100 (reconnect, then sync). `carried`: the message the frame carries, marked delivered once
   * the socket wrote it out when the protocol marks on push (a push from the user itself is not marked); or
   * the marks of the page a pull reply carries, stored once the socket wrote it out, whatever the protocol.
   */
  send(s: Session, frame: Frame | Frame[], carried?: Carried): boolean {
    if (this.held) {
      // A corked turn: written at its end (a frame then dropped closes the socket with 4100 as below).
      if (s.closed) return false;
      let frames = this.held.get(s);
      if (!frames) this.held.set(s, (frames = []));
      frames.push([frame, carried]);
      return true;
    }
    return this.sendNow(s, frame, carried);
  }

  private sendNow(s: Session, frame: Frame | Frame[], carried?: Carried): boolean {
    const ok = Array.isArray(frame) ? frame.every((f) => this.write(s, f)) : this.write(s, frame);
    if (!ok || !carried || !s.userId) return ok;
    if ("tops" in carried) this.marks?.acceptedPage(s, s.userId, carried);
    else if (s.dialect.marksOnPush && s.userId !== carried.from) this.marks?.accepted(s, s.userId, carried.conv, carried.seq);
    return ok;
  }

  private write(s: Session, frame: Frame): boolean {
    if (s.closed) return false;
    const r = s.ws.send(frame);
    mOut.value++;
    s.framesOut = (s.framesOut ?? 0) + 1;
    if (r === -1) mBackpressure.value++;
    else if (r === 0) {
      mDropped.value++;
      if (!s.closed) s.ws.close(CloseCodes.resync, "send queue full");
      return false;
    }
    return true;
  }
}
