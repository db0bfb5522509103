"""create_app, serve and run: graceful shutdown closes streams promptly, lets in-flight requests
finish, then runs the cleanup contexts; the demo CLI and ``python -m loopwise.demo``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from loopwise.http.server import EventChannel, WebSocketHub, create_app, serve
from loopwise.http.server._cli import register, serve_demo
from tests.http._serving import running

from .conftest import SSEReader
from .test_hub import wait_for

SRC = str(Path(__file__).resolve().parents[3] / "src")


def shutdown_app(log: list[str], started: asyncio.Event, release: asyncio.Event) -> web.Application:
    hub = WebSocketHub(heartbeat=None)
    channel = EventChannel()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        log.append("in-flight request finished")
        return web.Response(text="done")

    async def resources(app: web.Application) -> AsyncIterator[None]:
        log.append("startup")
        yield
        log.append("cleanup")

    async def on_shutdown(app: web.Application) -> None:
        log.append("on_shutdown")

    app = create_app()
    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/events", channel.handler)
    app.router.add_get("/slow", slow)
    app.cleanup_ctx.append(resources)
    app.on_shutdown.append(on_shutdown)
    return app


async def test_graceful_shutdown_order(session: aiohttp.ClientSession) -> None:
    log: list[str] = []
    started, release = asyncio.Event(), asyncio.Event()
    app = shutdown_app(log, started, release)
    # aiohttp's 60 s default: if a stream held the shutdown, the guard below would fire first.
    server = running(app, shutdown_timeout=60.0)
    url = await server.__aenter__()
    ws = await session.ws_connect(f"{url}/ws")
    sse = await session.get(f"{url}/events")
    slow = asyncio.create_task(session.get(f"{url}/slow"))
    await started.wait()

    shutdown = asyncio.create_task(server.__aexit__(None, None, None))
    message = await ws.receive(timeout=10)
    assert message.type is WSMsgType.CLOSE and message.data == 1001
    assert await SSEReader(sse).next() is None  # the event stream ended cleanly
    await wait_for(lambda: "on_shutdown" in log)
    assert "cleanup" not in log  # still waiting for the in-flight request
    release.set()
    response = await asyncio.wait_for(slow, 10)
    assert response.status == 200 and await response.text() == "done"
    async with asyncio.timeout(10):
        await shutdown
    assert log == ["startup", "on_shutdown", "in-flight request finished", "cleanup"]
    await ws.close()
    sse.release()


async def test_serve_until_stop(session: aiohttp.ClientSession) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = create_app()
    app.router.add_get("/", hello)
    stop = asyncio.Event()
    urls: list[str] = []
    server = asyncio.create_task(
        serve(app, "127.0.0.1", 0, stop=stop, handle_signals=False, ready=urls.append)
    )
    await wait_for(lambda: bool(urls) or server.done())
    [url] = urls
    async with session.get(url) as r:
        assert await r.text() == "hi"
    stop.set()
    await asyncio.wait_for(server, 10)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(url) as r:
            pass


async def test_run_stops_on_sigterm(session: aiohttp.ClientSession) -> None:
    """``python -m loopwise.demo`` in a real process: SIGTERM closes the chat with 1001, ends the
    feed and exits 0 long before aiohttp's 60 s default."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "loopwise.demo",
        "--port",
        "0",
        "--tick",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert "serving on http://127.0.0.1:" in line
        url = line.split("serving on ")[1].split()[0]
        ws = await session.ws_connect(f"{url}/ws")
        sse = await session.get(f"{url}/events")
        reader = SSEReader(sse)
        assert await reader.next() is not None
        process.send_signal(signal.SIGTERM)
        message = await ws.receive(timeout=10)
        while message.type is WSMsgType.TEXT:  # presence messages may come first
            message = await ws.receive(timeout=10)
        assert message.type is WSMsgType.CLOSE and message.data == 1001
        while await reader.next() is not None:
            pass
        assert await asyncio.wait_for(process.wait(), 20) == 0
        await ws.close()
        sse.release()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_register() -> None:
    parser = argparse.ArgumentParser(prog="loopwise")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "serve", "--port", "0", "--host", "::1", "--tick", "0.5"])
    assert (args.handler, args.host, args.port, args.tick) == (serve_demo, "::1", 0, 0.5)
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "serve", "--port", "70000"])
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "serve", "--tick", "0"])


def test_cli_reports_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = argparse.Namespace(host="127.0.0.1", port=port, tick=1.0)
        assert serve_demo(args) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
