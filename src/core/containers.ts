// The rooms protocol's rules (seed 004, docs/rooms.md) over the messaging core.
//  - Rooms (NtoN): conversation `g:rooms:<room>` (kind group, subtype rooms). A user who enters becomes a member
//    from the present on, so history and offline pull work; the connections in the room are the subscribers of
//    the topic named by the conversation id, so the online count is the presence count of that topic
//    (cluster-wide) and a message fans out as one topic publish.
//  - Containers (1toN customer service): conversation `c:rooms:<id>` (kind container, subtype rooms). The user
//    side are its members; createContainer names the agent (`accept`), who joins with addContainer and stays
//    until removeContainer closes it. Messages and container events go to the members as user events (every
//    connection of theirs, on any node); in/out notices go to the container's topic.
// Every message is committed through Chat.commit before anyone sees it.
import { createHash } from "node:crypto";
import { containerConvId, roomsConvId } from "./conv-ids.ts";
import type { Chat } from "./chat.ts";
import { fail } from "./errors.ts";
import type { ContainerRecords, Conversations, Memberships, Users } from "./ports.ts";
import type { ContainerRow } from "./records.ts";
import { USER_ID_RE } from "./ids.ts";
import { LoginThrottle } from "./ratelimit.ts";
import type { Who } from "./logins.ts";
import type { Ack, CoreEvent, Message } from "./types.ts";

/** A room name or container id: business keys may be any letters or digits, with `_ . @ : -`. */
export const ROOMS_KEY_RE = /^[\p{L}\p{N}_.@:-]{1,128}$/u;
export const MESSAGE_TYPES = ["text", "picture", "video", "voice", "event"] as const;
/** Offline messages pushed to a connection entering a room or container; older ones stay in history. */
export const CATCH_UP = 200;
/** Containers an agent's connection enters at once when it connects. */
export const MAX_AGENT_CONTAINERS = 200;
/**
 * A verified account password is remembered this long (as a sha256 of the account, the digest and the stored
 * hash, so a changed password is a miss): argon2id costs ~200 ms of CPU per check, and clients of this protocol
 * log in with their password on every reconnect.
 */
export const LOGIN_CACHE_MS = 10 * 60_000;
const LOGIN_CACHE_MAX = 100_000;
/** `clientType` of an account when a client sends none. */
export const DEFAULT_CLIENT_TYPE = "default";

/** Who speaks on a connection: the user, and the name and icon the connection shows. */
export interface Speaker {
  id: string;
  name: string;
  icon: string;
}

/** What a rooms message stores as its body (and what other protocols read back). */
export interface RoomsBody {
  messageType: string;
  messageContent: string;
  /** `ordinary` for a message; the event's name otherwise */
  eventType: string;
  nickName: string;
  userIcon: string;
  accessoryContent?: unknown;
  acceptId?: string;
  targetId?: string;
  /** autoReturn replies: the code asked for */
  code?: string;
}

export interface ContainersDeps {
  store: Pick<Users, "getUser"> & Pick<Conversations, "getMember" | "memberIds">;
  memberships: Pick<Memberships, "removeMember">;
  records: ContainerRecords;
  chat: Pick<Chat, "activeUser" | "commit" | "pending" | "userExists">;
  /** Fans an event out to a topic's subscribers on every node. */
  publish(topic: string, ev: CoreEvent): void;
  /** Subscribers of a topic across the cluster (presence). */
  count(topic: string): Promise<number>;
  log(msg: string): void;
  /** attempt limits of password logins (shared by the cluster) */
  throttle?: LoginThrottle;
}

export class Containers {
  private readonly verified = new Map<string, number>();
  private readonly throttle: LoginThrottle;

  constructor(private readonly d: ContainersDeps) {
    this.throttle = d.throttle ?? new LoginThrottle();
  }

  get records(): ContainerRecords {
    return this.d.records;
  }

  /**
   * `account` + `password` (the MD5 hex digest of the password) of a client project's stored account, tried
   * from `address`, under the login attempt limits (counted before anything is checked, even a cached match).
   */
  async login(clientType: string | undefined, account: string, password: string, address?: string): Promise<Who | undefined> {
    if (!/^[0-9a-f]{32}$/i.test(password) || account.length > 128) return undefined;
    const type = clientType || DEFAULT_CLIENT_TYPE;
    return this.throttle.attempt(`r:${type}\0${account}`, address, async () => {
      const a = await this.d.records.account(type, account);
      if (!a) return undefined;
      const digest = password.toLowerCase();
      const key = createHash("sha256").update(`${a.clientType}\0${a.account}\0${digest}\0${a.passwordHash}`).digest("base64");
      const now = Date.now();
      if ((this.verified.get(key) ?? 0) <= now) {
        if (!(await Bun.password.verify(digest, a.passwordHash))) return undefined;
        if (this.verified.size >= LOGIN_CACHE_MAX) for (const [k, until] of this.verified) if (until <= now || this.verified.size >= LOGIN_CACHE_MAX) this.verified.delete(k);
        this.verified.set(key, now + LOGIN_CACHE_MS);
      }
      return this.d.chat.activeUser(a.userId);
    });
  }

