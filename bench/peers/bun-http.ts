// Peer: the least a Bun.serve HTTP server can do with a POST, the runtime's own limit for the social API's
// sends: read the form body, answer a JSON `{"datas": …}` (keep-alive). No parsing, no store.
const port = Number(process.env.PORT ?? 8091);
let n = 0;
const server = Bun.serve({
  port,
  hostname: process.env.HOST ?? "0.0.0.0",
  async fetch(req) {
    if (new URL(req.url).pathname === "/healthz") return new Response("ok");
    await req.text();
    return new Response(`{"datas":"${++n}"}`, { headers: { "content-type": "application/json; charset=utf-8" } });
  },
});
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
process.on("SIGUSR2", () => Bun.gc(true));
export {};
