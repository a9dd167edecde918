// Client text that Postgres cannot store is refused before it reaches the store: a NUL character (`\u0000`:
// neither `text` nor `jsonb` takes it), an unpaired UTF-16 surrogate (not valid UTF-8, refused by `jsonb`
// and `text`), and, in JSON values, a BigInt (a msgpack int64 beyond 2^53: JSON has no such number). One
// such row would fail the whole group-commit batch it landed in; here it is one `bad_request` (4002) for
// its sender, in every protocol.
import { fail } from "./errors.ts";

/** Why a string cannot be stored, or undefined when it can. */
function flaw(s: string): string | undefined {
  if (s.includes("\u0000")) return "a NUL character (\\u0000)";
  if (!s.isWellFormed()) return "an unpaired UTF-16 surrogate";
  return undefined;
}

/** Refuses a string Postgres cannot store (`what` names the field in the error). */
export function storableText(s: string | undefined | null, what: string): void {
  if (typeof s !== "string") return;
  const why = flaw(s);
  if (why) fail("bad_request", `${what} contains ${why}, which cannot be stored`);
}

/**
 * Refuses a JSON value Postgres cannot store: any string in it, object keys included, as storableText,
 * and BigInts. Iterative, so a deeply nested value cannot overflow the stack.
 */
export function storableJson(v: unknown, what: string): void {
  const todo: unknown[] = [v];
  while (todo.length) {
    const x = todo.pop();
    if (typeof x === "string") storableText(x, what);
    else if (typeof x === "bigint") fail("bad_request", `${what} holds an integer beyond ±2^53, which JSON cannot carry: send it as a string`);
    else if (x !== null && typeof x === "object") {
      if (Array.isArray(x)) {
        for (const y of x) todo.push(y);
      } else if (!ArrayBuffer.isView(x) && !(x instanceof Date)) {
        for (const k in x) {
          if (!Object.hasOwn(x, k)) continue;
          storableText(k, what);
          todo.push((x as Record<string, unknown>)[k]);
        }
      }
    }
  }
}
