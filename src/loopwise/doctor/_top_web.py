"""``loopwise top PID --web``: the ``top`` view as a live page, pushed over Server-Sent Events.

The page is served on 127.0.0.1 only, under a random path printed once (another local user
cannot guess it, so cannot read the watched process through it). Every ``interval`` seconds the
server asks the process's monitor for a ``top`` frame and publishes it on an
:class:`~loopwise.http.server.EventChannel` as an event named ``frame``; when the process ends,
an event named ``gone`` says so and the page stops updating. The page builds its DOM with
``textContent`` only (task names come from the watched program and are never parsed as HTML),
and fits a phone-width screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from loopwise.doctor._monitor_client import MonitorUnavailable, request
from loopwise.http.server import EventChannel, create_app, run

__all__ = ["make_top_app", "serve_top"]

CHANNEL_KEY = web.AppKey("loopwise.top.channel", EventChannel)


def make_top_app(pid: int, token: str, *, interval: float = 1.0) -> web.Application:
    """The page at ``/<token>/`` and its event stream at ``/<token>/events``."""
    channel = EventChannel(history=1, keepalive=15.0, retry_ms=1000)
    app = create_app()
    app[CHANNEL_KEY] = channel

    async def page(request_: web.Request) -> web.Response:
        return web.Response(text=PAGE.replace("{pid}", str(pid)), content_type="text/html")

    async def poll() -> None:
        while True:
            try:
                frame = await asyncio.to_thread(request, pid, "top")
            except MonitorUnavailable as exc:
                await channel.publish(str(exc), event="gone")
                return
            await channel.publish(json.dumps(frame), event="frame")
            await asyncio.sleep(interval)

    async def poller(app_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(poll(), name="loopwise-top-poller")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.router.add_get(f"/{token}/", page)
    app.router.add_get(f"/{token}/events", channel.handler)
    app.cleanup_ctx.append(poller)
    return app


def serve_top(pid: int, port: int, *, announce: Callable[[str], object] = print) -> int:
    """Serve the page until Ctrl+C; 1 (with one line) when the process cannot be read."""
    try:
        request(pid, "hello")
    except MonitorUnavailable as exc:
        print(f"loopwise: {exc}", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(12)
    app = make_top_app(pid, token)

    def ready(url: str) -> None:
        announce(f"loopwise top {pid}: open {url}/{token}/ (Ctrl+C stops it)")

    try:
        run(app, "127.0.0.1", port, ready=ready)
    except OSError as exc:
        print(
            f"loopwise: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loopwise top {pid}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0.6rem; color: #1b1b1b; }
h1 { font-size: 1.1rem; margin: 0 0 0.3rem; }
h2 { font-size: 0.95rem; margin: 0.9rem 0 0.2rem; }
#status { color: #555; font-size: 0.85rem; }
#status.gone { color: #a00; font-weight: bold; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
td, th { text-align: left; padding: 0.15rem 0.3rem; border-bottom: 1px solid #ddd;
  overflow-wrap: anywhere; vertical-align: top; }
th { font-weight: 600; background: #f3f3f3; }
.blocked { color: #a00; font-weight: bold; }
code { font-size: 0.85em; }
</style></head>
<body>
<h1>loopwise top {pid}</h1>
<div id="status">connecting…</div>
<div id="head"></div>
<h2>Event loops</h2><table id="loops"></table>
<h2>Tasks by state</h2><div id="states"></div>
<h2>Tasks by coroutine</h2><table id="coroutines"></table>
<h2>Longest waiting</h2><table id="tasks"></table>
<h2>Last blocked</h2><table id="blocked"></table>
<p id="footer">updates: <span id="updates">0</span></p>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const at = (p) => p ? p.file.split("/").slice(-2).join("/") + ":" + p.line : "-";
const ms = (v) => v == null ? "-" : (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
const s = (v) => v == null ? "-" : v < 60 ? v.toFixed(1) + "s" : (v / 60).toFixed(1) + "m";
function fill(table, header, rows) {
  table.replaceChildren();
  const head = table.insertRow();
  for (const name of header) { const th = document.createElement("th");
    th.textContent = name; head.appendChild(th); }
  for (const row of rows) { const tr = table.insertRow();
    for (const cell of row) { const td = tr.insertCell();
      if (cell && cell.blocked) { td.className = "blocked"; td.textContent = cell.text; }
      else td.textContent = cell; } }
}
function render(f) {
  const sum = f.summary;
  $("head").textContent = `python ${f.python} · up ${s(f.uptime_s)} · ${sum.tasks_total} tasks`;
  fill($("loops"), ["loop", "lag now", "p99 1 min", "blocked now at"], f.loops.map((l) =>
    [`${l.index} ${l.thread || ""}`, ms(l.lag_ms), "≤ " + ms(l.p99_ms),
     l.blocked_at ? {blocked: true, text: at(l.blocked_at)} : "-"]));
  $("states").textContent = Object.entries(sum.by_state).map(([k, v]) => `${v} ${k}`)
    .join(" · ") || "no tasks";
  fill($("coroutines"), ["coroutine", "tasks"], Object.entries(sum.by_coroutine));
  fill($("tasks"), ["task", "waiting", "at", "awaits"], sum.longest_waiting.map((t) =>
    [`${t.name} ${t.coroutine}()`, "≥ " + s(t.suspended_s), at(t.at),
     t.awaits ? t.awaits.what : "-"]));
  const blocked = f.blocked.slice(0, 8).map((b) =>
    [s(b.ago_s) + " ago", ms(b.duration_ms), at(b.location)]);
  fill($("blocked"), ["ago", "for", "at"], blocked.length ? blocked : [["-", "-", "never"]]);
  $("updates").textContent = String(Number($("updates").textContent) + 1);
}
const source = new EventSource("events");
source.addEventListener("open", () => { $("status").textContent = "live"; });
source.addEventListener("frame", (e) => render(JSON.parse(e.data)));
source.addEventListener("gone", (e) => { $("status").textContent = e.data;
  $("status").className = "gone"; source.close(); });
source.addEventListener("error", () => { if ($("status").className !== "gone")
  $("status").textContent = "reconnecting…"; });
</script>
</body></html>
"""
