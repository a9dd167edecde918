// Live updates of the operator's console (docs/console.md): a page opens one server-sent-event stream
// (`GET /api/console/stream`, src/http/console.ts) and gets its data pushed, at most once a second, while it stays
// open. The data are the answers of the server API's own routes to the stream's own credential: every read goes
// through the HTTP app (its key check, its validation, its handlers), so the stream adds no back door and shows
// exactly what the page would read by polling. A credential the server API stops accepting (401) ends the stream.
//
// Streams of one page (same reads) with one credential share a feed: one round of reads a second for all of them,
// not one per stream. A feed exists only while a stream of it is open.
import { createHash } from "node:crypto";
import { errorBody } from "../http/schemas.ts";

/** Time between the end of one round of a feed's reads and the start of the next: at most one push a second. */
export const PUSH_INTERVAL_MS = 1000;
/** A stream sent nothing this long gets a comment line (keeps it past Bun's idle timeout, finds dead peers). */
const HEARTBEAT_MS = 5000;
/** A stream whose reader takes nothing for this long is closed (its page reconnects). */
const STALLED_MS = 30_000;

/** One read of a page: the field of the pushed object it fills, and the server API path answering it. */
export type Part = readonly [name: string, path: string];

export interface StreamLimits {
  /** open streams on this node (CONSOLE_STREAMS_MAX) */
  max: number;
  /** open streams of one credential on this node (CONSOLE_STREAMS_PER_KEY) */
  perCredential: number;
}

/** Why a stream is not opened: the HTTP status and the error body's name and message. */
export interface Refusal {
  status: number;
  error: "rate_limited" | "unavailable";
  message: string;
}

interface Stream {
  controller: ReadableStreamDefaultController<Uint8Array>;
  feed: Feed;
  /** the last event written (an unchanged page is not sent again) */
  last?: string;
  lastWrite: number;
  /** since when the reader has left a chunk unread (undefined: it keeps up) */
  behindSince?: number;
  done: boolean;
}

interface Feed {
  key: string;
  fingerprint: string;
  authorization: string;
  parts: readonly Part[];
  streams: Set<Stream>;
  timer?: ReturnType<typeof setTimeout>;
}

const enc = new TextEncoder();
/** The URL base of the reads (they never leave the process: the HTTP app answers them in memory). */
const ORIGIN = "http://console.local";
const fingerprintOf = (authorization: string) => createHash("sha256").update(authorization).digest("hex");

/** A body as one JSON value on one line: the JSON text itself, or the text as a JSON string. */
function jsonValue(text: string, json: boolean): string {
  if (json) {
    try {
      return JSON.stringify(JSON.parse(text));
    } catch {}
  }
  return JSON.stringify(text);
}

export class ConsoleStreams {
  private readonly feeds = new Map<string, Feed>();
  private readonly perCredential = new Map<string, number>();
  private total = 0;
  private closed = false;
  private call?: (req: Request) => Promise<Response>;

  constructor(private readonly limits: StreamLimits) {}

  /** The server API that answers the feeds' reads (the HTTP app's own request handler). */
  serveWith(call: (req: Request) => Promise<Response>): void {
    this.call = call;
  }

  /** Open streams on this node. */
  get size(): number {
    return this.total;
  }

  /** Feeds reading now (one per page and credential with a stream open). */
  get feedCount(): number {
    return this.feeds.size;
  }

