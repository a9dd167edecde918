// Peer: Node.js with `ws`, the usual way: a connection opened with ?room=<r> joins room <r> and every
// frame it sends goes to each member (the sender included); any other connection gets its frames echoed.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const rooms = new Map();
const http = createServer((req, res) => {
  res.writeHead(req.url === "/healthz" ? 200 : 426);
  res.end(req.url === "/healthz" ? "ok" : "upgrade required");
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
wss.on("connection", (ws, req) => {
  const room = new URL(req.url, "http://x").searchParams.get("room");
  if (!room) {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    return;
  }
  let set = rooms.get(room);
  if (!set) rooms.set(room, (set = new Set()));
  set.add(ws);
  ws.on("message", (data, isBinary) => {
    for (const c of set) c.send(data, { binary: isBinary });
  });
  ws.on("close", () => set.delete(ws));
});
http.listen(Number(process.env.PORT ?? 8091), process.env.HOST ?? "0.0.0.0");
process.on("SIGTERM", () => process.exit(0));
process.on("SIGUSR2", () => globalThis.gc?.());
