// Mutations of valid frames: drop, duplicate and retype fields, hostile numbers and strings, prototype names
// as keys and values, deep nesting, long strings, broken JSON, binary garbage, msgpack BigInt and ext types.
import { pack, unpack } from "msgpackr";
import type { Rng } from "./prng.ts";

export const PROTO_NAMES = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "prototype", "__defineGetter__", "isPrototypeOf"];

export const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff",
  "x\ud83d",
  "😀",
  "NaN",
  "Infinity",
  "-Infinity",
  "1e300",
  "-1",
  "0",
  "1.5",
  "null",
  "undefined",
  "true",
  "[]",
  "{}",
  "%00",
  "../../etc/passwd",
  "' or 1=1 --",
  "<script>alert(1)</script>",
  "d:a:b",
  "g:x",
  "r:x",
  "c:desk:x",
  "g:rooms:x",
  "\n",
  "\\",
  '"',
  ...PROTO_NAMES,
];

/** Text that storage and encoders choke on: NUL, lone surrogates, prototype names, long and non-BMP text. */
export const HOSTILE_TEXT = ["a\u0000b", "\u0000", "\ud800", "x\udfff", "\udc00\ud800", "__proto__", "constructor", "toString", "😀", "a".repeat(300), " ", "\u2028"];

export const NASTY_NUMBERS = [0, -0, -1, 1, 2, 1.5, -1.5, 0.1, 1e300, -1e300, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 2 ** 63, 2 ** 64, Number.MAX_VALUE, Number.MIN_VALUE, 1e-300];

export const BROKEN_JSON = ["{", "}", '{"t":}', "nul", '"str"', "[1,2", "{'t':'ping'}", '{"t":"ping",}', "{}", "[]", "0", "null", "true", "1e999", '{"a":1e999}', '{"t":"\\ud800"}', "\u0000", "{\u0000}", " ", '{"t":"ping"}garbage', "\ufeff{}"];

/** A hostile value: a number, string, long string, array, object, nesting, or one of the protocol's own values. */
export function nastyValue(r: Rng, own: readonly unknown[] = [], depth = 0): unknown {
  switch (r.int(depth > 2 ? 8 : 12)) {
    case 0:
    case 1:
      return r.pick(NASTY_NUMBERS);
    case 2:
    case 3:
      return r.pick(NASTY_STRINGS);
    case 4:
      return own.length ? r.pick(own) : r.pick(NASTY_STRINGS);
    case 5:
      return r.pick([null, true, false]);
    case 6:
      return "a".repeat(r.pick([129, 257, 2049, 10_001, 30_000]));
    case 7:
      return r.int(2) ? String(r.pick(NASTY_NUMBERS)) : -r.int(1_000_000);
    case 8:
      return Array.from({ length: r.int(4) }, () => nastyValue(r, own, depth + 1));
    case 9: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--) setOwn(o, r.chance(0.5) ? r.pick(PROTO_NAMES) : r.pick(NASTY_STRINGS), nastyValue(r, own, depth + 1));
      return o;
    }
    case 10:
      return deep(r.pick([50, 500, 3000]), r.chance(0.5));
    default:
      return r.pick(own.length ? own : NASTY_STRINGS);
  }
}

/** `n` levels of arrays or objects. */
export function deep(n: number, arrays: boolean): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = arrays ? [v] : { a: v };
  return v;
}

/** Sets an own, enumerable property even for `__proto__` (so JSON.stringify and pack write it). */
export function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

export type Wire = { text: string } | { binary: Uint8Array };

export interface Mutator {
  /** valid frames to start from */
  seeds: readonly Record<string, unknown>[];
  /** field names of the protocol (added as keys) */
  keys: readonly string[];
  /** values of the protocol (user ids, types, codes) used as field values */
  values: readonly unknown[];
  /** the frame's type field(s): retyped more often */
  typeKeys: readonly string[];
}

/** A mutated object (or non-object) from one of the seeds: 0-3 structural mutations. */
export function mutateObject(r: Rng, m: Mutator): unknown {
  const f: Record<string, unknown> = structuredClone(r.pick(m.seeds));
  const n = r.chance(0.1) ? 0 : 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const keys = Object.keys(f);
    const k = keys.length ? r.pick(keys) : "x";
    switch (r.int(11)) {
      case 9:
      case 10: {
        // One text field made hostile, the rest of the frame left valid: reaches the store and the encoders.
        const texts = keys.filter((x) => typeof f[x] === "string");
        if (texts.length) f[r.pick(texts)] = r.pick(HOSTILE_TEXT);
        break;
      }
      case 0:
        delete f[k];
        break;
      case 1:
      case 2:
        f[k] = nastyValue(r, m.values);
        break;
      case 3:
        setOwn(f, r.chance(0.4) ? r.pick(PROTO_NAMES) : r.chance(0.5) ? r.pick(m.keys) : r.pick(NASTY_STRINGS), nastyValue(r, m.values));
        break;
      case 4: {
        const t = r.pick(m.typeKeys);
        f[t] = r.chance(0.5) ? r.pick(PROTO_NAMES) : nastyValue(r, m.values);
        break;
      }
      case 5: {
        const other = r.pick(keys.length ? keys : ["x"]);
        [f[k], f[other]] = [f[other], f[k]];
        break;
      }
      case 6:
        f[k] = r.chance(0.5) ? structuredClone(f) : deep(r.pick([20, 200, 2000]), r.chance(0.5));
        break;
      case 7:
        // A field of a type its neighbour has (a number where a string goes, an object where a number goes).
        f[k] = typeof f[k] === "string" ? r.pick(NASTY_NUMBERS) : typeof f[k] === "number" ? String(f[k]) : r.pick([{}, [], "", 0]);
        break;
      default:
        if (r.chance(0.3)) return r.pick([[f], 0, "x", null, true, [], 1e300]);
        f[k] = r.pick(m.values.length ? m.values : NASTY_STRINGS);
    }
  }
  return f;
}