  /**
   * Opens a stream of `parts`, read with `authorization` (already accepted by the server API): its Response, or
   * why not (over a cap, or the server stopping).
   */
  open(authorization: string, parts: readonly Part[], signal?: AbortSignal): Response | Refusal {
    if (this.closed || !this.call) return { status: 503, error: "unavailable", message: "the server is shutting down: reconnect" };
    if (this.total >= this.limits.max) {
      return { status: 429, error: "rate_limited", message: `too many console streams on this node (at most ${this.limits.max}: CONSOLE_STREAMS_MAX)` };
    }
    const fingerprint = fingerprintOf(authorization);
    const mine = this.perCredential.get(fingerprint) ?? 0;
    if (mine >= this.limits.perCredential) {
      return {
        status: 429,
        error: "rate_limited",
        message: `too many console streams of this key on this node (at most ${this.limits.perCredential}: CONSOLE_STREAMS_PER_KEY)`,
      };
    }
    const key = `${fingerprint}\n${parts.map(([n, p]) => `${n}=${p}`).join("\n")}`;
    let feed = this.feeds.get(key);
    const fresh = !feed;
    if (!feed) this.feeds.set(key, (feed = { key, fingerprint, authorization, parts, streams: new Set() }));
    this.total++;
    this.perCredential.set(fingerprint, mine + 1);
    let stream!: Stream;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        stream = { controller, feed: feed!, lastWrite: Date.now(), done: false };
        feed!.streams.add(stream);
        controller.enqueue(enc.encode(": live\n\n"));
      },
      cancel: () => this.drop(stream),
    });
    signal?.addEventListener("abort", () => this.drop(stream), { once: true });
    if (signal?.aborted) this.drop(stream); // the client left already
    // A new feed reads at once; a stream joining a feed gets its next push (at most a second away).
    if (fresh) void this.run(feed);
    return new Response(body, {
      headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" },
    });
  }

  /** Ends every stream (server shutdown): each gets an `end` event telling its page to reconnect. */
  close(): void {
    this.closed = true;
    const end = `event: end\ndata: ${JSON.stringify(errorBody("unavailable", "the server is shutting down: reconnect"))}\n\n`;
    for (const feed of [...this.feeds.values()]) for (const s of [...feed.streams]) this.end(s, end);
  }

  /** One round of a feed's reads, pushed to its streams; the next round a second after this one ends. */
  private async run(feed: Feed): Promise<void> {
    feed.timer = undefined;
    if (this.feeds.get(feed.key) !== feed) return;
    const call = this.call!;
    const answers = await Promise.all(
      feed.parts.map(async ([name, path]) => {
        try {
          const res = await call(new Request(ORIGIN + path, { headers: { authorization: feed.authorization } }));
          return { name, status: res.status, body: jsonValue(await res.text(), res.headers.get("content-type")?.includes("json") ?? false) };
        } catch (e) {
          return { name, status: 500, body: JSON.stringify(errorBody("internal", `console stream: ${(e as Error).message}`)) };
        }
      }),
    );
    if (this.feeds.get(feed.key) !== feed) return; // its last stream closed meanwhile
    const refused = answers.find((a) => a.status === 401);
    if (refused) {
      // The credential is no longer accepted (a key changed): no stream outlives it.
      const end = `event: end\ndata: ${refused.body}\n\n`;
      for (const s of [...feed.streams]) this.end(s, end);
      return;
    }
    const failed = answers.find((a) => a.status < 200 || a.status > 299);
    const event = failed
      ? `event: error\ndata: {"status":${failed.status},"part":${JSON.stringify(failed.name)},"body":${failed.body}}\n\n`
      : `event: data\ndata: {${answers.map((a) => `${JSON.stringify(a.name)}:${a.body}`).join(",")}}\n\n`;
    const now = Date.now();
    for (const s of [...feed.streams]) this.push(s, event, now);
    if (feed.streams.size > 0 && !this.closed) feed.timer = setTimeout(() => void this.run(feed), PUSH_INTERVAL_MS);
  }

  /** Writes `event` to a stream unless it is what the stream got last, or its reader is behind (it gets a later one). */
  private push(s: Stream, event: string, now: number): void {
    if ((s.controller.desiredSize ?? 1) <= 0) {
      s.behindSince ??= now;
      if (now - s.behindSince >= STALLED_MS) this.end(s);
      return;
    }
    s.behindSince = undefined;
    if (event === s.last) {
      if (now - s.lastWrite >= HEARTBEAT_MS) this.write(s, ": still live\n\n", now);
      return;
    }
    s.last = event;
    this.write(s, event, now);
  }

  private write(s: Stream, text: string, now: number): void {
    try {
      s.controller.enqueue(enc.encode(text));
      s.lastWrite = now;
    } catch {
      this.drop(s); // the response is gone
    }
  }

  /** Closes a stream, after a last event when given. */
  private end(s: Stream, last?: string): void {
    if (s.done) return;
    try {
      if (last) s.controller.enqueue(enc.encode(last));
      s.controller.close();
    } catch {}
    this.drop(s);
  }

  /** Forgets a stream (closed by either side); its feed goes with its last stream. */
  private drop(s: Stream | undefined): void {
    if (!s || s.done) return;
    s.done = true;
    const feed = s.feed;
    feed.streams.delete(s);
    this.total--;
    const n = (this.perCredential.get(feed.fingerprint) ?? 1) - 1;
    if (n > 0) this.perCredential.set(feed.fingerprint, n);
    else this.perCredential.delete(feed.fingerprint);
    if (feed.streams.size === 0) {
      clearTimeout(feed.timer);
      if (this.feeds.get(feed.key) === feed) this.feeds.delete(feed.key);
    }
  }
}
