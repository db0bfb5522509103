"""A loopwise server in its own process, for the tests that attack it or measure it from outside.

``python scenario_server.py NAME [OPTION=VALUE ...]`` serves scenario NAME on 127.0.0.1, a free
port, prints ``serving on URL`` once it listens and runs until SIGTERM/SIGINT (``run()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from loopwise import run_sync
from loopwise.http.server import EventChannel, HubConnection, WebSocketHub, create_app, run


def replay(options: dict[str, str]) -> web.Application:
    """An event channel whose history is full of large events before the first client comes."""
    events, size = int(options.get("events", "1000")), int(options.get("size", "8192"))
    channel = EventChannel(
        history=events, queue_size=int(options.get("queue_size", "16")), send_timeout=60.0
    )

    async def fill(app: web.Application) -> None:
        for n in range(events):
            await channel.publish(f"{n:08d}" + "x" * (size - 8))

    async def stats(request: web.Request) -> web.Response:
        s = channel.statistics()
        return web.json_response(
            {"subscribers": s.subscribers, "replayed": s.replayed, "evicted": s.evicted}
        )

    app = create_app()
    app.router.add_get("/events", channel.handler)
    app.router.add_get("/stats", stats)
    app.on_startup.append(fill)
    return app


def stubborn(options: dict[str, str]) -> web.Application:
    """Handlers and callbacks that ignore the shutdown: a request handler that swallows its
    cancellation and keeps going, and a hub whose on_disconnect sleeps for a minute (with
    ``deaf_goodbye=1``: swallowing its cancellation too); and a well-behaved request that takes
    a second."""
    deaf = options.get("deaf_goodbye") == "1"
    hub = WebSocketHub(heartbeat=None, on_disconnect=_deaf_goodbye if deaf else _slow_goodbye)

    async def forever(request: web.Request) -> web.Response:
        for _ in range(600):
            with contextlib.suppress(asyncio.CancelledError):  # noqa: LW011 deaf to the shutdown
                await asyncio.sleep(0.1)
        return web.Response(text="too late")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="done")

    app = create_app()
    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/forever", forever)
    app.router.add_get("/slow", slow)
    app.on_shutdown.append(announce_shutdown)
    return app


async def announce_shutdown(app: web.Application) -> None:
    print("on_shutdown ran", flush=True)


async def _slow_goodbye(conn: HubConnection) -> None:
    await asyncio.sleep(60)


async def _deaf_goodbye(conn: HubConnection) -> None:
    """An on_disconnect that swallows every cancellation for a minute."""
    for _ in range(600):
        with contextlib.suppress(asyncio.CancelledError):  # noqa: LW011 deaf on purpose
            await asyncio.sleep(0.1)


def broadcast(options: dict[str, str]) -> web.Application:
    """A hub and an endpoint that broadcasts ``count`` messages of ``size`` bytes on request."""
    disconnects: list[int] = []

    async def on_disconnect(conn: HubConnection) -> None:
        disconnects.append(conn.id)

    hub = WebSocketHub(
        heartbeat=None, queue_size=int(options.get("queue_size", "32")), on_disconnect=on_disconnect
    )

    async def send(request: web.Request) -> web.Response:
        count, size = int(request.query["count"]), int(request.query["size"])
        payload = b"x" * size
        for _ in range(count):
            await hub.broadcast(payload)
        return web.json_response({"sent": count})

    async def stats(request: web.Request) -> web.Response:
        s = hub.statistics()
        return web.json_response(
            {"clients": s.clients, "evicted": s.evicted_full, "disconnects": len(disconnects)}
        )

    app = create_app()
    app.router.add_get("/ws", hub.handler)
    app.router.add_post("/broadcast", send)
    app.router.add_get("/stats", stats)
    return app


def hello(options: dict[str, str]) -> web.Application:
    """One small endpoint, for the connection limits, and ``/exit?status=N``: sys.exit(N)."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def leave(request: web.Request) -> web.Response:
        raise SystemExit(int(request.query["status"]))

    app = create_app()
    app.router.add_get("/hello", answer)
    app.router.add_get("/exit", leave)
    return app


def bridge(options: dict[str, str]) -> web.Application:
    """``/bridge``: a worker thread (``asyncio.to_thread``) calls ``run_sync``; says whether the
    coroutine ran on the server's own loop."""

    async def loop_id() -> int:
        return id(asyncio.get_running_loop())

    async def answer(request: web.Request) -> web.Response:
        there = await asyncio.to_thread(run_sync, loop_id)
        return web.json_response({"same_loop": there == id(asyncio.get_running_loop())})

    app = create_app()
    app.router.add_get("/bridge", answer)
    return app


def slow_start(options: dict[str, str]) -> web.Application:
    """Two ``cleanup_ctx`` entries: the first starts at once (and says so when it exits), the
    second takes a minute to start; for the signals that arrive during startup."""

    async def first(app: web.Application) -> AsyncIterator[None]:
        try:
            yield
        finally:
            print("first context exited", flush=True)

    async def second(app: web.Application) -> AsyncIterator[None]:
        print("second context starting", flush=True)
        await asyncio.sleep(60)
        yield

    app = create_app()
    app.cleanup_ctx.extend([first, second])
    return app


def overtime(options: dict[str, str]) -> web.Application:
    """``/long``: a well-behaved handler that would take a minute, and a ``cleanup_ctx`` entry;
    each says on stdout when it starts and when it is cancelled or exited."""

    async def long(request: web.Request) -> web.Response:
        print("long request started", flush=True)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("long request cancelled", flush=True)
            raise
        return web.Response(text="too late")

    async def resource(app: web.Application) -> AsyncIterator[None]:
        yield
        print("cleanup_ctx exited", flush=True)

    app = create_app()
    app.router.add_get("/long", long)
    app.cleanup_ctx.append(resource)
    return app


SCENARIOS = {
    "bridge": bridge,
    "broadcast": broadcast,
    "hello": hello,
    "overtime": overtime,
    "replay": replay,
    "slow_start": slow_start,
    "stubborn": stubborn,
}


def main() -> None:
    name, *rest = sys.argv[1:]
    options = dict(item.split("=", 1) for item in rest)
    shutdown_timeout = float(options.pop("shutdown_timeout", "10"))
    use_uvloop = options.pop("loop", "asyncio") == "uvloop"
    max_connections = options.pop("max_connections", "1000")
    header_timeout = options.pop("header_timeout", "10")
    app = SCENARIOS[name](options)
    run(
        app,
        "127.0.0.1",
        0,
        shutdown_timeout=shutdown_timeout,
        uvloop=use_uvloop,
        ready=lambda url: print(f"serving on {url}", flush=True),
        max_connections=None if max_connections == "none" else int(max_connections),
        header_timeout=None if header_timeout == "none" else float(header_timeout),
    )


if __name__ == "__main__":
    main()
