// The HTTP client of webhooks and the moderation hook (core/webhooks.ts HttpSender): fetch with a timeout.
import type { HttpSender } from "../core/webhooks.ts";

export const fetchSender: HttpSender = {
  async post(url, body, headers, timeoutMs) {
    const res = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
    return { status: res.status, text: () => res.text() };
  },
};
