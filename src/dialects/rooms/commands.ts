// The rooms command table (docs/rooms.md): eventType → the core command it calls. What a connection may do in
// its mode (room, user, agent) is the core's (core/rooms-seat.ts); a handler reads its frame's fields, calls the
// core and keeps this connection's places (the topics it is in) in step with what the core decided.
import type { Containers } from "../../core/containers.ts";
import { fail } from "../../core/errors.ts";
import type { Place, RoomsSeats, Seat } from "../../core/rooms-seat.ts";
import type { Messaging } from "../../core/send.ts";
import type { Hub } from "../../hub/hub.ts";
import type { Session } from "../../hub/session.ts";
import { iconOf, MAX_NAME, messageBody, str, typeOf, type Fields } from "./decode.ts";
import { noticeFrame } from "./encode.ts";

const bad = (message: string): never => fail("bad_request", message);

/** What a handler works on: the connection, its seat and the conversations it is in (→ the label they show). */
export interface Ctx {
  s: Session;
  seat: Seat;
  convs: Map<string, string>;
}

/** The connection's bookkeeping of topics, kept by index.ts. */
export interface Places {
  /** enters a place: subscribed, everyone there told, then what it missed */
  into(s: Session, place: Place): Promise<void>;
  /** leaves a topic (hub and local bookkeeping) */
  leave(s: Session, conv: string): void;
  /** whether another rooms connection of the user is still in `conv` */
  elsewhere(s: Session, conv: string): boolean;
}

export type Command = (c: Ctx, f: Fields) => Promise<void>;

export function roomsCommands(core: Containers, messaging: Messaging, seats: RoomsSeats, hub: Hub, places: Places): ReadonlyMap<string, Command> {
  return new Map<string, Command>([
    [
      "ordinary",
      async ({ seat }, f) => {
        const body = messageBody(f, seat.me);
        const conv = seats.sendTo(seat, str(f.containerId));
        await messaging.send(seat.me.id, { conv }, { kind: body.messageType, body }, { speaker: seat.me });
      },
    ],
    [
      "updateRoomName",
      async ({ s, seat }, f) => {
        const moved = await seats.move(seat, str(f.messageContent));
        if (!moved) return;
        const { to, from } = moved;
        const me = seat.me;
        places.leave(s, from.conv);
        await places.into(s, to);
        // What it was pushed in the old room is stored before it stops being a member there.
        await hub.flushMarks(me.id);
        if (!places.elsewhere(s, from.conv)) await core.leaveRoom(me.id, from.label);
        return core.notice(from.conv, from.label, "out", me);
      },
    ],
    [
      "updateUserInfo",
      async ({ s, seat, convs }, f) => {
        const me = seat.me;
        const name = str(f.messageContent);
        const icon = iconOf(f.userIconUpdate);
        if (name === undefined && icon === undefined) bad("updateUserInfo needs the new name in messageContent or the new icon in userIconUpdate");
        if (name !== undefined && name.length > MAX_NAME) bad(`a name is at most ${MAX_NAME} characters`);
        seat.me = { ...me, name: name ?? me.name, icon: icon ?? me.icon };
        if (!convs.size) {
          const ev = { type: "roomNotice", conv: "", room: seat.roomName, action: "userInfo", user: { id: me.id, nick: seat.me.name, icon: seat.me.icon }, count: 0, ts: Date.now() } as const;
          return void hub.send(s, noticeFrame(ev));
        }
        for (const [conv, label] of convs) await core.notice(conv, label, "userInfo", seat.me);
      },
    ],
    [
      "createContainer",
      async ({ s, seat }, f) =>
        places.into(s, await seats.create(seat, { containerId: str(f.containerId), acceptId: str(f.acceptId), targetId: str(f.targetId) }, typeOf(f))),
    ],
    ["addContainer", async ({ s, seat }, f) => places.into(s, await seats.add(seat, str(f.containerId), typeOf(f)))],
    ["removeContainer", async ({ seat }, f) => seats.remove(seat, str(f.containerId), typeOf(f))],
    ["autoReturn", async ({ seat }, f) => seats.autoReturn(seat, str(f.containerId), str(f.messageContent))],
  ]);
}
