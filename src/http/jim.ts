// J-IM HTTP API (`/im/vanke/*`, docs/jim.md): register a user and its login token, find a visitor an
// agent, and the chat-list counters. Answers are `{code, msg, data}` as the original server's.
import { Elysia, t } from "elysia";
import type { App } from "../app.ts";
import { USER_ID_RE } from "../core/ids.ts";
import { apiKeyOk } from "./auth.ts";

const LOGIN_FAILED = "登录IM系统失败!";
const BUSY = "当前客服繁忙，建议您电话咨询!";
/** J-IM identity type → users.role */
const ROLES = ["visitor", "agent", "advisor"] as const;

const Int = t.Union([t.Integer(), t.String({ pattern: "^-?\\d+$" })]);
/** A user id, or empty / null for none. */
const OptId = t.Optional(t.Union([t.String({ pattern: "^[\\w.@-]{0,128}$" }), t.Null()]));

const RegisterBody = t.Object(
  {
    senderId: t.String({ pattern: USER_ID_RE.source, description: "the user to register" }),
    receiverId: OptId,
    nick: t.Optional(t.String({ maxLength: 128 })),
    avatar: t.Optional(t.String({ maxLength: 1024 })),
    terminal: t.Optional(t.String({ maxLength: 32 })),
    token: t.String({ minLength: 1, maxLength: 4096, description: "the login token the client will connect with" }),
    type: t.Optional(Int),
  },
  { additionalProperties: true },
);

const Reply = t.Object({ code: t.Integer(), msg: t.String(), data: t.Optional(t.Any()) });

const Profile = t.Object({
  id: t.String(),
  nick: t.String(),
  avatar: t.String(),
  status: t.String(),
  sign: t.Null(),
  terminal: t.String(),
  friends: t.Null(),
  groups: t.Null(),
  extras: t.Null(),
});

const ok = (data: unknown = null) => ({ code: 200, msg: "success", data });
const failed = (msg: string) => ({ code: 500, msg, data: null });

