// Desk frames in (docs/desk.md): JSON objects whose fields are read leniently (numbers also from numeric strings).
export type Fields = Record<string, unknown>;

export const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : typeof v === "number" ? String(v) : undefined);
export const int = (v: unknown) => (typeof v === "number" && Number.isSafeInteger(v) ? v : typeof v === "string" && /^-?\d{1,15}$/.test(v) ? Number(v) : undefined);

/** A frame's fields, or undefined when it is not a JSON object. */
export function decode(data: string | Buffer): Fields | undefined {
  try {
    const f = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
    return typeof f === "object" && f !== null && !Array.isArray(f) ? (f as Fields) : undefined;
  } catch {
    return undefined;
  }
}

/** Only the api_key of a frame (to answer one that is not handled): null when it has none or is unreadable. */
export function apiKeyOf(data: string | Buffer): unknown {
  try {
    const f = JSON.parse(typeof data === "string" ? data : data.toString("utf8"));
    return f && typeof f === "object" ? (f.api_key ?? null) : null;
  } catch {
    return null;
  }
}
