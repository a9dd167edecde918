// Peer: a raw Bun.serve WebSocket server that coalesces a room's messages per tick exactly as ours does, the
// like-for-like runtime limit for our room fan-out. A connection opened with ?room=<r> joins topic <r>; every
// frame it sends is queued on the room's tick queue as an item shaped as ours (`{"t":"msg","msg":{id, conv, seq,
// from, kind, body: <the frame>, ts}}`: the same bytes per delivery), and each tick goes out as ONE frame to the
// topic (the sender included: server.publish) holding that tick's items, as ours: `{"t":"room","room":…,"items":[…]}`.
//
// The queue is our own (src/core/room-ticks.ts, RoomTicks), so the rule cannot drift from ours: a bucket of
// TICK_BURST frames refilled at one per ROOM_TICK_MS (a quiet room sends at once, on the next turn of the event
// loop; a busy one coalesces everything posted within a tick into the frame sent when the next one is due),
// and at most MAX_TICK_ITEMS droppable items per room per tick (more are dropped, as ours drops danmaku).
// Nothing else of ours runs: no parsing, no validation, no store, no presence, no per-consumer backpressure.
import { RoomTicks } from "../../src/core/room-ticks.ts";
import type { RoomItem } from "../../src/core/types.ts";

const port = Number(process.env.PORT ?? 8093);
const tickMs = Number(process.env.ROOM_TICK_MS ?? 50);

const ticks = new RoomTicks({
  tickMs,
  store: { getUsers: async () => [] },
  count: async () => 0,
  log: (m) => console.error(m),
  publish(room, ev) {
    if (ev.type !== "room") return;
    let frame = `{"t":"room","room":${JSON.stringify(room)},"items":[`;
    for (let i = 0; i < ev.items.length; i++) {
      const it = ev.items[i]!;
      if (it.type === "msg") frame += (i ? "," : "") + (it.msg.body as string);
    }
    server.publish(room, frame + "]}");
  },
});

let seq = 0;
let users = 0;

const server = Bun.serve<{ room: string | null; user: string }>({
  port,
  hostname: process.env.HOST ?? "0.0.0.0",
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (srv.upgrade(req, { data: { room: url.searchParams.get("room"), user: `u${++users}` } })) return undefined as unknown as Response;
    return new Response("upgrade required", { status: 426 });
  },
  websocket: {
    idleTimeout: 120,
    open(ws) {
      if (ws.data.room) ws.subscribe(ws.data.room);
    },
    message(ws, msg) {
      if (!ws.data.room) return void ws.send(msg);
      // A droppable message, as our danmaku, carrying what ours carries per item (id, room, seq, sender, kind,
      // time; the frame as received is its body), so both put the same bytes on the wire per delivery.
      const item = `{"t":"msg","msg":{"id":"${String(++seq).padStart(19, "1")}","conv":"g:rooms:${ws.data.room}","seq":${seq},"from":"${ws.data.user}","kind":"text","body":${msg},"ts":${Date.now()}}}`;
      ticks.post(ws.data.room, { type: "msg", msg: { class: "droppable", body: item } } as unknown as RoomItem);
    },
  },
});
process.on("SIGTERM", () => {
  ticks.stop();
  server.stop(true);
  process.exit(0);
});
process.on("SIGUSR2", () => Bun.gc(true));
