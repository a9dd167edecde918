// The native protocol's live-room frames (`join_room`, `leave_room`, `room_send`, docs/protocol.md) and
// the encoding of room ticks and resync notices. Joining subscribes this connection to the room's topic.
import type { App } from "../../app.ts";
import { CoreError } from "../../core/errors.ts";
import { isLiveRoom, roomConvId, roomIdOf } from "../../core/conv-ids.ts";
import type { TokenBucket } from "../../core/ratelimit.ts";
import type { CoreEvent } from "../../core/types.ts";
import type { Session } from "../../hub/session.ts";
import type { FrameOf } from "./frames.ts";

const roomsOf = (s: Session) => [...s.topics].filter(isLiveRoom).length;

export async function roomFrame(app: App, s: Session, bucket: TokenBucket, type: string, f: any): Promise<Record<string, unknown>> {
  const { live, hub } = app;
  const me = s.userId!;
  switch (type) {
    case "join_room": {
      const room = await live.join(me, f.room, roomsOf(s));
      hub.join(s, room.conv);
      return { ...room, online: await live.online(room.conv) };
    }
    case "leave_room": {
      const conv = roomConvId(f.room);
      const left = s.topics.has(conv);
      if (left) hub.leave(s, conv);
      return { room: f.room, left, online: await live.online(conv) };
    }
    case "room_send": {
      const m = f as FrameOf<"room_send">;
      const wait = bucket.take();
      if (wait) throw new CoreError("rate_limited", `too many messages, retry in ${wait} ms`, wait);
      if (!s.topics.has(roomConvId(m.room))) throw new CoreError("not_member", `join room ${m.room} first`);
      const ack = await live.send(me, m.room, { class: m.class, kind: m.kind, body: m.body, cmid: m.cmid });
      return { t: "ack", msg: ack };
    }
  }
  return {};
}

/** Room events as native frames; undefined for other events. */
export function roomEvent(ev: CoreEvent): Record<string, unknown> | undefined {
  if (ev.type === "room") {
    const items = ev.items.map((it) =>
      it.type === "msg" ? { t: "msg", msg: it.msg } : it.type === "recall" ? { t: "recall", msg: it.id, seq: it.seq, from: it.from } : { t: it.type, user: it.user },
    );
    return { t: "room", room: roomIdOf(ev.conv), ...(ev.online !== undefined ? { online: ev.online } : {}), items };
  }
  if (ev.type === "resync") return { t: "resync", room: roomIdOf(ev.conv), conv: ev.conv, after: ev.after, dropped: ev.dropped };
  return undefined;
}