export function jimHttp(app: Pick<App, "store" | "logins" | "chat" | "presence" | "contacts">, apiKey: string | undefined) {
  const { store, logins, chat, presence, contacts } = app;
  const keyOk = (h: Record<string, string | undefined>) => apiKeyOk(apiKey, h.authorization);
  const terminalOf = (a: Record<string, unknown>) => (typeof a.terminal === "string" ? a.terminal : "ws");

  /**
   * initUser's rule: the app backend (server API key) registers anyone with any role, for 7 days; a client may
   * register itself when its `token` is already proof of `senderId` (a live JWT of TOKEN_SECRET, or a token
   * registered earlier), may not change its role that way, and its registration ends when that proof does
   * (a JWT's `exp`, the earlier registration's end): it never outlives what proved it.
   */
  async function register(body: typeof RegisterBody.static, headers: Record<string, string | undefined>): Promise<string | undefined> {
    const type = Number(body.type ?? 0);
    const role = ROLES[type];
    if (!role) return LOGIN_FAILED;
    const existing = await store.getUser(body.senderId);
    const trusted = keyOk(headers);
    let until: number | undefined;
    if (!trusted) {
      const proof = await logins.proof(body.token);
      if (proof?.id !== body.senderId || (role !== "visitor" && role !== existing?.role)) return LOGIN_FAILED;
      until = proof.until;
    }
    if (existing?.disabled) return LOGIN_FAILED;
    const attributes = body.terminal ? { ...(existing?.attributes ?? {}), terminal: body.terminal } : undefined;
    // Only the app backend changes an existing user's role.
    const newRole = trusted || !existing ? role : undefined;
    await store.upsertUser({ id: body.senderId, nick: body.nick, avatar: body.avatar, role: newRole, attributes });
    chat.forgetUser(body.senderId);
    if (!(await logins.register(body.senderId, body.token, until))) return LOGIN_FAILED;
    return undefined;
  }

  async function profile(id: string) {
    const u = await store.getUser(id);
    if (!u || u.disabled) return undefined;
    return {
      id: u.id,
      nick: u.nick,
      avatar: u.avatar,
      status: (await presence.isOnline(u.id)) ? "online" : "offline",
      sign: null,
      terminal: terminalOf(u.attributes),
      friends: null,
      groups: null,
      extras: null,
    };
  }

  return new Elysia({ prefix: "/im/vanke" })
    .post(
      "/initUser",
      async ({ body, headers, set }) => {
        const err = await register(body, headers);
        if (err) set.status = 401;
        return err ? failed(err) : ok();
      },
      {
        body: RegisterBody,
        response: { 200: Reply, 401: Reply },
        detail: {
          summary: "J-IM: register a user and the token it logs in with (7 days with the API key)",
          description:
            "Server API key (`Authorization: apikey <key>`): any user and role; `token` logs in for 7 days. Without it, `token` must " +
            "already prove `senderId` (a live JWT of TOKEN_SECRET or a live token registered before); then only type 0 (visitor) or the " +
            "user's current role is accepted, an existing user's role is kept, and the registration ends when the proving token does " +
            "(the JWT's `exp`, the earlier registration's end): an expired token registers and renews nothing. A JWT of this server " +
            "never logs in past its own `exp`, however it was registered.",
          tags: ["jim"],
        },
      },
    )
    .post(
      "/getReceiver",
      async ({ body, headers, set }) => {
        const err = await register(body, headers);
        if (err) {
          set.status = 401;
          return failed(err);
        }
        if (body.receiverId) {
          const p = await profile(body.receiverId);
          return p ? ok(p) : failed(BUSY);
        }
        if (Number(body.type ?? 0) !== 0) return ok(null);
        // A visitor without a receiver gets an online agent, else an online advisor.
        for (const role of ["agent", "advisor"]) {
          for (const id of await presence.sampleRole(role, 1)) {
            const p = await profile(id);
            if (p) return ok(p);
          }
        }
        return failed(BUSY);
      },
      {
        body: RegisterBody,
        response: { 200: t.Object({ code: t.Integer(), msg: t.String(), data: t.Union([Profile, t.Null()]) }), 401: Reply },
        detail: {
          summary: "J-IM: register a user and return its chat partner (a visitor is assigned an online agent or advisor)",
          description: `Registers as initUser does. No agent or advisor online: \`{"code":500,"msg":"${BUSY}"}\`.`,
          tags: ["jim"],
        },
      },
    )
    .post(
      "/chatInfo",
      async ({ body, headers, query, set }) => {
        const to = body.to ?? undefined;
        const from = body.from ?? undefined;
        const token = body.token ?? query.token ?? headers.token ?? headers.authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
        const allowed = keyOk(headers) || (to !== undefined && (await logins.byToken(token))?.id === to);
        if (!to || !from || !allowed) {
          set.status = allowed ? 400 : 401;
          return failed(allowed ? "`to` and `from` are required" : "unauthorized");
        }
        // The user has the conversation with `from` open: what `from` wrote is read.
        if (Number(body.isConcurrent ?? 0) === 1) await contacts.markRead(to, from);
        const rows = await contacts.list(to);
        const sum = contacts.summary(rows);
        return ok({
          to,
          from,
          pendingReplyNum: sum.awaiting,
          lastedContactsNum: sum.recent,
          allContactsNum: sum.all,
          unReadNum: rows.find((r) => r.peer === from)?.unread ?? 0,
        });
      },
      {
        body: t.Object(
          {
            to: OptId,
            from: OptId,
            op: t.Optional(Int),
            isNewMember: t.Optional(Int),
            isConcurrent: t.Optional(Int),
            token: t.Optional(t.String({ maxLength: 4096 })),
          },
          { additionalProperties: true },
        ),
        query: t.Object({ token: t.Optional(t.String()) }),
        response: { 200: Reply, 400: Reply, 401: Reply },
        detail: {
          summary: "J-IM: chat-list counters of `to` (awaiting reply, recent, all contacts, unread from `from`)",
          description:
            "Derived from the real conversations and read cursors. `isConcurrent: 1` marks what `from` wrote as read by `to`. " +
            "Needs the server API key, or the login token of `to` (body `token`, `?token=`, `token` header or `Authorization: Bearer`).",
          tags: ["jim"],
        },
      },
    );
}
