/// <reference lib="dom" />
// The operator's console in the browser: plain DOM, bundled by Bun (src/http/console.ts). The API key is asked
// for and kept in this page's memory only (never stored); every call goes to this server's API with it. Each
// page opens one live stream (server-sent events, GET /api/console/stream) and renders what it pushes, at most
// once a second; nothing polls.

type Json = any;

let apiKey = "";
/** bumped on every page change (and stream change): a stream of a page left behind stops */
let generation = 0;
const root = document.getElementById("root")!;

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api(path: string, init: { method?: string; body?: unknown } = {}, key = apiKey): Promise<Json> {
  const res = await fetch(path, {
    method: init.method ?? (init.body !== undefined ? "POST" : "GET"),
    headers: { authorization: `apikey ${key}`, ...(init.body !== undefined ? { "content-type": "application/json" } : {}) },
    body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  let body: Json = text;
  try {
    body = JSON.parse(text);
  } catch {}
  if (!res.ok) throw new ApiError(res.status, typeof body === "object" && body?.message ? body.message : `HTTP ${res.status}`);
  return body;
}

type Child = Node | string | number | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: (Child | Child[])[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
    else if (k === "className") el.className = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const fmtUptime = (s: number) => (s >= 86400 ? `${Math.floor(s / 86400)}d ` : "") + new Date(s * 1000).toISOString().slice(11, 19);
const fmtTime = (ms: number) => new Date(ms).toLocaleTimeString();
const n2 = (n: number) => (Math.round(n * 100) / 100).toString();

/** A small line chart of `values` (one a second; up to 600). */
function spark(label: string, values: number[]): HTMLElement {
  const w = 200;
  const hgt = 40;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", String(w));
  svg.setAttribute("height", String(hgt));
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, "polyline");
  const step = w / 599;
  const off = 600 - values.length;
  line.setAttribute("points", values.map((v, i) => `${((off + i) * step).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)}`).join(" "));
  svg.append(line);
  const last = values.length ? values[values.length - 1]! : 0;
  return h("div", { className: "chart" }, h("div", {}, `${label}: ${n2(last)} (max ${n2(max)}, 10 min)`), svg);
}

/** An event of the live stream (server-sent events: `event:` and `data:` lines, a blank line after). */
function parseEvent(block: string): { event: string; data: string } | undefined {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // a comment: the stream is alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : undefined;
}

/** Closes the current page's stream (set by `live`). */
let closeStream = () => {};
/** Reconnects wait 0.5 s, doubling up to this (± 25 %); data arriving resets it. */
const MAX_BACKOFF_MS = 5000;

/**
 * Opens the page's live stream (`GET /api/console/stream?<query>`, read with fetch: EventSource cannot send the
 * key) and renders each pushed `data` event (at most one a second). A stream that drops or cannot open is opened
 * again after a backoff; the indicator says "live" or "reconnecting". Leaving the page closes its stream.
 */
function live(query: string, render: (d: Json) => void, status: HTMLElement): void {
  closeStream();
  const gen = ++generation;
  const ctl = { abort: new AbortController(), timer: undefined as ReturnType<typeof setTimeout> | undefined };
  closeStream = () => {
    clearTimeout(ctl.timer);
    ctl.abort.abort();
  };
  const indicator = h("span", { id: "live", className: "live" }, "connecting");
  const note = h("span", { className: "muted" });
  status.className = "status";
  status.replaceChildren(indicator, " ", note);
  const show = (state: "live" | "reconnecting", text: string, bad = false) => {
    indicator.textContent = state;
    indicator.className = `live ${state === "live" ? "on" : "off"}`;
    note.textContent = text;
    note.className = bad ? "error" : "muted";
  };
  let backoff = 0;
  const connect = async () => {
    if (gen !== generation) return;
    const abort = (ctl.abort = new AbortController());
    let why = "the stream closed";
    try {
      const res = await fetch(`/api/console/stream?${query}`, { headers: { authorization: `apikey ${apiKey}` }, signal: abort.signal });
      if (res.status === 401) return logout();
      if (!res.ok || !res.body) {
        const body = await res.json().catch(() => undefined);
        throw new Error(body?.message ?? `HTTP ${res.status}`);
      }
      show("live", "");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done || gen !== generation) break;
        buf += value.replace(/\r\n?/g, "\n");
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const ev = parseEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (!ev || gen !== generation) continue;
          const body = JSON.parse(ev.data);
          if (ev.event === "data") {
            render(body);
            backoff = 0;
            show("live", `updated ${fmtTime(Date.now())}`);
          } else if (ev.event === "error") {
            show("live", body.body?.message ?? `HTTP ${body.status}`, true);
          } else if (ev.event === "end") {
            if (body.error === "unauthorized") return logout();
            why = body.message ?? "the stream ended";
          }
        }
      }
    } catch (e) {
      why = e instanceof Error ? e.message : String(e);
    }
    if (gen !== generation) return; // left the page: its stream was closed on purpose
    backoff = Math.min(backoff ? backoff * 2 : 500, MAX_BACKOFF_MS);
    const wait = Math.round(backoff * (0.75 + Math.random() / 2));
    show("reconnecting", `${why}; again in ${(wait / 1000).toFixed(1)} s`, true);
    ctl.timer = setTimeout(() => void connect(), wait);
  };
  void connect();
}