  // ---- rooms ----

  /** A user enters a room (created by its first visitor) and is a member from now on. Returns its conversation. */
  async enterRoom(userId: string, room: string): Promise<string> {
    const conv = roomsConvId(checkKey(room, "roomName"));
    await this.d.records.enterRoom(conv, room, userId);
    return conv;
  }

  /** A user moved away from a room: its messages are no longer the user's offline messages. */
  async leaveRoom(userId: string, room: string): Promise<void> {
    await this.d.memberships.removeMember(roomsConvId(room), userId);
  }

  async sendToRoom(who: Speaker, room: string, body: RoomsBody): Promise<Ack> {
    const conv = roomsConvId(room);
    // No user recipients: the room's connections get it through the room's topic.
    const ack = await this.d.chat.commit(who.id, conv, { kind: body.messageType, body }, []);
    if (!ack.dup) {
      const msg: Message = { id: ack.id, conv, seq: ack.seq, from: who.id, kind: body.messageType, body, ts: ack.ts };
      this.d.publish(conv, { type: "message", msg, to: [] });
    }
    return ack;
  }

  /** In/out (and name change) notices to everyone in a room or container, with its online count. */
  async notice(conv: string, room: string, action: "in" | "out" | "outAll" | "userInfo", who: Speaker): Promise<void> {
    let count = 0;
    try {
      if (action !== "outAll") count = await this.d.count(conv);
    } catch (e) {
      // A notice is a nicety: without a count (presence unreachable) it is skipped, the connection goes on.
      return this.d.log(`rooms notice ${action} ${conv}: ${(e as Error).message}`);
    }
    this.d.publish(conv, { type: "roomNotice", conv, room, action, user: { id: who.id, nick: who.name, icon: who.icon }, count, ts: Date.now() });
  }

  /** Messages others wrote in a conversation above the user's delivered cursor, oldest first. */
  async unseen(userId: string, conv: string): Promise<Message[]> {
    return (await this.d.chat.pending(userId, { conv, limit: CATCH_UP })).msgs.filter((m) => !m.recalled);
  }

  // ---- containers ----

  /**
   * createContainer: the user side asks agent `accept` to serve container `id` for business key `target`.
   * A user opens the container named by its own user id (a closed one is reopened, with its history); a
   * container shared by several users is made through the server API, and any of them may open it. The
   * agent is told by the stored createContainer event.
   */
  async create(who: Speaker, id: string, accept: string, target: string, room: string, messageType = "text"): Promise<{ conv: string; ack: Ack }> {
    checkKey(id, "containerId");
    checkUser(accept, "acceptId");
    checkKey(target, "targetId");
    if (accept === who.id) fail("bad_request", "acceptId is the agent to serve you, not yourself");
    if (!(await this.d.chat.userExists(accept))) fail("not_found", `no user ${accept}`);
    const r = await this.d.records.open(id, who.id, { accept, target, room }, id === who.id);
    if (r === "forbidden") {
      fail("forbidden", `container ${id} is not yours: a user opens the container named by its own user id, shared ones are made through the server API`);
    }
    const conv = containerConvId(id);
    const to = [...new Set([...(await this.d.store.memberIds(conv)), accept])];
    const body: RoomsBody = { ...event(who, "createContainer", messageType, target), acceptId: accept };
    const ack = await this.d.chat.commit(who.id, conv, { kind: "createContainer", body }, to);
    // The agent was told of this request; it starts reading the container after it.
    await this.d.records.setAttrs(id, { openedSeq: ack.seq });
    return { conv, ack };
  }

  /**
   * addContainer: the agent asked by the container's latest createContainer joins it; everyone in it is told.
   * A member sending it again (a reconnect) is simply back in. Returns the container's conversation and the
   * roomName it was opened under.
   */
  async add(who: Speaker, id: string, messageType = "text"): Promise<{ conv: string; room: string }> {
    const c = await this.open(id);
    const room = c.attrs.room ?? id;
    const m = await this.d.store.getMember(c.conv, who.id);
    if (m) return { conv: c.conv, room };
    if (c.attrs.accept !== who.id) fail("forbidden", `container ${id} asked another agent to serve it`);
    if (await this.d.records.addAgent(id, who.id, c.attrs.openedSeq ?? c.lastSeq)) {
      await this.d.chat.commit(who.id, c.conv, { kind: "addContainer", body: event(who, "addContainer", messageType, c.attrs.target) }, await this.d.store.memberIds(c.conv));
    }
    return { conv: c.conv, room };
  }

