// Command errors are replies, never disconnects. Each has a stable numeric code that dialects map
// onto their own protocol; the native protocol sends it as is (docs/protocol.md has the table).
export const ErrorCodes = {
  bad_frame: 4000,
  unknown_type: 4001,
  bad_request: 4002,
  unauthorized: 4010,
  forbidden: 4030,
  blocked: 4031,
  muted: 4032,
  not_member: 4033,
  not_found: 4040,
  conflict: 4090,
  recall_expired: 4091,
  rate_limited: 4290,
  slow_mode: 4291,
  unavailable: 5030,
  internal: 5000,
} as const;

export type ErrorName = keyof typeof ErrorCodes;

export class CoreError extends Error {
  readonly code: number;
  constructor(
    override readonly name: ErrorName,
    message: string,
    /** For throttling errors: milliseconds until a retry can succeed. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.code = ErrorCodes[name];
  }
}

export const fail = (name: ErrorName, message: string, retryAfterMs?: number): never => {
  throw new CoreError(name, message, retryAfterMs);
};

/** Close codes sent to WebSocket clients. 4xxx: the client should reconnect (with backoff) unless noted. */
export const CloseCodes = {
  /** Bad or expired credentials: do not reconnect with the same token. */
  authFailed: 4001,
  /** A frame over MAX_FRAME_BYTES (RFC 6455 "message too big"). */
  tooBig: 1009,
  /** Silent past the idle timeout. */
  idle: 4002,
  /** The client could not keep up with must-deliver traffic: reconnect and resync. */
  resync: 4100,
  /** Frames kept coming far past MAX_FRAMES_IN_FLIGHT (policy violation): reconnect with backoff, wait for replies. */
  flood: 1008,
  /** This node is going away: reconnect (another node will take the client). */
  shutdown: 4200,
} as const;
