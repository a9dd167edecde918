// The signature of every call to the app backend (webhooks and the moderation hook, docs/webhooks.md): HMAC-SHA256
// over "<timestamp>.<body>" with the shared secret, in the request's headers; and its check, for receivers.
import { createHmac, timingSafeEqual } from "node:crypto";

/** Request headers of every webhook and moderation call. */
export const WebhookHeaders = {
  id: "x-chatd-event-id",
  kind: "x-chatd-event",
  timestamp: "x-chatd-timestamp",
  signature: "x-chatd-signature",
} as const;

/** The signature header's value: `v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export function signature(secret: string, timestamp: string, body: string): string {
  return "v1=" + createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/**
 * For receivers: true when the request's signature matches the body and its timestamp (seconds) is within
 * `toleranceSec` of now. `headers` is a Fetch `Headers` or a plain object with lower-case names.
 */
export function verifyWebhook(secret: string, headers: Headers | Record<string, string | undefined>, body: string, toleranceSec = 300): boolean {
  const get = (n: string) => (headers instanceof Headers ? headers.get(n) : headers[n]) ?? undefined;
  const ts = get(WebhookHeaders.timestamp);
  const sig = get(WebhookHeaders.signature);
  if (!ts || !sig || !/^\d{1,12}$/.test(ts)) return false;
  if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSec) return false;
  const want = Buffer.from(signature(secret, ts, body));
  const got = Buffer.from(sig);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** Signed headers for a body (webhooks and the moderation hook). */
export function signedHeaders(secret: string, body: string, extra: Record<string, string> = {}): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  return { "content-type": "application/json", [WebhookHeaders.timestamp]: ts, [WebhookHeaders.signature]: signature(secret, ts, body), ...extra };
}
