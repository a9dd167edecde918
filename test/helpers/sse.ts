// Reads a server-sent-event stream (the console's live stream) as an awaited queue of events: `await s.next()`.
export interface SseEvent {
  event: string;
  /** the data, parsed as JSON */
  data: any;
  /** performance.now() when it arrived */
  at: number;
}

export interface SseStream {
  /** The next event (comments skipped); rejects after `ms` without one, or when the stream ends first. */
  next(ms?: number): Promise<SseEvent>;
  /** Resolves when the server closes the stream. */
  ended: Promise<void>;
  /** Every event received so far. */
  seen: SseEvent[];
  /** Closes the stream from this side. */
  close(): Promise<void>;
}

export function readSse(res: Response): SseStream {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const queue: SseEvent[] = [];
  const seen: SseEvent[] = [];
  const waiters: { resolve: (e: SseEvent) => void; reject: (e: Error) => void }[] = [];
  let over = false;
  const ended = (async () => {
    let buf = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += value;
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const c = line.indexOf(":");
            const field = c < 0 ? line : line.slice(0, c);
            const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
            if (field === "event") event = v;
            else if (field === "data") data.push(v);
          }
          if (!data.length) continue;
          const ev = { event, data: JSON.parse(data.join("\n")), at: performance.now() };
          seen.push(ev);
          const w = waiters.shift();
          if (w) w.resolve(ev);
          else queue.push(ev);
        }
      }
    } catch {
      // closed from this side
    } finally {
      over = true;
      for (const w of waiters.splice(0)) w.reject(new Error("the stream ended"));
    }
  })();
  return {
    seen,
    ended,
    next(ms = 5000) {
      const ev = queue.shift();
      if (ev) return Promise.resolve(ev);
      if (over) return Promise.reject(new Error("the stream ended"));
      return new Promise<SseEvent>((resolve, reject) => {
        const w = {
          resolve: (e: SseEvent) => (clearTimeout(timer), resolve(e)),
          reject: (e: Error) => (clearTimeout(timer), reject(e)),
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no event within ${ms} ms`));
        }, ms);
        waiters.push(w);
      });
    },
    async close() {
      await reader.cancel().catch(() => {});
      await ended;
    },
  };
}

/** Opens `url` as an event stream with `Authorization: <authorization>`: the response's status, and its events when 200. */
export async function openSse(url: string, authorization?: string): Promise<{ status: number; body?: any; stream?: SseStream }> {
  const res = await fetch(url, { headers: authorization ? { authorization } : {} });
  if (res.status !== 200) return { status: res.status, body: await res.json().catch(() => undefined) };
  return { status: 200, stream: readSse(res) };
}