/** Serialises with text-level damage now and then: truncation, stray bytes, duplicated keys, broken JSON. */
export function mutateJson(r: Rng, m: Mutator): Wire {
  const roll = r.int(100);
  if (roll < 3) return { text: r.pick(BROKEN_JSON) };
  if (roll < 5) return { binary: r.bytes(1 + r.int(200)) };
  const obj = mutateObject(r, m);
  let text = JSON.stringify(obj) ?? "null";
  if (roll < 10) {
    // a duplicated key: the later one wins in JSON.parse
    const t = r.pick(m.typeKeys);
    const v = JSON.stringify(r.chance(0.5) ? r.pick(PROTO_NAMES) : nastyValue(r, m.values)) ?? "null";
    text = r.chance(0.5) && text.startsWith("{") ? `{"${t}":${v},${text.slice(1)}` : text.endsWith("}") && text.length > 2 ? `${text.slice(0, -1)},"${t}":${v}}` : text;
  } else if (roll < 13) {
    text = text.slice(0, r.int(text.length + 1));
  } else if (roll < 16) {
    const at = r.int(text.length + 1);
    text = text.slice(0, at) + r.pick(["\u0000", "\\", '"', "{", "]", ",", "\ud800", "\ufffd", "\u2028"]) + text.slice(at);
  }
  return { text };
}

/** msgpack frames: packed mutations, BigInts, ext types, raw garbage. */
export function mutateMsgpack(r: Rng, m: Mutator): Wire {
  const roll = r.int(100);
  if (roll < 6) return { binary: r.bytes(1 + r.int(120)) };
  if (roll < 14) {
    // A map {t: <ext>} or {t: seed type, id: <ext>}: fixext 1/2/4/8/16, ext 8, random type, random data.
    const type = r.int(256);
    const len = r.pick([1, 2, 4, 8, 16, 3, 0]);
    const head = ({ 1: [0xd4], 2: [0xd5], 4: [0xd6], 8: [0xd7], 16: [0xd8] } as Record<number, number[]>)[len] ?? [0xc7, len];
    const ext = [...head, type, ...r.bytes(len)];
    const key = (s: string) => [0xa0 | s.length, ...Buffer.from(s)];
    const seed = r.pick(m.seeds);
    const t = String(seed[m.typeKeys[0]!] ?? "ping");
    const body = r.chance(0.5) ? [0x81, ...key(m.typeKeys[0]!), ...ext] : [0x82, ...key(m.typeKeys[0]!), ...key(t.slice(0, 31)), ...key("id"), ...ext];
    return { binary: new Uint8Array(body) };
  }
  if (roll < 20) {
    const f = structuredClone(r.pick(m.seeds)) as Record<string, unknown>;
    const k = r.pick(Object.keys(f));
    f[k] = r.pick([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, 0n, -1n]);
    try {
      return { binary: pack(f) };
    } catch {
      return { binary: r.bytes(8) };
    }
  }
  const obj = mutateObject(r, m);
  let bin: Uint8Array;
  try {
    bin = pack(obj);
  } catch {
    bin = r.bytes(16);
  }
  if (roll < 25) bin = bin.subarray(0, r.int(bin.length + 1));
  else if (roll < 28 && bin.length) {
    bin = Uint8Array.from(bin);
    bin[r.int(bin.length)] = r.int(256);
  }
  return { binary: bin };
}

/** The frame for a report: text as JSON text, binary as base64. */
export function show(w: Wire, max = 1500): string {
  if ("text" in w) {
    const s = JSON.stringify(w.text);
    return `text ${s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s}`;
  }
  const b = Buffer.from(w.binary).toString("base64");
  let as = "";
  try {
    // what msgpack makes of it, for reading (BigInts shown as "<n>n")
    as = ` = msgpack ${JSON.stringify(unpack(w.binary), (_k, v) => (typeof v === "bigint" ? `${v}n` : v))}`.slice(0, max);
  } catch {}
  return `binary(base64) ${b.length > max ? `${b.slice(0, max)}…(${w.binary.length} bytes)` : b}${as}`;
}
