// Runs a protocol's mutated frames against a live server, one frame at a time per connection (several
// connections, each its own user, in parallel) and checks each: the documented answer arrives within a bounded
// wait, no close but the documented ones, no internal error, the server process stays up. Failures carry the
// seed and the frame so a run can be replayed (FUZZ_SEED=<seed>).
import type { Subprocess } from "bun";
import { Conn } from "./conn.ts";
import { show, type Wire } from "./mutate.ts";
import { Rng } from "./prng.ts";

export interface Protocol {
  name: string;
  /** a fresh connection for worker `i` (each worker is its own user) */
  connect(i: number): Promise<Conn>;
  generate(r: Rng): Wire;
  /** fills in what belongs to worker `i`'s connection (its user id, its token) before the frame is sent */
  prepare?(w: Wire, i: number): Wire;
  /** the predicate of this frame's answer; undefined when the protocol documents none */
  answer(w: Wire, c: Conn): ((f: any) => boolean) | undefined;
  /** close codes documented right after this frame and its answer (e.g. a refused auth), if any */
  closeAfter?(w: Wire, answer: any): number[] | undefined;
  /** an answer (or any frame) that shows a server fault: an internal error */
  fault(f: any): string | undefined;
  /**
   * For a protocol whose answers carry no request id (rooms): a probe frame with a unique answer, sent every
   * SETTLE_EVERY frames, and the predicate of that answer. A frame that draws more frames than the one taken as
   * its answer would otherwise make later frames take stale answers, drift ahead of the server and pipeline
   * past its in-flight cap; once the probe's answer is in, everything sent before it has been handled.
   */
  settle?(marker: string): { wire: Wire; answer: (f: any) => boolean };
}

/** Frames per connection between two settle probes (well under the server's 64 frames in flight). */
const SETTLE_EVERY = 16;

export interface Failure {
  protocol: string;
  index: number;
  frame: string;
  problem: string;
}

export interface FuzzResult {
  failures: Failure[];
  sent: number;
  answered: number;
  reconnects: number;
  ms: number;
}

/** A run stops after this many failures (FUZZ_MAX_FAILURES), so a broken server fails fast. */
const MAX_FAILURES = Number(process.env.FUZZ_MAX_FAILURES ?? 25);
/** FUZZ_EXCLUDE=<regex>: frames whose report text matches are not sent (to look past a known failure locally). */
const EXCLUDE = process.env.FUZZ_EXCLUDE ? new RegExp(process.env.FUZZ_EXCLUDE) : undefined;

