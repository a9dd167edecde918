// The one send command of every protocol and of the server API: a message to a user (`to`) or into a
// conversation (`conv`). What the conversation is (direct, group, desk container, live room, rooms-protocol room
// or container) is decided here, from its id (core/conv-ids.ts), and each kind's rules (membership, roles, mutes,
// who serves a guest, slow mode, who is in a container) are checked once, by the service that owns it.
import type { Ack } from "./types.ts";
import type { Chat, SendInput } from "./chat.ts";
import type { Containers, RoomsBody, Speaker } from "./containers.ts";
import { containerOfConv, directConvId, directPeer, groupIdOf, guestOf, isRoomsConv, roomIdOf, roomOfConv } from "./conv-ids.ts";
import type { Desk } from "./desk.ts";
import { fail } from "./errors.ts";
import type { Groups } from "./groups.ts";
import type { Live, RoomAck, RoomSendInput } from "./live.ts";
import type { ModeratedKind, Moderation } from "./moderation.ts";

/** Exactly one of: a user (a 1:1 message), or a conversation id. */
export interface SendTarget {
  to?: string;
  conv?: string;
}

/** A message: kind, body, client id; `class` (droppable or must) is read in a live room only. */
export type MessageInput = SendInput & Pick<RoomSendInput, "class">;

/** The ack of a send: every stored message has its seq; a live room's droppable message has none. */
export type SendAck = Ack | RoomAck;

export interface SendOptions {
  /** the sending connection: it is not pushed its own message (its ack says it all) */
  session?: string;
  /**
   * the server API: the sender may be any existing user; a group's roles, mutes and closing, and a live room's
   * mutes and slow mode do not apply (a live room is created by its first message)
   */
  trusted?: boolean;
  /** live rooms: the topics the sending connection is in (a client posts only into a room it joined) */
  topics?: ReadonlySet<string>;
  /**
   * rooms protocol (`g:rooms:`, `c:rooms:`): who speaks, with the name and icon the connection shows; the body is
   * a rooms message (`RoomsBody`). Without one a send into those conversations is refused.
   */
  speaker?: Speaker;
}

export interface MessagingDeps {
  chat: Chat;
  groups: Groups;
  desk: Desk;
  live: Pick<Live, "send" | "publish">;
  containers: Pick<Containers, "sendToRoom" | "sendToContainer">;
  /** The app's moderation hook (core/moderation.ts): absent, sends never wait for it. */
  moderation?: Pick<Moderation, "covers" | "check">;
}

export class Messaging {
  constructor(private readonly d: MessagingDeps) {}

  async send(from: string, target: SendTarget, input: MessageInput, o: SendOptions = {}): Promise<SendAck> {
    const { to, conv } = target;
    if ((to === undefined) === (conv === undefined)) fail("bad_request", "give exactly one of `to` (a user) or `conv`");
    if (this.d.moderation && !o.trusted) input = await this.moderated(from, target, input);
    if (typeof conv === "string") {
      const room = roomIdOf(conv);
      if (room !== undefined) return this.toLiveRoom(from, conv, room, input, o);
      if (isRoomsConv(conv)) return this.toRooms(from, conv, input, o);
    }
    if (o.trusted && !(await this.d.chat.userExists(from))) fail("not_found", `no user ${from}`);
    if (to !== undefined) return this.d.chat.sendDirect(from, to, input, o.session);
    if (typeof conv !== "string" || !conv) return fail("bad_request", "`conv` must be a conversation id");
    const peer = directPeer(conv, from);
    if (peer !== undefined) {
      if (directConvId(from, peer) !== conv) fail("not_member", `not a member of ${conv}`);
      return this.d.chat.sendDirect(from, peer, input, o.session);
    }
    const group = groupIdOf(conv);
    if (group !== undefined) return this.d.groups.send(from, group, input, o.session, o.trusted);
    const guest = guestOf(conv);
    if (guest !== undefined) return this.d.desk.send(from, guest, input, o.session);
    return fail("not_found", `cannot send to ${conv}`);
  }

  /** A user's message checked by the app's moderation hook when it covers the conversation's kind (the server API's are not). */
  private async moderated(from: string, { to, conv }: SendTarget, input: MessageInput): Promise<MessageInput> {
    let kind: ModeratedKind | undefined;
    if (to !== undefined) kind = "direct";
    else if (typeof conv === "string") {
      if (roomIdOf(conv) !== undefined) kind = "room";
      else if (directPeer(conv, from) !== undefined) kind = "direct";
      else if (groupIdOf(conv) !== undefined && !isRoomsConv(conv)) kind = "group";
    }
    if (kind === undefined || !this.d.moderation!.covers(kind)) return input;
    const message = { kind: input.kind ?? "text", body: input.body, ...(input.cmid !== undefined ? { cmid: input.cmid } : {}) };
    const body = await this.d.moderation!.check({ kind, from, ...(to !== undefined ? { to } : { conv }), message });
    return body === input.body ? input : { ...input, body };
  }

  /** A live room: the server API publishes (creating the room); a client posts from a connection in the room. */
  private toLiveRoom(from: string, conv: string, room: string, input: MessageInput, o: SendOptions): Promise<RoomAck> {
    if (o.trusted) return this.d.live.publish(from, room, input);
    if (!o.topics?.has(conv)) fail("not_member", `join room ${room} first`);
    return this.d.live.send(from, room, input);
  }

  /** A rooms-protocol room or container: the speaker's rooms message (the rooms protocol builds and checks it). */
  private toRooms(from: string, conv: string, input: MessageInput, o: SendOptions): Promise<Ack> {
    const who = o.speaker;
    if (!who || who.id !== from) {
      return fail("bad_request", `${conv} is a rooms-protocol conversation: its messages (with the speaker's name and icon) are sent through the rooms protocol`);
    }
    const body = input.body as RoomsBody;
    const container = containerOfConv(conv);
    if (container !== undefined) return this.d.containers.sendToContainer(who, container, body);
    return this.d.containers.sendToRoom(who, roomOfConv(conv)!, body);
  }
}
