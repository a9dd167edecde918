// The moderation hook: before a user's message is committed (or, in a live room, published), the app's URL is
// asked about it, per conversation kind (direct, group, room). It answers allow, reject (the client gets
// `forbidden`, 4030 in the native protocol, with the app's reason) or replace (the body is swapped, e.g. masked
// words). A receiver that does not answer 2xx with a valid answer within the timeout gets the configured outcome:
// fail-open (the message goes as sent) or fail-closed (the send is refused with the retryable `unavailable`).
// Not configured: Messaging never calls it (no cost). docs/webhooks.md has the request and the answers.
import { fail } from "./errors.ts";
import { histogram, metric } from "./metrics.ts";
import { signedHeaders } from "./webhook-signing.ts";
import type { HttpSender } from "./webhooks.ts";

export type ModeratedKind = "direct" | "group" | "room";

export interface ModerationSettings {
  urls: Partial<Record<ModeratedKind, string>>;
  secret: string;
  timeoutMs: number;
  /** true: a receiver down or late lets the message through; false: the send is refused (unavailable) */
  failOpen: boolean;
}

export interface ModerationRequest {
  kind: ModeratedKind;
  from: string;
  conv?: string;
  to?: string;
  message: { kind: string; body: unknown; cmid?: string };
}

const mAllowed = metric("chat_moderation_total", "Moderation answers", "counter", { outcome: "allow" });
const mRejected = metric("chat_moderation_total", "Moderation answers", "counter", { outcome: "reject" });
const mReplaced = metric("chat_moderation_total", "Moderation answers", "counter", { outcome: "replace" });
const mFailed = metric("chat_moderation_total", "Moderation answers", "counter", { outcome: "failed" });
const hLatency = histogram("chat_moderation_seconds", "Moderation call latency", [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5]);

export class Moderation {
  constructor(
    private readonly s: ModerationSettings,
    private readonly sender: HttpSender,
    private readonly log: (msg: string) => void,
  ) {}

  covers(kind: ModeratedKind): boolean {
    return this.s.urls[kind] !== undefined;
  }

  /** The body to send (the same, or the app's replacement); throws the client's error on a rejection. */
  async check(req: ModerationRequest): Promise<unknown> {
    const url = this.s.urls[req.kind]!;
    const body = JSON.stringify(req);
    const t0 = performance.now();
    let answer: { action?: unknown; reason?: unknown; body?: unknown } | undefined;
    try {
      const res = await this.sender.post(url, body, signedHeaders(this.s.secret, body), this.s.timeoutMs);
      const text = await res.text();
      if (res.status >= 200 && res.status < 300) answer = JSON.parse(text);
      else this.log(`moderation ${url}: HTTP ${res.status}`);
    } catch (e) {
      this.log(`moderation ${url}: ${(e as Error).message}`);
    } finally {
      hLatency.observe((performance.now() - t0) / 1000);
    }
    const action = answer && typeof answer === "object" ? answer.action : undefined;
    if (action === "allow") {
      mAllowed.value++;
      return req.message.body;
    }
    if (action === "reject") {
      mRejected.value++;
      const why = typeof answer!.reason === "string" && answer!.reason ? `: ${answer!.reason.slice(0, 200)}` : "";
      return fail("forbidden", `the message was refused by moderation${why}`);
    }
    if (action === "replace" && answer!.body !== undefined) {
      mReplaced.value++;
      return answer!.body;
    }
    mFailed.value++;
    if (this.s.failOpen) return req.message.body;
    return fail("unavailable", "moderation is unavailable: retry later with the same cmid");
  }
}