// ---- login ----

function loginPage(message = ""): void {
  closeStream();
  generation++;
  const key = h("input", { type: "password", id: "key", placeholder: "API key", autocomplete: "off", required: true });
  const err = h("div", { className: "error", id: "login-error" }, message);
  const form = h(
    "form",
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = "";
        try {
          await api("/api/console/cluster", {}, key.value);
          apiKey = key.value;
          key.value = "";
          // A new hash routes (hashchange); the same hash is routed here.
          if (!location.hash || location.hash === "#") location.hash = "#cluster";
          else route();
        } catch (x) {
          // 401: a wrong key, or a server without API_KEY (its message says so).
          err.textContent = x instanceof ApiError && x.status === 401 ? (x.message.includes("API_KEY") ? `Cannot sign in: ${x.message}` : "Wrong API key.") : `Cannot sign in: ${(x as Error).message}`;
        }
      },
    },
    key,
    h("button", { type: "submit", id: "login" }, "Sign in"),
  );
  root.replaceChildren(h("div", { className: "login" }, h("h2", {}, "chatd console"), h("p", { className: "muted" }, "Sign in with the server API key (API_KEY). It stays in this page's memory only."), form, err));
  key.focus();
}

function logout(): void {
  apiKey = "";
  loginPage("Signed out: the API key was refused.");
}

// ---- shell and routing ----

const pages: [string, string][] = [
  ["cluster", "Cluster"],
  ["rooms", "Live rooms"],
  ["desk", "Desk"],
  ["users", "Users"],
];

function shell(current: string, ...content: Node[]): void {
  const nav = h(
    "header",
    {},
    h("strong", {}, "chatd console"),
    pages.map(([id, label]) => h("a", { href: `#${id}`, className: current === id ? "on" : "", id: `nav-${id}` }, label)),
    h("span", { className: "who" }, h("a", { href: "#", id: "logout", onclick: (e: Event) => (e.preventDefault(), (apiKey = ""), loginPage()) }, "Sign out")),
  );
  root.replaceChildren(nav, h("section", {}, ...content));
}

function route(): void {
  if (!apiKey) return loginPage();
  closeStream();
  generation++;
  const [page, arg] = decodeURIComponent(location.hash.slice(1)).split("/", 2) as [string, string | undefined];
  if (page === "rooms" && arg) return roomPage(arg);
  if (page === "rooms") return roomsPage();
  if (page === "desk") return deskPage();
  if (page === "users") return usersPage(arg);
  return clusterPage();
}
window.addEventListener("hashchange", route);

// ---- cluster ----