export async function fuzz(
  p: Protocol,
  o: { seed: number; frames: number; waitMs: number; workers: number; maxFrameBytes: number; proc?: Subprocess; log?: string[] },
): Promise<FuzzResult> {
  const rng = new Rng(o.seed).fork(p.name);
  const wires: Wire[] = Array.from({ length: o.frames }, () => {
    const w = p.generate(rng);
    // What a WebSocket client can put on the wire: text is sent as UTF-8 (lone surrogates become U+FFFD).
    return "text" in w ? { text: w.text.toWellFormed() } : w;
  });
  const res: FuzzResult = { failures: [], sent: 0, answered: 0, reconnects: 0, ms: 0 };
  const t0 = performance.now();
  let crashed = false;
  void o.proc?.exited.then((code) => {
    crashed = true;
    res.failures.push({ protocol: p.name, index: -1, frame: "", problem: `the server process exited with ${code}` });
  });
  const fail = (index: number, problem: string) => {
    res.failures.push({ protocol: p.name, index, frame: show(wires[index]!), problem });
  };
  const size = (w: Wire) => ("text" in w ? Buffer.byteLength(w.text) : w.binary.length);

  // An error logged by the server while a frame was handled is a fault too (a protocol that answers an
  // internal error with an ordinary refusal code shows it only there). With parallel connections the frame
  // named may be a neighbour's: replay with FUZZ_WORKERS=1 to pin it.
  let logSeen = o.log?.length ?? 0;
  const logFaults = (k: number) => {
    if (!o.log) return;
    const fresh = o.log.slice(logSeen).filter((l) => / error \[/.test(l));
    logSeen = o.log.length;
    for (const l of fresh) fail(k, `the server logged an error: ${l.slice(0, 400)}`);
  };

  async function worker(i: number) {
    let c = await p.connect(i);
    /** the last frame sent, and whether the connection may be closed now (by us, or as documented) */
    let prev = -1;
    let mayClose = false;
    let sinceSettle = 0;
    for (let k = i; k < wires.length; k += o.workers) {
      if (crashed || res.failures.length >= MAX_FAILURES) return;
      if (p.prepare) wires[k] = p.prepare(wires[k]!, i);
      const w = wires[k]!;
      if (EXCLUDE?.test(show(w, 1e9))) continue;
      if (!c.open) {
        if (!mayClose && prev >= 0) fail(prev, `connection closed with ${c.closeCode} after this frame (no close documented)`);
        c = await p.connect(i);
        res.reconnects++;
      }
      for (const f of c.frames) {
        const bad = p.fault(f);
        if (bad && prev >= 0) fail(prev, `${bad} (came after this frame's answer): ${JSON.stringify(f).slice(0, 300)}`);
      }
      c.frames = [];
      if (p.settle && c.open && ++sinceSettle >= SETTLE_EVERY) {
        sinceSettle = 0;
        const probe = p.settle(`settle-${k}`);
        c.send(probe.wire);
        const out = await c.wait(probe.answer, o.waitMs);
        if ("timeout" in out) fail(prev, `no answer to a settle probe within ${o.waitMs} ms after this frame`);
        for (const f of c.frames) {
          const bad = p.fault(f);
          if (bad && prev >= 0) fail(prev, `${bad} (came after this frame's answer): ${JSON.stringify(f).slice(0, 300)}`);
        }
        c.frames = [];
        if (!c.open) continue;
      }
      prev = k;
      mayClose = false;
      if (size(w) > o.maxFrameBytes) {
        c.send(w);
        res.sent++;
        const code = await c.closed(o.waitMs);
        if (code !== 1009) fail(k, `a frame over MAX_FRAME_BYTES: expected close 1009, got ${code}`);
        mayClose = true;
        continue;
      }
      const pred = p.answer(w, c);
      c.send(w);
      res.sent++;
      if (!pred) continue;
      const out = await c.wait(pred, o.waitMs);
      if ("timeout" in out) {
        fail(k, `no answer within ${o.waitMs} ms`);
        c.close();
        mayClose = true;
        continue;
      }
      if ("closed" in out) {
        const ok = p.closeAfter?.(w, undefined);
        if (!ok?.includes(out.closed)) fail(k, `connection closed with ${out.closed} instead of an answer`);
        mayClose = true;
        continue;
      }
      res.answered++;
      const bad = p.fault(out.frame);
      if (bad) fail(k, `${bad}: ${JSON.stringify(out.frame).slice(0, 300)}`);
      logFaults(k);
      const closes = p.closeAfter?.(w, out.frame);
      if (closes) {
        const code = await c.closed(o.waitMs);
        if (!closes.includes(code as number)) fail(k, `expected close ${closes.join(" or ")} after ${JSON.stringify(out.frame).slice(0, 200)}, got ${code}`);
        mayClose = true;
      }
    }
    // The last frame, if unanswered by design, must not have closed the connection either.
    if (!c.open && !mayClose && prev >= 0) fail(prev, `connection closed with ${c.closeCode} after this frame (no close documented)`);
    c.close();
  }

  await Promise.all(Array.from({ length: o.workers }, (_, i) => worker(i)));
  logFaults(wires.length - 1);
  res.ms = Math.round(performance.now() - t0);
  return res;
}

/** Prints a run's numbers and, on failure, each failing frame with the seed to replay it. */
export function report(name: string, seed: number, frames: number, r: FuzzResult, serverLog: string[] = []): void {
  console.log(`fuzz ${name}: seed ${seed}, ${r.sent}/${frames} frames sent, ${r.answered} answers awaited, ${r.reconnects} reconnects, ${r.ms} ms`);
  if (!r.failures.length) return;
  console.error(`fuzz ${name} FAILED (replay: FUZZ_SEED=${seed} FUZZ_FRAMES=${frames} npm test -- test/fuzz/${name.split("/")[0]})`);
  for (const f of r.failures) console.error(`  #${f.index} ${f.problem}\n      frame: ${f.frame}`);
  const kinds = new Map<string, number>();
  for (const f of r.failures) {
    const k = f.problem
      .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z /, "")
      .replace(/(session|from) \S+/g, "$1 …")
      .replace(/"id":("[^"]*"|[^,}]*),?/g, "")
      .slice(0, 110);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  console.error(`  by kind:\n    ${[...kinds].map(([k, n]) => `${n} × ${k}`).join("\n    ")}`);
  const errs = serverLog.filter((l) => /error|Error/.test(l)).slice(-10);
  if (errs.length) console.error(`  server log:\n    ${errs.join("\n    ").slice(0, 4000)}`);
}
