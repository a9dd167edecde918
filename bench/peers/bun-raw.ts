// Peer: the least a Bun.serve WebSocket server can do, the runtime's own limit. A connection opened
// with ?room=<r> joins topic <r>, and every frame it sends is published to the topic (the sender
// included: server.publish); any other connection gets each frame echoed back.
const port = Number(process.env.PORT ?? 8090);
const server = Bun.serve<{ room: string | null }>({
  port,
  hostname: process.env.HOST ?? "0.0.0.0",
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (srv.upgrade(req, { data: { room: url.searchParams.get("room") } })) return undefined as unknown as Response;
    return new Response("upgrade required", { status: 426 });
  },
  websocket: {
    idleTimeout: 120,
    open(ws) {
      if (ws.data.room) ws.subscribe(ws.data.room);
    },
    message(ws, msg) {
      if (ws.data.room) server.publish(ws.data.room, msg);
      else ws.send(msg);
    },
  },
});
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
process.on("SIGUSR2", () => Bun.gc(true));