function clusterPage(): void {
  const status = h("div", { className: "status" });
  const cards = h("div", { className: "cards", id: "nodes" });
  shell("cluster", h("h2", {}, "Cluster"), status, cards);
  live("page=cluster", ({ cluster: c }: Json) => {
    cards.replaceChildren(
      ...c.nodes.map((n: Json) => {
        if (n.stale) return h("div", { className: "card node", "data-node": n.node }, h("h3", {}, n.node), h("p", { className: "muted" }, "lease holds, no numbers for 5 s"));
        const hist: Json[] = n.history ?? [];
        const last = hist[hist.length - 1] ?? {};
        const conns = Object.entries(n.connections as Record<string, number>);
        const total = conns.reduce((a, [, v]) => a + v, 0);
        return h(
          "div",
          { className: "card node", "data-node": n.node },
          h("h3", {}, n.node, n.node === c.self ? h("span", { className: "muted" }, " (answering)") : null),
          h(
            "div",
            { className: "kv" },
            h("span", {}, "uptime"), h("span", {}, fmtUptime(n.uptimeSec)),
            h("span", {}, "connections"), h("span", { className: "conns" }, `${total}`, conns.length ? ` (${conns.map(([k, v]) => `${k} ${v}`).join(", ")})` : ""),
            h("span", {}, "messages in / s"), h("span", {}, n2(last.msgsIn ?? 0)),
            h("span", {}, "frames in / out / s"), h("span", {}, `${n2(last.framesIn ?? 0)} / ${n2(last.framesOut ?? 0)}`),
            h("span", {}, "writer batch"), h("span", {}, `${n2(last.batchRows ?? 0)} rows, ${n2(last.batchMs ?? 0)} ms, queue ${n.writerQueue}`),
            h("span", {}, "bus"), h("span", { className: n.bus.state === "ok" ? "ok" : "error" }, `${n.bus.kind}: ${n.bus.state}`),
            h("span", {}, "drops"), h("span", {}, `send ${n.drops.send}, bus ${n.drops.bus}, room overflow ${n.drops.roomOverflow}, room skipped ${n.drops.roomSkipped}`),
          ),
          h(
            "div",
            { className: "charts" },
            spark("messages in / s", hist.map((s) => s.msgsIn)),
            spark("frames in / s", hist.map((s) => s.framesIn)),
            spark("frames out / s", hist.map((s) => s.framesOut)),
            spark("room messages / s", hist.map((s) => s.roomMsgs)),
            spark("writer rows / batch", hist.map((s) => s.batchRows)),
            spark("writer ms / batch", hist.map((s) => s.batchMs)),
            spark("bus in / s", hist.map((s) => s.busIn)),
            spark("drops / s", hist.map((s) => s.drops)),
          ),
        );
      }),
    );
  }, status);
}

// ---- live rooms ----

function roomsPage(): void {
  const status = h("div", { className: "status" });
  const body = h("tbody", { id: "rooms" });
  const open = h("input", { placeholder: "room id", id: "room-id" });
  shell(
    "rooms",
    h("h2", {}, "Live rooms"),
    h("form", { onsubmit: (e: Event) => (e.preventDefault(), open.value && (location.hash = `#rooms/${encodeURIComponent(open.value)}`)) }, open, h("button", {}, "Open room")),
    status,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "room"), h("th", {}, "online"), h("th", {}, "danmaku / s"), h("th", {}, "must-deliver / s"), h("th", {}, "dropped"))), body),
  );
  live("page=rooms", ({ rooms: { rooms } }: Json) => {
    body.replaceChildren(
      ...(rooms.length
        ? rooms.map((r: Json) =>
            h(
              "tr",
              { className: "link", "data-room": r.room, onclick: () => (location.hash = `#rooms/${encodeURIComponent(r.room)}`) },
              h("td", {}, r.room),
              h("td", { className: "online" }, r.online),
              h("td", { className: "danmaku" }, n2(r.danmaku)),
              h("td", { className: "must" }, n2(r.must)),
              h("td", {}, r.dropped),
            ),
          )
        : [h("tr", {}, h("td", { colspan: 5, className: "muted" }, "no live room has members"))]),
    );
  }, status);
}

