// The rooms protocol (seed 004, docs/rooms.md) at /rooms and on ROOMS_PORT: every connect parameter is in the
// query string, JSON frames go both ways, there are no acknowledgements (a sender gets its own message back
// once it is committed), and in/out notices carry the online count. The rules are the core's
// (core/containers.ts); this file translates, and keeps what belongs to one connection: its rule set, the room
// or containers it is in, the name and icon it shows, its idle count. decode.ts reads frames, commands.ts maps
// each eventType onto the core, encode.ts writes frames.
import type { App } from "../../app.ts";
import { ROOMS_KEY_RE } from "../../core/containers.ts";
import { CloseCodes, CoreError, type ErrorName } from "../../core/errors.ts";
import { RoomsSeats, seatOf, type Place, type Seat } from "../../core/rooms-seat.ts";
import type { Dialect, Session } from "../../hub/session.ts";
import { storeFailure } from "../../core/store-errors.ts";
import { roomsCommands } from "./commands.ts";
import { metric } from "../../core/metrics.ts";
import { decode, EVENT_TYPES, heartbeatTest, MAX_ICON, MAX_NAME, str, type Fields } from "./decode.ts";
import { encode, errorFrame, frameOf } from "./encode.ts";

const mIgnored = metric("rooms_frames_ignored_total", "Rooms-protocol text frames that were no JSON, dropped unanswered");

/** The idle sweep looks at every connection this many times per ROOMS_IDLE_MS. */
const IDLE_CHECKS = 4;


interface RoomsState {
  /** the handshake was refused: the error is sent and the connection closed once open */
  refused?: { name: ErrorName; message: string; close: number };
  /** who it is and the rule set it works under: room (NtoN), user or agent (1toN); decided by the core */
  seat: Seat;
  /** frames received (heartbeats and ignored texts included) */
  rx: number;
  /** what the idle sweep saw last: rx + frames written + publishes to its topics */
  seen: number;
  /** idle sweeps in a row that saw nothing new */
  quiet: number;
  /** frames run one after another: a move or a container change is in place before the next frame */
  chain: Promise<void>;
  /** conversations (room or containers) whose topic this connection is in → the roomName its notices show */
  convs: Map<string, string>;
}

const st = (s: Session) => s.state as unknown as RoomsState;
/** What the rooms protocol uses of the node. */
export type RoomsNode = Pick<App, "hub" | "chat" | "logins" | "limits" | "cfg" | "log" | "containers" | "messaging" | "draining">;

