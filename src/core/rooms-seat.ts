// The rule set a rooms-protocol connection works under (docs/rooms.md), decided here from its connect
// parameters and applied to each of its frames, so the dialect only translates:
//  - `agent`: the single side of 1toN. Its roomName is its own user id; it is in every container it serves.
//  - `user`: the many side of 1toN (a containerId or targetId was given). It speaks in one container, by default
//    the one named by its user id, or in the one a frame names.
//  - `room`: NtoN in the room named roomName. Only here may a connection move to another room.
import type { Containers, Speaker } from "./containers.ts";
import { containerConvId, roomsConvId } from "./conv-ids.ts";
import { fail } from "./errors.ts";

export type RoomsMode = "room" | "user" | "agent";

export interface Seat {
  me: Speaker;
  mode: RoomsMode;
  /** the roomName of the connect parameters (what the notices of containers show) */
  roomName: string;
  /** `room`: the room this connection is in now */
  room?: string;
  /** `user`: the container it speaks in; `agent`: one to enter besides those it serves */
  container?: string;
  /** the business key new containers are for */
  target?: string;
}

const bad = (message: string): never => fail("bad_request", message);

/** The seat of a connection from its connect parameters. */
export function seatOf(me: Speaker, p: { roomName: string; containerId?: string; targetId?: string }): Seat {
  const seat: Seat = { me, mode: "room", roomName: p.roomName, target: p.targetId };
  if (p.roomName === me.id) return { ...seat, mode: "agent", container: p.containerId };
  if (p.containerId !== undefined || p.targetId !== undefined) return { ...seat, mode: "user", container: p.containerId ?? me.id };
  return { ...seat, room: p.roomName };
}

/** A conversation a connection is in, with the roomName its notices show. */
export interface Place {
  conv: string;
  label: string;
}

export class RoomsSeats {
  constructor(private readonly c: Containers) {}

  /** Where a connection goes after its handshake: its room (NtoN), or the containers it serves or speaks in. */
  async entries(seat: Seat): Promise<Place[]> {
    const me = seat.me.id;
    if (seat.mode === "room") return [{ conv: await this.c.enterRoom(me, seat.room!), label: seat.room! }];
    const served = seat.mode === "agent" ? await this.c.agentContainers(me) : [];
    const out = served.map((c) => ({ conv: c.conv, label: c.room ?? c.id }));
    if (seat.container && !served.some((c) => c.id === seat.container)) {
      const c = await this.c.records.container(seat.container);
      if (c && !c.closed && (await this.c.isMember(c.conv, me))) out.push({ conv: c.conv, label: c.attrs.room ?? seat.container });
    }
    return out;
  }

  /** The container a frame is about: the one it names, else a user-side connection's own. */
  containerOf(seat: Seat, containerId: string | undefined): string | undefined {
    return containerId ?? (seat.mode === "user" ? seat.container : undefined);
  }

  /**
   * Where an ordinary message goes: the frame's container, else the room of an NtoN connection. The message is
   * then sent with Messaging.send, the seat's speaker speaking.
   */
  sendTo(seat: Seat, containerId: string | undefined): string {
    const container = this.containerOf(seat, containerId);
    if (container !== undefined) return containerConvId(container);
    if (seat.mode === "room") return roomsConvId(seat.room!);
    return bad("containerId is required: name the container this message is for");
  }

  /**
   * NtoN only: the connection moves to `room` (entered in the store); the seat is updated. Undefined when it is
   * there already; else the new place and the old one (left by the caller once no connection of the user is in it).
   */
  async move(seat: Seat, room: string | undefined): Promise<{ to: Place; from: Place } | undefined> {
    if (seat.mode !== "room") bad("updateRoomName is for rooms without containers");
    if (room === undefined) return bad("updateRoomName needs the new roomName in messageContent");
    if (room === seat.room) return undefined;
    const conv = await this.c.enterRoom(seat.me.id, room);
    const old = seat.room!;
    seat.room = room;
    return { to: { conv, label: room }, from: { conv: roomsConvId(old), label: old } };
  }

  /** A user opens a container for an agent (`acceptId`) about a business key (`targetId`), and is in it. */
  async create(seat: Seat, f: { containerId?: string; acceptId?: string; targetId?: string }, messageType: string): Promise<Place> {
    const id = f.containerId ?? seat.container ?? seat.me.id;
    const accept = f.acceptId ?? bad("createContainer needs acceptId: the agent to serve you");
    const target = f.targetId ?? seat.target ?? bad("createContainer needs targetId: the business key");
    const { conv } = await this.c.create(seat.me, id, accept, target, seat.roomName, messageType);
    if (seat.mode === "user") seat.container = id;
    return { conv, label: seat.roomName };
  }

  /** The agent joins a container opened for it. */
  async add(seat: Seat, containerId: string | undefined, messageType: string): Promise<Place> {
    const id = containerId ?? bad("addContainer needs containerId");
    const { conv, room } = await this.c.add(seat.me, id, messageType);
    return { conv, label: room };
  }

  async remove(seat: Seat, containerId: string | undefined, messageType: string): Promise<void> {
    await this.c.remove(seat.me, this.containerOf(seat, containerId) ?? bad("removeContainer needs containerId"), messageType);
  }

  async autoReturn(seat: Seat, containerId: string | undefined, code: string | undefined): Promise<void> {
    const id = this.containerOf(seat, containerId) ?? bad("autoReturn needs containerId");
    await this.c.autoReturn(seat.me, id, code ?? bad("autoReturn needs the reply's code in messageContent"));
  }
}
