// The long-poll scenario's floor (bench/scenarios/longpoll.ts): a bare Bun.serve that holds every request it gets
// (a pending promise, and an abort listener on its signal as our held poll has) until it stops: what the runtime
// itself costs per held request. /healthz answers `{"connections": <held>}` like our server's. SIGUSR2: a full GC.
const held = new Set<() => void>();
const server = Bun.serve({
  port: Number(process.env.PORT ?? 8092),
  hostname: process.env.HOST ?? "0.0.0.0",
  idleTimeout: 0,
  fetch(req) {
    if (new URL(req.url).pathname === "/healthz") return Response.json({ connections: held.size });
    return new Promise<Response>((resolve) => {
      const done = () => {
        held.delete(done);
        resolve(new Response('{"code":200,"data":{"result":3,"msgs":[]}}'));
      };
      held.add(done);
      req.signal.addEventListener("abort", () => held.delete(done), { once: true });
    });
  },
});
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
process.on("SIGUSR2", () => Bun.gc(true));
export {};