function roomPage(room: string): void {
  const enc = encodeURIComponent(room);
  const status = h("div", { className: "status" });
  const note = h("div", { className: "status", id: "action-result" });
  const facts = h("div", { className: "kv", id: "room-facts" });
  const mutes = h("tbody", { id: "mutes" });
  const msgs = h("tbody", { id: "room-msgs" });
  const act = (p: Promise<unknown>, done: string) =>
    p.then(
      () => ((note.textContent = done), (note.className = "status ok")),
      (e: Error) => ((note.textContent = e.message), (note.className = "status error")),
    );
  const slow = h("input", { type: "number", min: 0, max: 86400, value: 0, id: "slow-sec" });
  const muteUser = h("input", { placeholder: "user id", id: "mute-user" });
  const muteSec = h("input", { type: "number", min: 0, value: 600, id: "mute-sec" });
  const pubFrom = h("input", { placeholder: "from (user id)", id: "pub-from" });
  const pubClass = h("select", { id: "pub-class" }, h("option", { value: "droppable" }, "danmaku (droppable)"), h("option", { value: "must" }, "must-deliver"));
  const pubText = h("input", { placeholder: "text", id: "pub-text" });
  shell(
    "rooms",
    h("h2", {}, "Room ", h("span", { id: "room-name" }, room)),
    status,
    h(
      "div",
      { className: "cols" },
      h("div", {}, facts,
        h("h3", {}, "Slow mode"),
        h("form", { onsubmit: (e: Event) => (e.preventDefault(), act(api(`/api/rooms/${enc}`, { method: "PUT", body: { slowModeSec: Number(slow.value) } }), "slow mode set")) }, slow, "seconds (0: off)", h("button", { id: "slow-set" }, "Set")),
        h("h3", {}, "Mute"),
        h("form", { onsubmit: (e: Event) => (e.preventDefault(), act(api(`/api/rooms/${enc}/mutes/${encodeURIComponent(muteUser.value)}`, { method: "PUT", body: { seconds: Number(muteSec.value) } }), "muted")) }, muteUser, muteSec, "seconds", h("button", { id: "mute-set" }, "Mute")),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "muted user"), h("th", {}, "until"), h("th", {}))), mutes),
        h("h3", {}, "Publish"),
        h("form", { onsubmit: (e: Event) => (e.preventDefault(), act(api(`/api/rooms/${enc}/messages`, { body: { from: pubFrom.value, class: pubClass.value, kind: "text", body: { text: pubText.value } } }), "published")) }, pubFrom, pubClass, pubText, h("button", { id: "pub-send" }, "Publish")),
        note,
      ),
      h("div", { className: "msgs" }, h("h3", {}, "Last stored (must-deliver) messages"), h("table", {}, msgs)),
    ),
  );
  let slowSeen: number | undefined;
  live(`page=room&room=${enc}`, ({ info, stat, mutes: mu, msgs: hist }: Json) => {
    if (slowSeen !== info.slowModeSec) slow.value = String((slowSeen = info.slowModeSec));
    facts.replaceChildren(
      h("span", {}, "online"), h("span", { id: "room-online" }, stat.online),
      h("span", {}, "danmaku / s"), h("span", {}, n2(stat.danmaku)),
      h("span", {}, "must-deliver / s"), h("span", {}, n2(stat.must)),
      h("span", {}, "dropped"), h("span", {}, stat.dropped),
      h("span", {}, "slow mode"), h("span", { id: "room-slow" }, info.slowModeSec ? `${info.slowModeSec} s` : "off"),
      h("span", {}, "owner"), h("span", {}, info.owner ?? "none"),
      h("span", {}, "last seq"), h("span", {}, info.lastSeq),
    );
    mutes.replaceChildren(
      ...mu.map((m: Json) =>
        h("tr", { "data-muted": m.user }, h("td", {}, m.user), h("td", {}, new Date(m.mutedUntil).toLocaleString()), h("td", {}, h("button", { className: "plain", onclick: () => act(api(`/api/rooms/${enc}/mutes/${encodeURIComponent(m.user)}`, { method: "DELETE" }), "mute lifted") }, "Lift"))),
      ),
    );
    msgs.replaceChildren(...hist.msgs.map((m: Json) => h("tr", {}, h("td", {}, `#${m.seq} ${fmtTime(m.ts)}`), h("td", {}, m.from), h("td", {}, text(m.body)))));
  }, status);
}

const text = (body: unknown) => {
  const s = typeof body === "object" && body && "text" in body ? String((body as { text: unknown }).text) : JSON.stringify(body);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
};

// ---- desk ----

function deskPage(): void {
  const status = h("div", { className: "status" });
  const list = h("div", { id: "desk" });
  shell("desk", h("h2", {}, "Desk"), status, list);
  live("page=desk", ({ desk: { groups } }: Json) => {
    list.replaceChildren(
      ...(groups.length
        ? groups.map((g: Json) =>
            h(
              "div",
              { className: "card group", "data-group": g.id },
              h("h3", {}, `${g.name || g.id} `, h("span", { className: "muted" }, `(${g.id})${g.disabled ? " disabled" : ""}`)),
              h("div", { className: "cols" },
                h("table", {},
                  h("thead", {}, h("tr", {}, h("th", {}, "agent"), h("th", {}, "online"), h("th", {}, "load"), h("th", {}, "suspended"))),
                  h("tbody", {}, ...g.agents.map((a: Json) => h("tr", { "data-agent": a.id }, h("td", {}, a.nick ? `${a.nick} (${a.id})` : a.id), h("td", { className: a.online ? "ok" : "muted" }, a.online ? "online" : "offline"), h("td", {}, `${a.load} / ${a.capacity}`), h("td", {}, a.suspended ? "yes" : "no")))),
                ),
                h("table", {},
                  h("thead", {}, h("tr", {}, h("th", {}, `waiting (${g.queue.length})`), h("th", {}, "for"))),
                  h("tbody", { className: "queue" }, ...g.queue.map((q: Json) => h("tr", { "data-guest": q.guest }, h("td", {}, q.guest), h("td", {}, `${q.waitingSec} s`)))),
                ),
              ),
            ),
          )
        : [h("p", { className: "muted" }, "no agent group")]),
    );
  }, status);
}

