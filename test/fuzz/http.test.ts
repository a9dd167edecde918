// Fuzz of every HTTP route: the routes come from the server's own OpenAPI document (/api/* with and without the
// API key, /im/vanke/*, desk and rooms-protocol records, presence) plus /healthz, /metrics, /openapi and paths
// that do not exist. Requests are valid ones (built from each route's schema) mutated: wrong methods, hostile
// path parameters and query values, missing, wrong or foreign credentials, wrong content types, mutated and
// broken bodies. No answer may be a 5xx other than a documented 503, the connection must not break, the process
// stays up, and a normal request is served afterwards.
// Long run: FUZZ_FRAMES=100000 FUZZ_SEED=123 npm test -- test/fuzz
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { API_KEY } from "../helpers/server.ts";
import type { NodeProc } from "../helpers/procs.ts";
import { BROKEN_JSON, mutateObject, NASTY_STRINGS, nastyValue, PROTO_NAMES, show } from "./lib/mutate.ts";
import { fuzzSettings, Rng } from "./lib/prng.ts";
import { CI_FRAMES, fuzzTarget, tokensFor } from "./lib/target.ts";

let node: NodeProc;
let tokens: Map<string, string>;
const { seed, frames: requests } = fuzzSettings(CI_FRAMES);
const USERS = ["hz0", "hz1", "hz2"];
const VALUES = [...USERS, "team", "live1", "sales", "default", "hours", "c1", "d:hz0:hz1", "g:team", "r:live1", "host", "user"];
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];

interface Route {
  method: string;
  path: string;
  query: { name: string; schema: any }[];
  body?: any;
}

/** A valid value for a (TypeBox-made) JSON schema: enough to pass the route's validation most of the time. */
function valid(r: Rng, s: any, depth = 0): unknown {
  if (!s || depth > 4) return undefined;
  if (s.enum) return r.pick(s.enum);
  if (s.const !== undefined) return s.const;
  if (s.anyOf || s.oneOf) return valid(r, (s.anyOf ?? s.oneOf).find((x: any) => x.format === undefined) ?? (s.anyOf ?? s.oneOf)[0], depth);
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  switch (type) {
    case "object": {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries<any>(s.properties ?? {})) if (s.required?.includes(k) || r.chance(0.5)) o[k] = valid(r, v, depth + 1);
      return o;
    }
    case "array":
      return Array.from({ length: Math.max(s.minItems ?? 0, 1) }, () => valid(r, s.items, depth + 1));
    case "integer":
    case "number":
      return Math.max(s.minimum ?? 0, Math.min(s.maximum ?? 60, 1 + r.int(60)));
    case "boolean":
      return r.chance(0.5);
    case "null":
      return null;
    default:
      return s.minLength > 10 ? "x".repeat(s.minLength) : r.pick(VALUES);
  }
}

function routesOf(doc: any): Route[] {
  const out: Route[] = [];
  for (const [path, ops] of Object.entries<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(ops)) {
      out.push({
        method: method.toUpperCase(),
        path,
        query: (op.parameters ?? []).filter((p: any) => p.in === "query"),
        body: op.requestBody?.content?.["application/json"]?.schema,
      });
    }
  }
  out.push({ method: "GET", path: "/openapi", query: [] }, { method: "GET", path: "/openapi/json", query: [] }, { method: "GET", path: "/nope/{id}", query: [] });
  return out;
}

const PATH_VALUES = ["%00", "%ZZ", "..", "%2e%2e", "%2F", "a%00b", "%ED%A0%80", "%F0%9F%98%80", "x".repeat(300), "-1", "1e300", "null", "d%3Aa%3Ab", ...PROTO_NAMES];

