// Many WebSocket connections in one test process, cheaply: no per-frame callbacks for the test to write,
// just "send this to everyone" and "resolve when every member has seen a frame like this".
export class Crowd {
  /** Frames each member received, in order (JSON-parsed). */
  readonly frames: any[][];
  private waits: { pred: (f: any) => boolean; left: Set<number>; resolve: () => void }[] = [];
  readonly closes: Promise<number>[];
  readonly sockets: WebSocket[];

  private constructor(urls: string[]) {
    this.sockets = [];
    this.frames = urls.map(() => []);
    this.closes = [];
  }

  /** Opens one connection per URL, a few dozen at a time, and waits until each is open. */
  static async open(urls: string[], batch = 50): Promise<Crowd> {
    const crowd = new Crowd(urls);
    for (let i = 0; i < urls.length; i += batch) {
      const part = urls.slice(i, i + batch).map((u, k) => crowd.attach(new WebSocket(u), i + k));
      await Promise.all(
        part.map(
          (ws) =>
            new Promise<void>((resolve, reject) => {
              ws.onopen = () => resolve();
              ws.onerror = () => reject(new Error("cannot connect"));
            }),
        ),
      );
    }
    return crowd;
  }

  private attach(ws: WebSocket, i: number): WebSocket {
    this.sockets[i] = ws;
    this.closes[i] = new Promise<number>((r) => ws.addEventListener("close", (e) => r(e.code)));
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data as string);
      this.frames[i]!.push(f);
      for (const w of this.waits) {
        if (w.left.has(i) && w.pred(f)) {
          w.left.delete(i);
          if (w.left.size === 0) w.resolve();
        }
      }
      if (this.waits.some((w) => w.left.size === 0)) this.waits = this.waits.filter((w) => w.left.size > 0);
    };
    return ws;
  }

  get size(): number {
    return this.sockets.length;
  }

  send(frame: unknown, i?: number): void {
    const text = JSON.stringify(frame);
    if (i !== undefined) this.sockets[i]!.send(text);
    else for (const ws of this.sockets) ws.send(text);
  }

  /** Resolves once every member (or those in `members`) has received a frame matching `pred`, counting frames already received. */
  all(pred: (f: any) => boolean, timeoutMs = 15_000, members?: number[]): Promise<void> {
    const left = new Set(members ?? this.sockets.map((_, i) => i));
    for (const i of [...left]) if (this.frames[i]!.some(pred)) left.delete(i);
    if (left.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${left.size} of ${this.size} members saw no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waits.push({
        pred,
        left,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Sends a request with its own id to every member and waits for each reply. */
  async requestAll(frame: Record<string, unknown>, members?: number[]): Promise<any[]> {
    const id = `crowd${++reqs}`;
    const who = members ?? this.sockets.map((_, i) => i);
    for (const i of who) this.send({ ...frame, id }, i);
    await this.all((f) => f.id === id, 15_000, who);
    return who.map((i) => this.frames[i]!.find((f) => f.id === id));
  }

  close(): void {
    for (const ws of this.sockets) ws.close();
  }
}

let reqs = 0;
