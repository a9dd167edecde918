// The console's live streams (src/console/stream.ts) over a stand-in server API: one round of reads a second per
// page and key whatever the number of streams, pushes at most once a second and only of what changed, caps per
// key and per node, a key the API stops accepting ends its streams, and shutdown ends them all.
import { expect, test } from "bun:test";
import { ConsoleStreams, type Part, type Refusal } from "../../src/console/stream.ts";
import { readSse, type SseStream } from "../helpers/sse.ts";

const KEY = "apikey good";
const OTHER = "apikey other";
const PAGE: Part[] = [["x", "/api/x"]];

/** A server API answering `/api/x` with `{ n }` (n counting the reads; fixed with `still`), 401 to revoked keys. */
function api(opts: { still?: boolean } = {}) {
  const reads: { path: string; auth: string | null }[] = [];
  const revoked = new Set<string>();
  const call = async (req: Request) => {
    const auth = req.headers.get("authorization");
    reads.push({ path: new URL(req.url).pathname, auth });
    if (auth && revoked.has(auth)) return Response.json({ code: 4010, error: "unauthorized", message: "missing or wrong key" }, { status: 401 });
    return Response.json({ n: opts.still ? 0 : reads.length, path: new URL(req.url).pathname });
  };
  return { reads, revoked, call };
}

function open(s: ConsoleStreams, auth = KEY, parts: Part[] = PAGE): SseStream {
  const r = s.open(auth, parts);
  if (!(r instanceof Response)) throw new Error(`refused: ${r.message}`);
  return readSse(r);
}

test("streams of one page and key share one round of reads a second, and get each push at most once a second", async () => {
  const a = api();
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  s.serveWith(a.call);
  const streams = [open(s), open(s), open(s)];
  expect(s.feedCount).toBe(1);
  const got: number[][] = [[], [], []];
  for (let round = 0; round < 3; round++) {
    for (const [i, st] of streams.entries()) {
      const ev = await st.next(3000);
      expect(ev.event).toBe("data");
      got[i]!.push(ev.data.x.n);
    }
  }
  // Three rounds of reads (a fourth may have started), not three per stream; each stream saw the same ones.
  expect(a.reads.length).toBeLessThanOrEqual(4);
  expect(got[1]).toEqual(got[0]!);
  expect(got[2]).toEqual(got[0]!);
  expect(a.reads.every((r) => r.auth === KEY && r.path === "/api/x")).toBe(true);
  const at = streams[0]!.seen.map((e) => e.at);
  for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(990);
  // Another page, or another key, has its own feed.
  const other = [open(s, KEY, [["y", "/api/y"]]), open(s, OTHER)];
  expect(s.feedCount).toBe(3);
  expect((await other[0]!.next(3000)).data.y.path).toBe("/api/y");
  expect((await other[1]!.next(3000)).event).toBe("data");
  expect(a.reads.some((r) => r.auth === OTHER)).toBe(true);
  // A feed lives while a stream of it is open.
  for (const st of streams) await st.close();
  expect(s.feedCount).toBe(2);
  for (const st of other) await st.close();
  expect(s.feedCount).toBe(0);
  expect(s.size).toBe(0);
});

test("an unchanged page is not sent again", async () => {
  const a = api({ still: true });
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  let rounds = 0;
  let third: () => void;
  const thirdRound = new Promise<void>((r) => (third = r));
  s.serveWith(async (req) => {
    if (++rounds === 3) third();
    return a.call(req);
  });
  const st = open(s);
  expect((await st.next(3000)).data).toEqual({ x: { n: 0, path: "/api/x" } });
  await thirdRound;
  expect(st.seen.length).toBe(1);
  // A stream joining later gets it (once).
  const late = open(s);
  expect((await late.next(3000)).data).toEqual({ x: { n: 0, path: "/api/x" } });
  await Promise.all([st.close(), late.close()]);
});

test("streams are capped per key and per node; a closed stream frees its place", async () => {
  const s = new ConsoleStreams({ max: 3, perCredential: 2 });
  s.serveWith(api().call);
  const mine = [open(s), open(s)];
  const third = s.open(KEY, PAGE) as Refusal;
  expect(third).toMatchObject({ status: 429, error: "rate_limited" });
  expect(third.message).toContain("CONSOLE_STREAMS_PER_KEY");
  const theirs = open(s, OTHER);
  const fourth = s.open("apikey third", PAGE) as Refusal;
  expect(fourth).toMatchObject({ status: 429, error: "rate_limited" });
  expect(fourth.message).toContain("CONSOLE_STREAMS_MAX");
  expect(s.size).toBe(3);
  await mine[0]!.close();
  expect(s.size).toBe(2);
  const again = open(s);
  expect((await again.next(3000)).event).toBe("data");
  await Promise.all([mine[1]!.close(), theirs.close(), again.close()]);
  expect(s.size).toBe(0);
});

test("a key the server API stops accepting ends its streams; other keys' go on", async () => {
  const a = api();
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  s.serveWith(a.call);
  const doomed = [open(s), open(s, KEY, [["y", "/api/y"]])];
  const fine = open(s, OTHER);
  for (const st of doomed) expect((await st.next(3000)).event).toBe("data");
  expect((await fine.next(3000)).event).toBe("data");
  a.revoked.add(KEY);
  for (const st of doomed) {
    const end = await st.next(3000);
    expect(end).toMatchObject({ event: "end", data: { error: "unauthorized" } });
    await st.ended; // closed by the server
  }
  expect((await fine.next(3000)).event).toBe("data");
  expect(s.size).toBe(1);
  expect(s.feedCount).toBe(1);
  await fine.close();
});

test("a failed read is an error event and the stream goes on", async () => {
  let fail = true;
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  s.serveWith(async () => (fail ? Response.json({ code: 4040, error: "not_found", message: "no user z" }, { status: 404 }) : Response.json({ ok: true })));
  const st = open(s);
  expect(await st.next(3000)).toMatchObject({ event: "error", data: { status: 404, part: "x", body: { error: "not_found", message: "no user z" } } });
  fail = false;
  expect(await st.next(3000)).toMatchObject({ event: "data", data: { x: { ok: true } } });
  await st.close();
});

test("closing (server shutdown) ends every stream with `unavailable` and refuses new ones", async () => {
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  s.serveWith(api().call);
  const streams = [open(s), open(s, OTHER)];
  for (const st of streams) expect((await st.next(3000)).event).toBe("data");
  s.close();
  for (const st of streams) {
    expect(await st.next(3000)).toMatchObject({ event: "end", data: { error: "unavailable" } });
    await st.ended;
  }
  expect(s.size).toBe(0);
  expect(s.feedCount).toBe(0);
  expect(s.open(KEY, PAGE)).toMatchObject({ status: 503, error: "unavailable" });
});

test("a stream whose request was aborted already takes no place and starts no reads", async () => {
  const a = api();
  const s = new ConsoleStreams({ max: 10, perCredential: 10 });
  s.serveWith(a.call);
  const gone = new AbortController();
  gone.abort();
  expect(s.open(KEY, PAGE, gone.signal)).toBeInstanceOf(Response);
  expect(s.size).toBe(0);
  expect(s.feedCount).toBe(0);
  // Aborted later: the same.
  const leaving = new AbortController();
  const st = open(s);
  expect(s.open(KEY, PAGE, leaving.signal)).toBeInstanceOf(Response);
  expect(s.size).toBe(2);
  leaving.abort();
  expect(s.size).toBe(1);
  await st.close();
  expect(a.reads.length).toBeLessThanOrEqual(1);
});
