// Composition root: builds one node from a Config. main.ts runs it as a process; tests start it on port 0.
import { makeLogger, type App } from "./app.ts";
import type { Bus } from "./bus/bus.ts";
import { MemoryBus } from "./bus/memory.ts";
import { RedisBus, redisTarget } from "./bus/redis.ts";
import type { Config } from "./config.ts";
import { Chat } from "./core/chat.ts";
import { Contacts } from "./core/contacts.ts";
import { Containers } from "./core/containers.ts";
import { Logins } from "./core/logins.ts";
import { SessionLimits } from "./core/limits.ts";
import { Messaging } from "./core/send.ts";
import { Desk } from "./core/desk.ts";
import { Groups } from "./core/groups.ts";
import { Live } from "./core/live.ts";
import { Livepush } from "./core/livepush.ts";
import { Social } from "./core/social.ts";
import { Recalls } from "./core/recall.ts";
import { MessageRefs } from "./core/message-refs.ts";
import { ServiceAccounts } from "./core/service-accounts.ts";
import { MessageIndexStore } from "./store/message-index.ts";
import { IdGen, slotOf } from "./core/ids.ts";
import { TokenService } from "./core/tokens.ts";
import { LoginThrottle, MemoryAttempts } from "./core/ratelimit.ts";
import { RedisLoginAttempts } from "./presence/login-redis.ts";
import { UserChanges } from "./cluster/user-changes.ts";
import { GroupWriter } from "./core/writer.ts";
import { deskDialect } from "./dialects/desk/index.ts";
import { jimDialect } from "./dialects/jim/index.ts";
import { nativeDialect } from "./dialects/native/index.ts";
import { roomsDialect } from "./dialects/rooms/index.ts";
import { SOCIAL_PUSH_PATH, socialPush } from "./dialects/social/index.ts";
import { POLL_PATH as LIVEPUSH_POLL_PATH } from "./dialects/livepush/index.ts";
import { httpApp } from "./http/api.ts";
import { Hub } from "./hub/hub.ts";
import { MemoryPresence } from "./presence/memory.ts";
import { RedisPresence } from "./presence/redis.ts";
import { MemoryDeskState } from "./desk/memory.ts";
import { RedisDeskState } from "./desk/redis.ts";
import { Keys } from "./bus/keys.ts";
import type { Presence } from "./presence/presence.ts";
import type { Dialect } from "./hub/session.ts";
import { AppTokenStore } from "./store/app-tokens.ts";
import { ContainerStore } from "./store/containers.ts";
import { openDb } from "./store/db.ts";
import { DeskStore } from "./store/desk.ts";
import { InboxStore } from "./store/inbox.ts";
import { MembershipStore } from "./store/memberships.ts";
import { RecallStore } from "./store/recall.ts";
import { ReceiptStore } from "./store/receipts.ts";
import { RoomStore } from "./store/rooms.ts";
import { SocialStore } from "./store/social.ts";
import { ConversationStore } from "./store/conversations.ts";
import { MessageStore } from "./store/messages.ts";
import { MessagePartitions } from "./store/partitions.ts";
import { Store } from "./store/store.ts";
import { UserStore } from "./store/users.ts";
import { closeAll, listen, type Listener } from "./transport/server.ts";
import { PresenceNotices } from "./core/presence-notices.ts";
import { ConsoleStats } from "./console/stats.ts";
import { ConsoleStreams } from "./console/stream.ts";
import { Webhooks } from "./core/webhooks.ts";
import { Moderation } from "./core/moderation.ts";
import { fetchSender } from "./adapters/http-sender.ts";
import { WebhookOutboxStore } from "./store/webhook-outbox.ts";

export interface Running {
  app: App;
  port: number;
  /** the JIM_PORT listener's port (resolved when JIM_PORT=0) */
  jimPort?: number;
  /** the DESK_PORT listener's port (resolved when DESK_PORT=0) */
  deskPort?: number;
  /** the ROOMS_PORT listener's port (resolved when ROOMS_PORT=0) */
  roomsPort?: number;
  listeners: Listener[];
  /** Graceful stop: refuse new connections, tell clients to reconnect, flush writes, close. */
  stop(): Promise<void>;
}

