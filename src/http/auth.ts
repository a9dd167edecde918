// Who may call the HTTP API: app backends holding API_KEY (`Authorization: apikey <API_KEY>`) for the server API
// under /api, and a scraper holding METRICS_KEY (`Authorization: Bearer <METRICS_KEY>`) for /metrics when it is set.
import { Elysia, type Context } from "elysia";
import { errorBody } from "./schemas.ts";

/** The answer to a request for the server API without its key. */
const refusal = (apiKey: string | undefined) =>
  errorBody("unauthorized", apiKey ? "missing or wrong `Authorization: apikey <key>`" : "the server API is disabled: set API_KEY");

function timingSafeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

/** An `Authorization: apikey <API_KEY>` header value of an app backend (never, when API_KEY is not set). */
export function apiKeyOk(apiKey: string | undefined, authorization: string | undefined): boolean {
  const given = authorization?.match(/^apikey\s+(.+)$/i)?.[1];
  return !!apiKey && !!given && timingSafeEqual(given, apiKey);
}

/** Plugin that admits only app backends holding API_KEY, for a router's routes. */
export function serverAuth(apiKey: string | undefined) {
  return new Elysia({ name: "server-auth" }).onBeforeHandle({ as: "scoped" }, ({ headers, set }) => {
    if (!apiKeyOk(apiKey, headers.authorization)) {
      set.status = 401;
      return refusal(apiKey);
    }
  });
}

/** The path of a request URL, without parsing the whole URL. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const q = url.indexOf("?", start);
  return q < 0 ? url.slice(start) : url.slice(start, q);
}

/**
 * The `onRequest` hook that answers a request for the server API (/api, /api/…) without its key 401 on arrival:
 * before its body is parsed or anything validated (the body limit is checked before this, in the transport).
 */
export function apiGate(apiKey: string | undefined) {
  return ({ request, set }: { request: Request; set: Context["set"] }) => {
    const path = pathOf(request.url);
    if ((path === "/api" || path.startsWith("/api/")) && !apiKeyOk(apiKey, request.headers.get("authorization") ?? undefined)) {
      set.status = 401;
      return refusal(apiKey);
    }
  };
}

/** METRICS_KEY set: only `Authorization: Bearer <METRICS_KEY>` reads the metrics; unset: anyone. */
export function metricsKeyOk(metricsKey: string | undefined, authorization: string | undefined): boolean {
  if (!metricsKey) return true;
  const given = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
  return !!given && timingSafeEqual(given, metricsKey);
}
