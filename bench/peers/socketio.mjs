// Peer: Socket.IO (WebSocket transport only), with @socket.io/redis-adapter when REDIS_URL is set (the
// cluster case). A socket opened with ?room=<r> joins room <r>; a "pub" event is emitted to the room
// (io.to: the sender included) as "m"; an "hb" event is answered with "hb".
import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200);
    res.end("ok");
  }
});
const io = new Server(http, { transports: ["websocket"], serveClient: false, pingInterval: 25000, pingTimeout: 60000 });
if (process.env.REDIS_URL) {
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { default: Redis } = await import("ioredis");
  const pub = new Redis(process.env.REDIS_URL);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));
}
io.on("connection", (socket) => {
  const room = socket.handshake.query.room;
  if (typeof room === "string" && room) socket.join(room);
  socket.on("hb", (x) => socket.emit("hb", x));
  socket.on("pub", (data) => {
    if (typeof room === "string" && room) io.to(room).emit("m", data);
  });
});
http.listen(Number(process.env.PORT ?? 8092), process.env.HOST ?? "0.0.0.0");
process.on("SIGTERM", () => process.exit(0));
process.on("SIGUSR2", () => globalThis.gc?.());
