// Connections bound to their user whose login answer is not sent yet: their pushes wait here, in order, so
// no push reaches a client before the protocol's login answer (Hub.bindUser with `welcome`).
import type { Message } from "../core/types.ts";
import type { Frame, Session } from "./session.ts";

/** Pushes held for a connection whose login answer is not out yet; past this it is closed with 4100 once answered. */
export const WELCOME_QUEUE_MAX = 256;

interface Held {
  frames: [Frame | Frame[], Message | undefined][];
  overflow: boolean;
}

export class WelcomeHold {
  private readonly held = new Map<Session, Held>();

  /** From now on the connection's pushes are held. */
  hold(s: Session): void {
    this.held.set(s, { frames: [], overflow: false });
  }

  /** Holds a push when the connection's login answer is not out yet; false when it is to be sent now. */
  offer(s: Session, frame: Frame | Frame[], msg: Message | undefined): boolean {
    const h = this.held.get(s);
    if (!h) return false;
    if (h.frames.length < WELCOME_QUEUE_MAX) h.frames.push([frame, msg]);
    else h.overflow = true;
    return true;
  }

  /** Stops holding; returns what was held (`overflow`: more than WELCOME_QUEUE_MAX arrived). */
  release(s: Session): Held | undefined {
    const h = this.held.get(s);
    this.held.delete(s);
    return h;
  }
}