function request(r: Rng, routes: Route[]): { method: string; url: string; headers: Record<string, string>; body?: string | Uint8Array; what: string } {
  const route = r.pick(routes);
  const method = r.chance(0.85) ? route.method : r.pick(METHODS);
  const path = route.path.replace(/\{[^}]+\}/g, () =>
    r.chance(0.5) ? r.pick(VALUES) : r.chance(0.5) ? r.pick(PATH_VALUES) : encodeURIComponent(text(nastyValue(r, VALUES)).slice(0, 500).toWellFormed()),
  );
  const q = new URLSearchParams();
  for (const p of route.query) if (r.chance(0.6)) q.set(p.name, r.chance(0.5) ? text(valid(r, p.schema)) : text(nastyValue(r, VALUES)).slice(0, 2000));
  if (r.chance(0.2)) q.set(r.pick([...PROTO_NAMES, "token", "limit", "users"]), text(nastyValue(r, VALUES)).slice(0, 500));
  const qs = q.size ? `?${q}` : "";
  const headers: Record<string, string> = {};
  const auth = r.int(10);
  if (auth < 4) headers.authorization = `apikey ${API_KEY}`;
  else if (auth === 4) headers.authorization = "apikey wrong";
  else if (auth === 5) headers.authorization = `Bearer ${tokens.get(r.pick(USERS))}`;
  else if (auth === 6) headers.authorization = r.pick(["Bearer x.y.z", "apikey", "Basic YTpi", `apikey ${API_KEY}\u0000`.replace("\u0000", "%00"), "bearer "]);
  const ct = r.int(10);
  if (ct < 7) headers["content-type"] = "application/json";
  else if (ct === 7) headers["content-type"] = r.pick(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/octet-stream"]);
  let body: string | Uint8Array | undefined;
  if (method !== "GET" && method !== "HEAD") {
    const roll = r.int(20);
    if (roll === 0) body = r.pick(BROKEN_JSON);
    else if (roll === 1) body = r.bytes(1 + r.int(300));
    else if (roll === 2) body = JSON.stringify({ x: "y".repeat(r.pick([1000, 100_000, 1_000_000])) });
    else if (roll === 3) body = "";
    else {
      const seedBody = (route.body ? valid(r, route.body) : {}) as Record<string, unknown>;
      if (seedBody && typeof seedBody === "object" && route.path.startsWith("/im/vanke") && r.chance(0.5)) seedBody.token = tokens.get(r.pick(USERS));
      const b = r.chance(0.3) ? seedBody : mutateObject(r, { seeds: [seedBody ?? {}], keys: Object.keys(route.body?.properties ?? {}), values: VALUES, typeKeys: Object.keys(seedBody ?? { x: 1 }) });
      body = JSON.stringify(b) ?? "null";
    }
  }
  const what = `${method} ${decodeURIComponentSafe(path)}${qs} auth=${JSON.stringify(headers.authorization ?? null).slice(0, 40)} ct=${headers["content-type"] ?? "-"} body=${body === undefined ? "-" : show(typeof body === "string" ? { text: body } : { binary: body }, 600)}`;
  return { method, url: `${node.url}${path}${qs}`, headers, body, what };
}

beforeAll(async () => {
  node = await fuzzTarget("http");
  tokens = await tokensFor(node, USERS);
  expect((await node.api("/api/groups", { id: "team", kind: "interest", owner: "hz0", members: USERS })).status).toBe(200);
  expect((await node.api("/api/desk/groups/sales", { name: "Sales" }, "PUT")).status).toBe(200);
}, 30_000);

afterAll(() => {
  node?.proc.kill("SIGKILL");
});

describe(`HTTP fuzz (seed ${seed}, ${requests} requests)`, () => {
  test("no mutated request gets a 5xx (but a documented 503) or breaks the connection; the process stays up", async () => {
    const doc = await (await fetch(`${node.url}/openapi/json`)).json();
    const routes = routesOf(doc);
    expect(routes.length).toBeGreaterThan(40);
    const rng = new Rng(seed).fork("http");
    const all = Array.from({ length: requests }, () => request(rng, routes));
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    const t0 = performance.now();
    let next = 0;
    async function worker() {
      while (next < all.length && failures.length < Number(process.env.FUZZ_MAX_FAILURES ?? 25) && node.proc.exitCode === null) {
        const k = next++;
        const q = all[k]!;
        try {
          const res = await fetch(q.url, { method: q.method, headers: q.headers, body: q.body as BodyInit | undefined, signal: AbortSignal.timeout(10_000) });
          // An event stream (the console's live stream) does not end: its headers are the answer.
          if (res.headers.get("content-type")?.startsWith("text/event-stream")) await res.body?.cancel();
          else await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status >= 500 && res.status !== 503) failures.push(`#${k} HTTP ${res.status}: ${q.what}`);
        } catch (e) {
          failures.push(`#${k} ${(e as Error).message}: ${q.what}`);
        }
      }
    }
    await Promise.all(Array.from({ length: 4 }, worker));
    const errs = node.log.all.filter((l) => / error \[/.test(l));
    console.log(`fuzz http: seed ${seed}, ${next}/${requests} requests in ${Math.round(performance.now() - t0)} ms; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    if (failures.length) console.error(`fuzz http FAILED (replay: FUZZ_SEED=${seed} FUZZ_FRAMES=${requests} npm test -- test/fuzz/http)\n  ${failures.join("\n  ")}`);
    if (errs.length) console.error(`  server log:\n    ${errs.slice(0, 20).join("\n    ")}`);
    expect(node.proc.exitCode).toBeNull();
    expect(failures).toEqual([]);
    // A normal request afterwards.
    expect((await node.api("/api/users", { id: "after-fuzz" })).status).toBe(200);
    expect((await fetch(`${node.url}/healthz`)).status).toBe(200);
  }, Math.max(60_000, requests * 40));
});

function decodeURIComponentSafe(s: string): string {
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}

/** A value as query or path text (an object whose own `toString` is not a function has no String()). */
function text(v: unknown): string {
  try {
    return String(v);
  } catch {
    return JSON.stringify(v) ?? "";
  }
}