export function roomsDialect(app: RoomsNode): Dialect {
  const { hub, chat, logins, limits, cfg, log } = app;
  const core = app.containers;
  const seats = new RoomsSeats(core);
  const commands = roomsCommands(core, app.messaging, seats, hub, {
    into,
    leave(s, conv) {
      hub.leave(s, conv);
      forget(s, conv);
    },
    elsewhere: (s, conv) => [...(hub.sessionsOf(s.userId!) ?? [])].some((x) => x !== s && x.dialect === dialect && st(x).convs.has(conv)),
  });
  /** this node's rooms connections by the conversation whose topic they are in */
  const inConv = new Map<string, Set<Session>>();
  const isHeartbeat = heartbeatTest(cfg.roomsHeartbeats);

  // Idle: like t-io, by the later of the last frame received and the last frame sent. Nothing is done per frame
  // but counting: a received frame adds to the connection's `rx`, a frame the hub writes to its socket to its
  // `framesOut`, a publish to a room or container topic to that topic's count here (one per node, not per
  // socket). One timer for all connections looks every ROOMS_IDLE_MS / 4; a connection whose sum did not move
  // for four looks in a row is closed: between ROOMS_IDLE_MS and 1.25 × it after its last traffic.
  const published = new Map<string, number>();
  const watched = new Set<Session>();
  let sweepTimer: ReturnType<typeof setInterval> | undefined;

  function traffic(s: Session): number {
    const state = st(s);
    let n = state.rx + (s.framesOut ?? 0);
    for (const conv of state.convs.keys()) n += published.get(conv) ?? 0;
    return n;
  }

  function sweep(): void {
    for (const s of watched) {
      const state = st(s);
      const n = traffic(s);
      if (n !== state.seen) {
        state.seen = n;
        state.quiet = 0;
      } else if (++state.quiet >= IDLE_CHECKS && !s.closed) {
        unwatch(s);
        s.ws.close(CloseCodes.idle, "idle");
      }
    }
  }

  function watch(s: Session): void {
    watched.add(s);
    sweepTimer ??= setInterval(sweep, Math.max(25, Math.floor(cfg.roomsIdleMs / IDLE_CHECKS)));
  }

  function unwatch(s: Session): void {
    if (!watched.delete(s) || watched.size) return;
    clearInterval(sweepTimer);
    sweepTimer = undefined;
  }

  const error = (s: Session, name: ErrorName, message: string, f?: Fields, retryAfterMs?: number) => hub.send(s, errorFrame(name, message, f, retryAfterMs));

  function join(s: Session, conv: string, label: string): boolean {
    if (s.closed) return false;
    hub.join(s, conv);
    st(s).convs.set(conv, label);
    let set = inConv.get(conv);
    if (!set) inConv.set(conv, (set = new Set()));
    set.add(s);
    return true;
  }

  /** Local bookkeeping of a connection leaving a topic (the hub's side is done by the caller or by its close). */
  function forget(s: Session, conv: string): void {
    st(s).convs.delete(conv);
    const set = inConv.get(conv);
    set?.delete(s);
    if (set?.size === 0) {
      inConv.delete(conv);
      published.delete(conv);
    }
  }

  /** The connection enters a room or container: subscribed, everyone there told, then what it missed. */
  async function into(s: Session, { conv, label }: Place): Promise<void> {
    const state = st(s);
    if (state.convs.has(conv) || !join(s, conv, label)) return;
    await core.notice(conv, label, "in", state.seat.me);
    const missed = await core.unseen(s.userId!, conv);
    for (const m of missed) hub.send(s, frameOf(m), m);
  }

  /** After the handshake: NtoN enters its room; 1toN enters the containers the user is in. */
  async function enter(s: Session): Promise<void> {
    for (const place of await seats.entries(st(s).seat)) await into(s, place);
  }

  async function handle(s: Session, raw: string): Promise<void> {
    const d = decode(raw);
    if ("ignore" in d) return void mIgnored.value++;
    if ("error" in d) return void error(s, "bad_frame", d.error);
    const fields = d.fields;
    try {
      // Every frame of this protocol is a message (or a room command): each takes a send token.
      const wait = limits.take(s, "send");
      if (wait) throw new CoreError("rate_limited", `too many frames, retry in ${wait} ms`, wait);
      const type = str(fields.eventType) ?? "ordinary";
      const cmd = commands.get(type);
      if (!cmd) throw new CoreError("unknown_type", `unknown eventType "${type}": one of ${EVENT_TYPES.join(", ")}`);
      const state = st(s);
      await cmd({ s, seat: state.seat, convs: state.convs }, fields);
    } catch (err) {
      const e = storeFailure(err);
      if (e instanceof CoreError) return void error(s, e.name, e.message, fields, e.retryAfterMs);
      log.error(`rooms frame from ${s.userId}: ${(e as Error).stack ?? e}`);
      error(s, "internal", "internal error, retry later", fields);
    }
  }

  /** Frames run in order, one at a time; `fn` never throws. */
  function queue(s: Session, fn: () => Promise<void>): Promise<void> {
    const state = st(s);
    const next = state.chain.then(fn).catch((e) => log.error(`rooms session ${s.id}: ${(e as Error).stack ?? e}`));
    state.chain = next;
    return next;
  }

  hub.onTopicEvent((topic, ev) => {
    // Sent to everyone in the room or container here: traffic for the idle rule.
    const n = published.get(topic);
    if (n !== undefined) published.set(topic, n + 1);
    else if (inConv.has(topic)) published.set(topic, 1);
    // A container closed (its outAll notice is out): this node's connections in it leave its topic.
    if (ev.type !== "roomNotice" || ev.action !== "outAll") return;
    const set = inConv.get(topic);
    if (!set) return;
    for (const x of [...set]) {
      hub.leave(x, topic);
      forget(x, topic);
    }
  });

  const dialect: Dialect = {
    name: "rooms",
    // What a connection was sent counts as delivered once written out: the protocol has no acknowledgement.
    marksOnPush: true,

    async upgrade(_req, url, peer) {
      const q = url.searchParams;
      const get = (k: string) => q.get(k) || undefined;
      const state: RoomsState = {
        seat: seatOf({ id: "", name: "", icon: "" }, { roomName: "" }),
        rx: 0,
        seen: 0,
        quiet: 0,
        chain: Promise.resolve(),
        convs: new Map(),
      };
      const refuse = (name: ErrorName, message: string, close: number) => ({ state: { ...state, refused: { name, message, close } } as never });
      const senderType = get("senderType");
      if (senderType && senderType.toUpperCase() !== "GROUP") return refuse("bad_request", `senderType ${senderType} is not supported: use GROUP`, 1008);
      const roomName = get("roomName");
      const containerId = get("containerId");
      const targetId = get("targetId");
      for (const [k, v] of [["roomName", roomName ?? ""], ["containerId", containerId], ["targetId", targetId]] as const) {
        if (v !== undefined && !ROOMS_KEY_RE.test(v)) return refuse("bad_request", `${k} must be 1-128 letters, digits or _ . @ : -`, 1008);
      }
      const name = get("name");
      const icon = get("icon");
      if ((name?.length ?? 0) > MAX_NAME || (icon?.length ?? 0) > MAX_ICON) return refuse("bad_request", `name is at most ${MAX_NAME} characters, icon ${MAX_ICON}`, 1008);

      // Who: a server token (JWT or one the app registered), or a client project's account and MD5 password.
      const token = get("token");
      const account = get("account");
      const password = get("password");
      const who = token ? await logins.byToken(token) : account && password ? await core.login(get("clientType"), account, password, peer) : undefined;
      if (!who) {
        const why = token ? "invalid or expired token" : account && password ? "wrong account or password" : "log in with account and password (or token)";
        return refuse("unauthorized", `登录失败 login failed: ${why}`, CloseCodes.authFailed);
      }
      const userId = get("userId");
      if (userId !== undefined && userId !== who.id) return refuse("unauthorized", "登录失败 login failed: userId is not the user of this login", CloseCodes.authFailed);
      const user = await chat.profile(who.id);
      state.seat = seatOf({ id: who.id, name: name ?? (user?.nick || who.id), icon: icon ?? user?.avatar ?? "" }, { roomName: roomName!, containerId, targetId });
      return { userId: who.id, role: who.role, state: state as never };
    },

    open(s) {
      const state = st(s);
      if (state.refused || !s.userId) {
        const r = state.refused ?? { name: "unauthorized" as const, message: "登录失败 login failed", close: CloseCodes.authFailed };
        error(s, r.name, r.message);
        return void s.ws.close(r.close, r.name === "unauthorized" ? "login failed" : "bad connect parameters");
      }
      const userId = s.userId;
      s.userId = undefined;
      watch(s);
      void queue(s, async () => {
        await hub.bindUser(s, userId, s.role ?? "user");
        try {
          await enter(s);
        } catch (e) {
          // Not in its room or containers: the client had better reconnect than talk into nothing.
          if (!(e instanceof CoreError)) log.error(`rooms enter ${userId}: ${(e as Error).stack ?? e}`);
          error(s, e instanceof CoreError ? e.name : "internal", e instanceof CoreError ? e.message : "could not enter, reconnect");
          s.ws.close(1011, "could not enter");
        }
      });
    },

    // The transport counts a frame in flight until this promise ends: the frames waiting in the chain count.
    message(s, data) {
      const state = st(s);
      if (state.refused || s.closed) return;
      state.rx++;
      const raw = typeof data === "string" ? data : data.toString("utf8");
      // A heartbeat is answered by silence: it only counts as traffic.
      if (isHeartbeat(raw)) return;
      return queue(s, () => handle(s, raw));
    },

    busy(s, data) {
      const state = st(s);
      if (state.refused || s.closed) return;
      state.rx++;
      const raw = typeof data === "string" ? data : data.toString("utf8");
      if (isHeartbeat(raw)) return;
      let f: Fields | undefined;
      try {
        const o = JSON.parse(raw);
        if (o && typeof o === "object" && !Array.isArray(o)) f = o;
      } catch {}
      error(s, "rate_limited", `too many frames waiting (at most ${cfg.maxFramesInFlight}): slow down`, f);
    },

    async close(s) {
      const state = st(s);
      unwatch(s);
      // A draining node skips the goodbyes: its clients reconnect elsewhere and catch up from their cursors.
      if (state.refused || app.draining) return;
      // After the frames still running: the hub took the connection out of its topics already, so the
      // counts the out notices carry no longer include it.
      await queue(s, async () => {
        const convs = [...state.convs];
        for (const [conv] of convs) forget(s, conv);
        // What it wrote out is marked delivered before the others hear that it left.
        if (s.userId) await hub.flushMarks(s.userId);
        for (const [conv, label] of convs) await core.notice(conv, label, "out", state.seat.me);
      });
    },

    encode,
  };
  return dialect;
}