export async function startServer(cfg: Config, opts: { bus?: Bus; memoryDb?: boolean; reusePort?: boolean } = {}): Promise<Running> {
  const log = makeLogger(cfg.logLevel, cfg.nodeId);
  const warn = (m: string) => log.warn(m);

  // Adapters: the store (one implementation per port), the bus and presence.
  const db = await openDb({
    databaseUrl: cfg.databaseUrl,
    dataDir: cfg.dataDir,
    memory: opts.memoryDb,
    connectTimeoutSec: cfg.dbConnectTimeoutSec,
    partitions: { interval: cfg.messagePartitionInterval, ahead: cfg.messagePartitionsAhead },
  });
  const users = new UserStore(db.db);
  const conversations = new ConversationStore(db.db);
  // The services that read users, conversations and messages together take them as one object.
  const store = new Store(db.db, { users, conversations, messages: new MessageStore(db.db, cfg.messagePartitionInterval, db.appendDb) });
  // The messages table's partitions (store/partitions.ts): openDb created the current and next ones; they are
  // created ahead every hour from now on, and old ones dropped past MESSAGE_RETENTION_DAYS (now, then hourly).
  const partitions = new MessagePartitions(db.db, {
    interval: cfg.messagePartitionInterval,
    ahead: cfg.messagePartitionsAhead,
    retentionDays: cfg.messageRetentionDays,
  });
  await partitions.maintain().catch((e) => warn(`message partitions: ${e instanceof Error ? e.message : e}`));
  partitions.start(warn);
  const memberships = new MembershipStore(db.db);
  const inboxes = new InboxStore(db.db);
  const keys = new Keys(cfg.redisPrefix, cfg.redisCluster);
  const redis = redisTarget(cfg);
  const bus: Bus = opts.bus ?? (redis ? await RedisBus.connect(redis, log, cfg.busQueueMax) : new MemoryBus());
  const presence: Presence = redis
    ? await RedisPresence.connect(redis, keys, cfg.nodeId, cfg.presenceTtlSec, slotOf(cfg.nodeId), log)
    : new MemoryPresence();
  // Password-login attempts: counted in Redis across the cluster, in memory alone.
  const attempts = redis ? await RedisLoginAttempts.connect(redis, keys, log) : undefined;
  // Desk routing state: on Redis, hooked into the presence leases, in a cluster; in memory alone.
  const deskState = redis && presence instanceof RedisPresence ? await RedisDeskState.connect(redis, keys, presence, log) : new MemoryDeskState();

  const ids = new IdGen(cfg.nodeId, presence instanceof RedisPresence ? presence.slot : undefined);
  const writer = new GroupWriter((items, stages) => store.appendBatch(items, stages), cfg.writerBatchRows, cfg.writerBatchMs, {
    queueMax: cfg.writerQueueMax,
    commitTimeoutMs: cfg.sendCommitTimeoutMs,
    // A batch's acks and pushes go out corked: one write per socket (Hub.corkTurn).
    onCommit: () => hub.corkTurn(),
  });
  // Webhooks to the app backend (core/webhooks.ts): absent without a WEBHOOK_URL*.
  const webhooks = Object.keys(cfg.webhookUrls).length
    ? new Webhooks(
        {
          urls: cfg.webhookUrls,
          secret: cfg.webhookSecret,
          timeoutMs: cfg.webhookTimeoutMs,
          retryForMs: cfg.webhookRetrySec * 1000,
          queueMax: cfg.webhookQueueMax,
          batchMs: cfg.webhookBatchMs,
          deskWaitMs: cfg.webhookDeskWaitMs,
          flushMs: cfg.webhookFlushMs,
          pollMs: cfg.webhookPollMs,
        },
        {
          sender: fetchSender,
          outbox: new WebhookOutboxStore(db.db),
          node: cfg.nodeId,
          onlineOf: (u) => presence.onlineOf(u),
          roomCount: (t) => presence.roomCount(t),
          guestPosition: async (g) => (await deskState.guest(g)).position,
          log: warn,
        },
      )
    : undefined;
  // The hub and the core call each other: the core pushes events through the hub, and the hub reports the
  // pushes a socket wrote out (delivered marks) and the topics a connection entered or left (live rooms).
  const hub: Hub = new Hub(
    bus,
    presence,
    cfg.nodeId,
    log.warn,
    {
      backpressureBytes: cfg.backpressureBytes,
      resyncMs: cfg.roomResyncMs,
      // Pushes of protocols without acknowledgements, and pulled pages, are marked delivered once written out
      // (core/delivery.ts).
      markDelivered: { pushed: (user, pushed) => chat.markPushed(user, pushed), pulled: (marks) => chat.markPulled(marks) },
      watcher: {
        joined: (u, t) => (live.entered(u, t), webhooks?.room(t, 1)),
        left: (u, t) => (live.left(u, t), webhooks?.room(t, -1)),
      },
      // A user online anywhere / offline everywhere: the members of its groups are told (core/presence-notices.ts).
      presenceChanged: (u, change) => (webhooks?.presence(u, change), presenceNotices.changed(u, change)),
    },
    keys,
  );
  const presenceNotices = new PresenceNotices({ memberships, users, presence, emit: (ev) => hub.dispatch(ev), log: warn });
  // The users of a node that died are offline once its lease is swept (by one node): their groups are told too.
  if (presence instanceof RedisPresence) {
    // All queued at once: their groups are looked up together (in slices of NOTICE_BATCH), told in this order.
    presence.onUsersGone((ids) => void Promise.all(ids.map((u) => (webhooks?.presence(u, "offline"), presenceNotices.changed(u, "offline")))));
  }

  // The core, in dependency order.
  const chat: Chat = new Chat({
    store,
    inboxes,
    receipts: new ReceiptStore(db.db),
    writer,
    ids,
    // Hosting auto-replies see messages of every protocol; the committing node tells the app of messages to users
    // offline everywhere (once per message).
    emit: (ev, skip) => {
      hub.dispatch(ev, skip);
      livepush.observe(ev);
      webhooks?.observe(ev);
    },
    flushPushed: (u) => hub.flushMarks(u),
    receiptDebounceMs: cfg.receiptDebounceMs,
    log: (m) => log.error(m),
    userChanged: (id) => userChanges.changed(id),
  });
  // A user changed on any node (disabled, role): every node drops its cached copy and ends a disabled user's connections.
  const userChanges = new UserChanges(
    bus,
    keys,
    {
      dropUser: (id) => {
        chat.dropUser(id);
        livepush.dropProfile(id);
      },
      activeUser: (id) => chat.activeUser(id),
    },
    hub,
    warn,
  );
  await userChanges.start();
  const throttle = new LoginThrottle(
    attempts ?? new MemoryAttempts(),
    {
      windowMs: cfg.loginWindowSec * 1000,
      perAccountAddress: cfg.loginMaxPerAccountAddress,
      perAccount: cfg.loginMaxPerAccount,
      perAddress: cfg.loginMaxPerAddress,
    },
    warn,
  );
  const tokens = new TokenService(cfg.tokenSecret, cfg.tokenMaxTtlSec);
  const logins = new Logins({
    throttle,
    chat,
    tokens,
    appTokens: new AppTokenStore(db.db),
    passwordHash: async (id) => (await users.getUser(id))?.passwordHash,
  });
  const live: Live = new Live({
    store,
    rooms: new RoomStore(db.db),
    chat,
    ids,
    tickMs: cfg.roomTickMs,
    publish: (conv, ev, toOthers) => hub.publish(conv, ev, undefined, toOthers),
    emit: (ev) => hub.dispatch(ev),
    count: (conv) => presence.roomCount(conv),
    log: warn,
  });
  hub.onRemoteTopicEvent((topic, ev) => live.remote(topic, ev));
  const groups = new Groups(store, memberships, chat, ids, (ev, skip) => hub.dispatch(ev, skip));
  const deskService = new Desk(store, new DeskStore(db.db), chat, (ev) => hub.dispatch(ev), warn, deskState, webhooks && ((g, grp) => webhooks.guestQueued(g, grp)));
  const containers = new Containers({
    throttle,
    store,
    memberships,
    records: new ContainerStore(db.db),
    chat,
    publish: (topic, ev) => hub.publish(topic, ev),
    count: (topic) => presence.roomCount(topic),
    log: warn,
  });
  // One send command for every protocol and the server API: direct, group, desk, live room or rooms conversation.
  const moderation = Object.keys(cfg.moderationUrls).length
    ? new Moderation({ urls: cfg.moderationUrls, secret: cfg.webhookSecret, timeoutMs: cfg.moderationTimeoutMs, failOpen: cfg.moderationFailOpen }, fetchSender, warn)
    : undefined;
  const messaging = new Messaging({ chat, groups, desk: deskService, live, containers, moderation });
  const messageIndex = new MessageIndexStore(db.db);
  const socialGraph = new SocialStore(db.db);
  const livepush: Livepush = new Livepush({
    chat,
    messaging,
    users,
    graph: socialGraph,
    online: presence,
    emit: (ev) => hub.dispatch(ev),
    newId: () => String(ids.next(Date.now())),
    settings: {
      systemUser: cfg.livepushSystemUser,
      newUserSec: cfg.livepushNewUserSec,
      onlineCooldownSec: cfg.livepushOnlineCooldownSec,
      vipHosts: cfg.livepushVipHosts,
      newUserHosts: cfg.livepushNewUserHosts,
      vipBuyHosts: cfg.livepushVipBuyHosts,
      hostingMales: cfg.livepushHostingMales,
      followersMax: cfg.livepushFollowersMax,
      replyWindowSec: cfg.livepushReplyWindowSec,
      greetMax: cfg.livepushGreetMax,
      profileTtlSec: cfg.livepushProfileTtlSec,
    },
    log: warn,
  });
  await livepush.start();
  const app: App = {
    cfg,
    store,
    storeDriver: db.driver,
    bus,
    presence,
    hub,
    chat,
    writesFailing: () => writer.storeError,
    tokens,
    logins,
    contacts: new Contacts({ store, memberships, inboxes, chat, presence }),
    groups,
    memberships,
    social: new Social(socialGraph, users, chat, (ev) => hub.dispatch(ev), (me, other) => livepush.followed(me, other)),
    recalls: new Recalls(
      new RecallStore(db.db),
      conversations,
      webhooks ? { recalled: (conv, id, seq, by) => (live.recalled(conv, id, seq, by), webhooks.recalled(conv, id, seq, by)) } : live,
      cfg.recallWindowSec,
      (ev, skip) => (hub.dispatch(ev, skip), webhooks?.observe(ev)),
    ),
    live,
    livepush,
    desk: deskService,
    messaging,
    limits: new SessionLimits({ rate: cfg.sendRate, burst: cfg.sendBurst, readCost: cfg.readCost }),
    containers,
    messageRefs: new MessageRefs(messageIndex, chat),
    serviceAccounts: new ServiceAccounts({ index: messageIndex, chat, messaging }),
    log,
    startedAt: Date.now(),
    draining: false,
  };
  bus.onRecover?.(() => hub.busRecovered());

  const jim = jimDialect(app);
  const desk = deskDialect(app);
  const rooms = roomsDialect(app);
  const routes: Record<string, Dialect> = { "/ws": nativeDialect(app), "/jim": jim, "/desk": desk, "/rooms": rooms };
  routes[SOCIAL_PUSH_PATH] = socialPush(app);
  const consoleStats = new ConsoleStats(app, keys);
  const consoleStreams = new ConsoleStreams({ max: cfg.consoleStreamsMax, perCredential: cfg.consoleStreamsPerKey });
  const http = httpApp(app, consoleStats, consoleStreams);
  // A long poll outlives Bun's HTTP idle timeout: its request gets the poll timeout and some margin.
  const holds = new Map([[LIVEPUSH_POLL_PATH, cfg.livepushPollSec + 10]]);
  const main = listen(app, http, routes, { port: cfg.port, hostname: cfg.host, reusePort: opts.reusePort, holds });
  const listeners = [main];
  // Original J-IM clients connect to ws://host:<JIM_PORT>/ on any path, and call /im/vanke/* on the same host.
  if (cfg.jimPort !== undefined) {
    listeners.push(listen(app, http, {}, { port: cfg.jimPort, hostname: cfg.host, reusePort: opts.reusePort, anyPath: jim }));
  }
  // Original desk consoles connect to ws://host:<DESK_PORT>/.
  if (cfg.deskPort !== undefined) {
    listeners.push(listen(app, http, {}, { port: cfg.deskPort, hostname: cfg.host, reusePort: opts.reusePort, anyPath: desk }));
  }
  // Original rooms clients connect to ws://host:<ROOMS_PORT>?name=..&userId=..&roomName=..
  if (cfg.roomsPort !== undefined) {
    listeners.push(listen(app, http, {}, { port: cfg.roomsPort, hostname: cfg.host, reusePort: opts.reusePort, anyPath: rooms }));
  }

  return {
    app,
    port: main.port,
    jimPort: listeners.find((l) => l.dialect === jim)?.port,
    deskPort: listeners.find((l) => l.dialect === desk)?.port,
    roomsPort: listeners.find((l) => l.dialect === rooms)?.port,
    listeners,
    async stop() {
      if (app.draining) return;
      app.draining = true;
      closeAll(app);
      consoleStreams.close();
      // Clients close their side and go; the writes they sent before are flushed either way.
      const deadline = Date.now() + cfg.drainTimeoutSec * 1000;
      while (app.hub.all.size > 0 && Date.now() < deadline) await Bun.sleep(20);
      await writer.flush();
      await presenceNotices.settled();
      // Held webhook events get what is left of the drain time (the offline events of the last users included).
      await webhooks?.drain(Math.max(0, deadline - Date.now()));
      await hub.marks?.stop();
      chat.receipts.stop();
      live.stop();
      await consoleStats.stop();
      for (const l of listeners) l.server.stop(true);
      await app.desk.close().catch((e) => log.warn(`desk close: ${e}`));
      await presence.close();
      await attempts?.close();
      await bus.close();
      partitions.stop();
      await db.close();
    },
  };
}