// ---- users ----

function usersPage(user?: string): void {
  const status = h("div", { className: "status" });
  const input = h("input", { placeholder: "user id", id: "user-id", value: user ?? "" });
  const out = h("div", { id: "user" });
  const note = h("div", { className: "status", id: "user-result" });
  shell(
    "users",
    h("h2", {}, "Users"),
    h("form", { onsubmit: (e: Event) => (e.preventDefault(), input.value && (location.hash = `#users/${encodeURIComponent(input.value)}`)) }, input, h("button", { id: "lookup" }, "Look up")),
    status,
    note,
    out,
  );
  if (!user) return;
  const enc = encodeURIComponent(user);
  const profile = h("div", { className: "kv", id: "profile" });
  const convs = h("tbody", { id: "convs" });
  const msgs = h("tbody", { id: "conv-msgs" });
  const convTitle = h("h3", {}, "Recent messages");
  let disabled = false;
  const toggle = h("button", {
    id: "toggle-disabled",
    onclick: () =>
      api("/api/users", { body: { id: user, disabled: !disabled } }).then(
        (u: Json) => ((note.textContent = u.disabled ? "disabled" : "enabled"), (note.className = "status ok")),
        (e: Error) => ((note.textContent = e.message), (note.className = "status error")),
      ),
  });
  out.replaceChildren(
    h("div", { className: "cols" },
      h("div", {}, profile, h("p", {}, toggle)),
      h("div", {}, h("h3", {}, "Conversations"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "conversation"), h("th", {}, "kind"), h("th", {}, "unread"), h("th", {}, "last message"))), convs)),
      h("div", { className: "msgs" }, convTitle, h("table", {}, msgs)),
    ),
  );
  const render = ({ user: u, online: on, convs: list, msgs: hist }: Json) => {
    disabled = u.disabled;
    toggle.textContent = u.disabled ? "Enable user" : "Disable user";
    profile.replaceChildren(
      h("span", {}, "id"), h("span", {}, u.id),
      h("span", {}, "nick"), h("span", {}, u.nick),
      h("span", {}, "role"), h("span", {}, u.role),
      h("span", {}, "state"), h("span", { id: "user-state", className: u.disabled ? "error" : "ok" }, u.disabled ? "disabled" : "active"),
      h("span", {}, "online"),
      h("span", { id: "user-online" }, on.online ? on.nodes.map((n: Json) => (n.protocols ? `${n.node} (${Object.entries(n.protocols).map(([k, v]) => `${k} ${v}`).join(", ")})` : n.node)).join("; ") : "offline"),
    );
    convs.replaceChildren(
      ...list.map((c: Json) =>
        h(
          "tr",
          { className: "link", "data-conv": c.conv, onclick: () => watch(c.conv) },
          h("td", {}, c.name ? `${c.name} (${c.conv})` : c.conv),
          h("td", {}, c.kind),
          h("td", { className: "unread" }, c.unread),
          h("td", {}, c.last ? text(c.last.body) : ""),
        ),
      ),
    );
    if (hist) msgs.replaceChildren(...hist.msgs.map((m: Json) => h("tr", {}, h("td", {}, `#${m.seq} ${fmtTime(m.ts)}`), h("td", {}, m.from), h("td", {}, text(m.body)))));
  };
  /** (Re)opens the page's stream, with the recent messages of `conv` when one was clicked. */
  const watch = (conv?: string) => {
    if (conv) convTitle.textContent = `Recent messages of ${conv}`;
    live(`page=user&user=${enc}${conv ? `&conv=${encodeURIComponent(conv)}` : ""}`, render, status);
  };
  watch();
}

route();
