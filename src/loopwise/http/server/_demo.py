"""The live demo: a page with an SSE feed and a WebSocket chat, served by the loopwise server kit.

``loopwise demo serve`` or ``python -m loopwise.demo`` runs it on 127.0.0.1:8080.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

from aiohttp import web

from loopwise.http.server._app import create_app
from loopwise.http.server._hub import HubConnection, WebSocketHub
from loopwise.http.server._sse import EventChannel

__all__ = ["make_demo_app"]

HUB_KEY = web.AppKey("loopwise.demo.hub", WebSocketHub)
FEED_KEY = web.AppKey("loopwise.demo.feed", EventChannel)
MAX_TEXT = 500
MAX_NAME = 40


def make_demo_app(
    *,
    tick_interval: float = 1.0,
    retry_ms: int = 1000,
    allowed_origins: Iterable[str] = (),
) -> web.Application:
    """The demo application: ``/`` (the page), ``/favicon.ico``, ``/events`` (SSE feed), ``/ws``
    (chat), ``/api/stats`` and ``POST /api/feed/drop`` (ends every feed stream; browsers resume).

    Only pages from ``allowed_origins`` (the address it is served on) may open the chat, the
    feed or drop it: anything else gets a 403 problem."""
    if not tick_interval > 0:
        raise ValueError(f"tick_interval must be positive, got {tick_interval!r}")
    hub = WebSocketHub(on_message=_on_chat, on_connect=_on_join, on_disconnect=_on_leave)
    feed = EventChannel(history=1000, keepalive=15.0, retry_ms=retry_ms)
    app = create_app(allowed_origins=allowed_origins)
    app[HUB_KEY] = hub
    app[FEED_KEY] = feed
    app.router.add_get("/", _page)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_get("/events", feed.handler)
    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/api/stats", _stats)
    app.router.add_post("/api/feed/drop", _drop)
    app.cleanup_ctx.append(_ticker(tick_interval))
    return app


def _ticker(interval: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ticker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_tick_forever(app, interval))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return ticker


async def _tick_forever(app: web.Application, interval: float) -> None:
    feed, hub = app[FEED_KEY], app[HUB_KEY]
    n = 0
    while True:
        n += 1
        now = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        data = {"n": n, "time": now, "chatters": hub.statistics().clients}
        await feed.publish(json.dumps(data), event="tick")
        await asyncio.sleep(interval)


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def _favicon(request: web.Request) -> web.Response:
    return web.Response(
        text=FAVICON,
        content_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#0f172a"/>'
    '<path d="M9 16a7 7 0 1 1 7 7" fill="none" stroke="#38bdf8" stroke-width="3.5" '
    'stroke-linecap="round"/><circle cx="16" cy="23" r="2.6" fill="#22c55e"/></svg>'
)


async def _stats(request: web.Request) -> web.Response:
    hub, feed = request.app[HUB_KEY].statistics(), request.app[FEED_KEY].statistics()
    return web.json_response(
        {
            "hub": dataclasses.asdict(hub),
            "feed": dataclasses.asdict(feed),
        }
    )


async def _drop(request: web.Request) -> web.Response:
    feed = request.app[FEED_KEY]
    dropped = feed.disconnect_all()
    # Published while every client is away: each must get it back from the history.
    await feed.publish(json.dumps({"text": f"dropped {dropped} feed connection(s)"}), event="note")
    return web.json_response({"dropped": dropped})


async def _on_join(conn: HubConnection) -> None:
    hub = conn.request.app[HUB_KEY]
    await hub.broadcast(json.dumps({"type": "presence", "clients": hub.statistics().clients}))


async def _on_leave(conn: HubConnection) -> None:
    hub = conn.request.app[HUB_KEY]
    await hub.broadcast(json.dumps({"type": "presence", "clients": hub.statistics().clients}))


async def _on_chat(conn: HubConnection, data: str | bytes) -> None:
    try:
        message = json.loads(data)
        name, text = str(message.get("name") or "anonymous").strip(), str(message["text"]).strip()
    except (ValueError, KeyError, TypeError, AttributeError):
        await conn.send(json.dumps({"type": "error", "detail": 'send {"name": ..., "text": ...}'}))
        return
    if not text or len(text) > MAX_TEXT:
        detail = f"a message has 1 to {MAX_TEXT} characters"
        await conn.send(json.dumps({"type": "error", "detail": detail}))
        return
    out = {"type": "chat", "name": name[:MAX_NAME], "text": text, "from": conn.id}
    await conn.request.app[HUB_KEY].broadcast(json.dumps(out))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loopwise demo</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<style>
  :root { --bg:#0f172a; --card:#111c33; --line:#23314f; --fg:#e2e8f0; --dim:#94a3b8;
          --ok:#22c55e; --warn:#f59e0b; --bad:#ef4444; --accent:#38bdf8; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
  header { padding:18px 28px; border-bottom:1px solid var(--line); display:flex;
           align-items:baseline; gap:16px; }
  header h1 { margin:0; font-size:20px; } header span { color:var(--dim); }
  main { display:grid; grid-template-columns:1fr 1fr; gap:20px; padding:20px 28px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:10px;
            padding:16px; display:flex; flex-direction:column; min-height:420px; }
  h2 { margin:0 0 8px; font-size:16px; display:flex; justify-content:space-between; }
  .pill { font-size:12px; padding:2px 10px; border-radius:99px; background:var(--line); }
  .pill.ok { background:#14532d; color:#bbf7d0; } .pill.warn { background:#713f12; color:#fde68a; }
  .pill.bad { background:#7f1d1d; color:#fecaca; }
  .counters { display:flex; gap:14px; color:var(--dim); font-size:13px; margin-bottom:8px;
              flex-wrap:wrap; }
  .counters b { color:var(--fg); }
  ol { list-style:none; margin:0; padding:0; overflow:auto; flex:1; max-height:320px;
       font-family:ui-monospace, monospace; font-size:13px; }
  li { padding:3px 6px; border-bottom:1px solid var(--line); }
  li.note { color:var(--warn); } li.gap { color:var(--bad); } li.me b { color:var(--accent); }
  form { display:flex; gap:8px; margin-top:10px; }
  input { background:var(--bg); color:var(--fg); border:1px solid var(--line); border-radius:6px;
          padding:7px 9px; font:inherit; }
  #chat-name { width:110px; } #chat-text { flex:1; }
  button { background:var(--accent); color:#082f49; border:0; border-radius:6px; padding:7px 14px;
           font:inherit; font-weight:600; cursor:pointer; }
  button.secondary { background:var(--line); color:var(--fg); }
  footer { padding:0 28px 20px; color:var(--dim); font-size:13px; }
  section, input { min-width:0; }
  @media (max-width: 720px) {
    header { padding:12px 14px; flex-wrap:wrap; gap:4px 16px; }
    main { grid-template-columns:1fr; gap:14px; padding:14px; }
    section { min-height:0; }
    #chat-name { width:80px; }
    footer { padding:0 14px 14px; }
  }
</style>
</head>
<body>
<header><h1>loopwise demo</h1>
  <span>Server-Sent Events that resume without loss &middot; a WebSocket hub no slow client
  can stall</span></header>
<main>
<section>
  <h2>Live feed <span id="sse-status" class="pill">connecting</span></h2>
  <div class="counters">
    <span>events <b id="feed-count">0</b></span><span>last id <b id="feed-last-id">-</b></span>
    <span>missing <b id="feed-missing">0</b></span>
    <span>duplicates <b id="feed-duplicates">0</b></span>
    <span>reconnects <b id="feed-reconnects">0</b></span><span>gaps <b id="feed-gaps">0</b></span>
  </div>
  <ol id="feed"></ol>
  <form onsubmit="return false"><button id="drop-btn" class="secondary" type="button">
    Drop the feed connections</button></form>
</section>
<section>
  <h2>Chat <span id="ws-status" class="pill">connecting</span></h2>
  <div class="counters"><span>people here <b id="chat-clients">0</b></span></div>
  <ol id="chat-log"></ol>
  <form id="chat-form">
    <input id="chat-name" placeholder="name" maxlength="40">
    <input id="chat-text" placeholder="say something" maxlength="500" autocomplete="off">
    <button type="submit">Send</button>
  </form>
</section>
</main>
<footer id="stats">&nbsp;</footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const feed = { count: 0, last: 0, missing: 0, duplicates: 0, opens: 0, gaps: 0 };
function pill(id, text, kind) {
  const el = $(id); el.textContent = text; el.className = "pill " + kind;
}
function add(list, html, cls) {
  const li = document.createElement("li"); li.innerHTML = html; if (cls) li.className = cls;
  list.prepend(li); while (list.children.length > 200) list.lastChild.remove();
}
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";"); }
function renderFeed() {
  $("feed-count").textContent = feed.count; $("feed-last-id").textContent = feed.last || "-";
  $("feed-missing").textContent = feed.missing; $("feed-duplicates").textContent = feed.duplicates;
  $("feed-reconnects").textContent = Math.max(0, feed.opens - 1);
  $("feed-gaps").textContent = feed.gaps;
}
function onEvent(e, render) {
  const id = Number(e.lastEventId);
  if (feed.last && id <= feed.last) { feed.duplicates++; }
  else { if (feed.last && id > feed.last + 1) feed.missing += id - feed.last - 1; feed.last = id; }
  feed.count++; render(JSON.parse(e.data), id); renderFeed();
}
const es = new EventSource("/events");
es.onopen = () => { feed.opens++; pill("sse-status", "live", "ok"); renderFeed(); };
es.onerror = () => pill("sse-status", "reconnecting", "warn");
es.addEventListener("tick", (e) => onEvent(e, (d, id) =>
  add($("feed"), "#" + id + " &middot; tick " + d.n + " at " + esc(d.time) + " UTC")));
es.addEventListener("note", (e) => onEvent(e, (d, id) =>
  add($("feed"), "#" + id + " &middot; " + esc(d.text), "note")));
es.addEventListener("gap", (e) => { feed.gaps++; const d = JSON.parse(e.data);
  feed.last = d.first_available_id - 1; renderFeed();
  add($("feed"), "events after #" + d.last_event_id + " are gone (" + esc(d.reason) + ")",
      "gap"); });
$("drop-btn").onclick = () => fetch("/api/feed/drop", { method: "POST" });

let ws, me = null;
function connectChat() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => pill("ws-status", "connected", "ok");
  ws.onclose = (e) => { pill("ws-status", "closed " + e.code + ", retrying", "bad");
                        setTimeout(connectChat, 1000); };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "presence") $("chat-clients").textContent = m.clients;
    else if (m.type === "error") add($("chat-log"), esc(m.detail), "gap");
    else if (m.type === "chat") add($("chat-log"), "<b>" + esc(m.name) + "</b> " + esc(m.text),
                                    m.name === $("chat-name").value ? "me" : "");
  };
}
connectChat();
$("chat-form").onsubmit = (e) => {
  e.preventDefault(); const text = $("chat-text").value.trim();
  if (!text || ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ name: $("chat-name").value || "anonymous", text }));
  $("chat-text").value = "";
};
async function refreshStats() {
  try {
    const s = await (await fetch("/api/stats")).json();
    $("stats").textContent = "server: " + s.hub.clients + " chat client(s), " +
      s.feed.subscribers + " feed stream(s), " + s.feed.published + " events published, " +
      s.feed.replayed + " replayed on resume, " + (s.hub.evicted_full + s.hub.evicted_timeout) +
      " slow client(s) evicted";
  } catch (err) { $("stats").textContent = "server unreachable"; }
}
refreshStats(); setInterval(refreshStats, 1000);
</script>
</body>
</html>
"""
