// The bus envelope: one byte of length and the origin node's id, then the msgpack-encoded event. A node
// ignores its own envelopes (it delivered locally already) by comparing that header, without decoding.
import { pack, unpack } from "msgpackr";
import type { CoreEvent } from "../core/types.ts";

/** This node's envelope header. */
export function originHeader(nodeId: string): Uint8Array {
  const id = new TextEncoder().encode(nodeId);
  return Uint8Array.of(id.length, ...id);
}

export function envelope(origin: Uint8Array, ev: unknown): Uint8Array {
  const body = pack(ev);
  const out = new Uint8Array(origin.length + body.length);
  out.set(origin);
  out.set(body, origin.length);
  return out;
}

export function fromSelf(payload: Uint8Array, origin: Uint8Array): boolean {
  if (payload.length < origin.length) return false;
  for (let i = 0; i < origin.length; i++) if (payload[i] !== origin[i]) return false;
  return true;
}

/** The event an envelope carries, or undefined when it does not decode. */
export function opened<T = CoreEvent>(payload: Uint8Array): T | undefined {
  try {
    return unpack(payload.subarray(1 + payload[0]!)) as T;
  } catch {
    return undefined;
  }
}
