// How a failure of the store is told apart: a store that cannot be reached (retryable, `unavailable`), a value
// it refused (the client's input, `bad_request`), or an error of the statement itself. Read from the driver's
// error code (postgres.js connection codes, SQLSTATE), so every protocol answers a failure the same way.
import { CoreError } from "./errors.ts";

/** The driver's error behind a query error (drizzle wraps it as `cause`): its SQLSTATE or connection code and message. */
export function driverError(e: unknown): { code?: string; message: string } {
  let cur = e;
  for (let i = 0; i < 5 && cur && typeof cur === "object"; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return { code, message: (cur as Error).message };
    cur = (cur as { cause?: unknown }).cause;
  }
  return { message: e instanceof Error ? e.message : String(e) };
}

/** Connection failures of postgres.js and the socket layer, and SQLSTATEs of a server that is going or gone. */
const DOWN_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, recovering)
  "53300", // too_many_connections
]);

/**
 * Why the store cannot be reached, when `e` says so (a connection error, a server shutting down, SQLSTATE
 * class 08); undefined for an error of the statement itself (bad data, a constraint).
 */
export function storeDown(e: unknown): string | undefined {
  const { code, message } = driverError(e);
  if (code && (DOWN_CODES.has(code) || code.startsWith("08"))) return `${code}: ${message}`;
  return undefined;
}

/**
 * What a client is told of a failure: a store that cannot be reached is `unavailable` (retryable); a value
 * the store refused (SQLSTATE class 22: a NUL character or bad encoding in a looked-up id, a number out of
 * range) is the client's input, a `bad_request`; a transaction the store rolled back for a concurrent one
 * (SQLSTATE class 40: a deadlock, a serialization failure) is `unavailable` too: the same request succeeds
 * when retried, and so is a message whose time no partition holds. Anything else as is.
 */
export function storeFailure(e: unknown): unknown {
  if (e instanceof CoreError) return e;
  if (storeDown(e)) return new CoreError("unavailable", "the store is unavailable, retry later", 1000);
  const { code, message } = driverError(e);
  if (code?.startsWith("22")) return new CoreError("bad_request", `invalid value: ${message}`);
  if (code?.startsWith("40")) return new CoreError("unavailable", "a concurrent change got in the way, retry", 100);
  // A message time no partition of the messages table holds (store/partitions.ts: a clock far off, or the
  // partitions not made ahead): the server's state, not the client's input.
  if (code === "23514" && /no partition of relation/.test(message)) return new CoreError("unavailable", "the message store cannot take this message now, retry later", 1000);
  return e;
}
