// The OpenAPI reference page's assets (Swagger UI, from the npm package swagger-ui-dist), served by this server
// so that /openapi loads on a network without Internet access: no CDN, no web font, no validator badge.
import { dirname } from "node:path";
import { Elysia } from "elysia";

const DIST = dirname(require.resolve("swagger-ui-dist/package.json"));
/** Where the page takes its script and stylesheet from (the openapi plugin's `swagger` options). */
export const OPENAPI_UI = {
  cdn: "/openapi/assets/swagger-ui-bundle.js",
  theme: "/openapi/assets/swagger-ui.css",
  /** Swagger UI asks a public validator for a badge unless told not to. */
  validatorUrl: null,
} as const;

const file = (name: string, type: string) => () =>
  new Response(Bun.file(`${DIST}/${name}`), { headers: { "content-type": type, "cache-control": "public, max-age=86400" } });

export const openapiAssets = () =>
  new Elysia()
    .get("/openapi/assets/swagger-ui-bundle.js", file("swagger-ui-bundle.js", "text/javascript; charset=utf-8"), { detail: { hide: true } })
    .get("/openapi/assets/swagger-ui.css", file("swagger-ui.css", "text/css; charset=utf-8"), { detail: { hide: true } })
    // Browsers ask for it on every page without an icon of its own (else a 404 in their console).
    .get("/favicon.ico", file("favicon-32x32.png", "image/png"), { detail: { hide: true } });
