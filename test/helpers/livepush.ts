// A client of the livepush protocol (docs/livepush.md) for tests: polls and sends over HTTP.
import { expect } from "bun:test";
import type { TestServer } from "./server.ts";

export const POLL = "/app/im/user_conn.php";
export const SEND = "/app/mailbox/send_message.php";

/** One livepush user: its polls and sends. */
export class Livepush {
  constructor(
    readonly url: string,
    readonly uid: string,
    readonly token: string,
  ) {}
  /** One poll; resolves with the whole answer. */
  async poll(extra: Record<string, string> = {}, signal?: AbortSignal): Promise<any> {
    const q = new URLSearchParams({ uid: this.uid, token: this.token, ...extra });
    const res = await fetch(`${this.url}${POLL}?${q}`, { signal });
    expect(res.status).toBe(200);
    return res.json();
  }
  /** Polls until an answer carries messages (result 1); the messages. */
  async msgs(extra: Record<string, string> = {}): Promise<any[]> {
    for (;;) {
      const a = await this.poll(extra);
      if (a.data.result === 1) return a.data.msgs;
      if (a.data.result !== 3) throw new Error(`poll: ${JSON.stringify(a)}`);
    }
  }
  async send(fields: Record<string, unknown>, json = false): Promise<any> {
    const body = { uid: this.uid, token: this.token, ...fields };
    const res = await fetch(`${this.url}${SEND}`, {
      method: "POST",
      headers: { "content-type": json ? "application/json" : "application/x-www-form-urlencoded" },
      body: json ? JSON.stringify(body) : new URLSearchParams(Object.entries(body).map(([k, v]) => [k, String(v)])).toString(),
    });
    expect(res.status).toBe(200);
    return res.json();
  }
}

/** Until the server API's presence reports every one of `ids` online (their polls are bound). */
export async function waitOnline(srv: { api: TestServer["api"] }, ids: string[]): Promise<void> {
  for (let i = 0; i < 400; i++) {
    const on: string[] = (await srv.api(`/api/presence?users=${ids.join(",")}`)).body.online;
    if (on.length === ids.length) return;
    await Bun.sleep(25);
  }
  throw new Error(`not online: ${ids}`);
}