  /**
   * removeContainer: any member closes the container. Everyone in it gets the stored removeContainer event
   * and an `outAll` notice; its agents leave it (the user side keep their history, and may reopen it).
   */
  async remove(who: Speaker, id: string, messageType = "text"): Promise<string> {
    const c = await this.open(id);
    const to = await this.d.store.memberIds(c.conv);
    if (!to.includes(who.id)) fail("not_member", `you are not in container ${id}`);
    await this.d.chat.commit(who.id, c.conv, { kind: "removeContainer", body: event(who, "removeContainer", messageType, c.attrs.target) }, to);
    if (await this.d.records.close(id)) await this.notice(c.conv, c.attrs.room ?? id, "outAll", who);
    return c.conv;
  }

  /** A message into an open container the sender is in. */
  async sendToContainer(who: Speaker, id: string, body: RoomsBody): Promise<Ack> {
    const c = await this.open(id);
    const to = await this.d.store.memberIds(c.conv);
    if (!to.includes(who.id)) fail("not_member", `you are not in container ${id}`);
    return this.d.chat.commit(who.id, c.conv, { kind: body.messageType, body }, to);
  }

  /**
   * autoReturn: the stored auto-reply `code` is posted into the container, in the name of the agent the
   * container asked for (with the reply's own name and icon when it has them).
   */
  async autoReturn(who: Speaker, id: string, code: string): Promise<Ack> {
    const c = await this.open(id);
    const to = await this.d.store.memberIds(c.conv);
    if (!to.includes(who.id)) fail("not_member", `you are not in container ${id}`);
    const reply = await this.d.records.autoReply(code);
    if (!reply) fail("not_found", `no auto-reply with code ${code}`);
    const agent = c.attrs.accept ? await this.d.store.getUser(c.attrs.accept) : undefined;
    const from = agent?.id ?? who.id;
    const body: RoomsBody = {
      messageType: "text",
      messageContent: reply!.content,
      eventType: "autoReturn",
      code,
      nickName: reply!.name || agent?.nick || "",
      userIcon: reply!.icon || agent?.avatar || "",
    };
    return this.d.chat.commit(from, c.conv, { kind: "text", body }, [...new Set([...to, from])]);
  }

  /** Server API: a container for several users (any of them may open it with createContainer). */
  async share(id: string, users: string[], set: { accept?: string; target?: string; room?: string }): Promise<ContainerRow> {
    checkKey(id, "container id");
    if (!users.length) fail("bad_request", "`users` must name at least one user");
    for (const u of [...users, ...(set.accept ? [set.accept] : [])]) if (!(await this.d.chat.userExists(u))) fail("not_found", `no user ${u}`);
    const c = await this.d.records.container(id);
    if (!c) {
      if ((await this.d.records.open(id, users[0]!, set, true)) !== "created") fail("conflict", `${containerConvId(id)} exists and is not a container`);
    } else if (Object.keys(set).length) await this.d.records.setAttrs(id, set);
    await this.d.records.addUsers(id, users);
    return (await this.d.records.container(id))!;
  }

  /** Whether a user is a member of a room or container conversation. */
  async isMember(conv: string, userId: string): Promise<boolean> {
    return (await this.d.store.getMember(conv, userId)) !== undefined;
  }

  /** Open containers an agent serves. */
  agentContainers(agent: string) {
    return this.d.records.agentContainers(agent, MAX_AGENT_CONTAINERS);
  }

  private async open(id: string): Promise<ContainerRow> {
    checkKey(id, "containerId");
    const c = await this.d.records.container(id);
    if (!c) fail("not_found", `no container ${id}`);
    if (c!.closed) fail("forbidden", `container ${id} is closed`);
    return c!;
  }
}

export { roomsConvId };

function event(who: Speaker, eventType: string, messageType: string, target?: string): RoomsBody {
  return {
    messageType,
    messageContent: "",
    eventType,
    nickName: who.name,
    userIcon: who.icon,
    ...(target !== undefined ? { targetId: target } : {}),
  };
}

export function checkKey(v: string, what: string): string {
  if (typeof v !== "string" || !ROOMS_KEY_RE.test(v)) fail("bad_request", `${what} must be 1-128 letters, digits or _ . @ : -`);
  return v;
}

function checkUser(v: string, what: string): string {
  if (typeof v !== "string" || !USER_ID_RE.test(v)) fail("bad_request", `${what} must be a user id`);
  return v;
}
