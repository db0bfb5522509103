"""serve()'s connection limits: silent and slow-sending connections (slowloris) cannot starve
normal clients, the cap is logged when reached, and busy connections are never cut for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from loopwise.http.server import EventChannel, create_app, serve

from .conftest import scenario_server


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@contextlib.asynccontextmanager
async def serving(app: web.Application, **limits: float | None) -> AsyncIterator[int]:
    """serve() in a task on 127.0.0.1, a free port; yields the port."""
    stop = asyncio.Event()
    address: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(
            app,
            "127.0.0.1",
            0,
            stop=stop,
            handle_signals=False,
            ready=address.set_result,
            shutdown_timeout=2.0,
            **limits,  # type: ignore[arg-type]
        )
    )
    try:
        url = await asyncio.wait_for(address, 10)
        yield int(url.rsplit(":", 1)[1])
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def silent(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def answer_or_close(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes this connection (b"" for a reset)."""
    loop = asyncio.get_running_loop()
    received = b""
    async with asyncio.timeout(seconds):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 4096)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


async def get_hello(port: int) -> int:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(f"http://127.0.0.1:{port}/hello", timeout=aiohttp.ClientTimeout(10)) as r,
    ):
        assert await r.text() == "hello"
        return r.status


def hello_app() -> web.Application:
    app = create_app()
    app.router.add_get("/hello", hello)
    return app


async def test_normal_requests_succeed_among_many_silent_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "loopwise.http.server")
    cap, flood = 40, 120
    async with serving(hello_app(), max_connections=cap, header_timeout=30.0) as port:
        socks = [await silent(port) for _ in range(flood)]
        try:
            statuses = [await get_hello(port) for _ in range(20)]
            assert statuses == [200] * 20
            assert "connection limit reached" in caplog.text
            # The flood beyond the cap made room for itself by closing the oldest silent ones.
            closed = 0
            for sock in socks[: flood - cap]:
                if await answer_or_close(sock, 5) == b"":
                    closed += 1
            assert closed == flood - cap
        finally:
            for sock in socks:
                sock.close()


async def test_headers_that_do_not_arrive_in_time_get_408_and_are_closed() -> None:
    async with serving(hello_app(), header_timeout=0.5) as port:
        quiet = await silent(port)
        slowloris = await silent(port)
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        try:
            for piece in (b"GET /hello HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"):
                await loop.sock_sendall(slowloris, piece)  # never the empty line
                await asyncio.sleep(0.15)
            answers = [await answer_or_close(s, 5) for s in (quiet, slowloris)]
            elapsed = time.monotonic() - start
            for answer in answers:
                assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
                assert b"application/problem+json" in answer
            assert elapsed < 3.0  # not aiohttp's 75 s keep-alive timeout
            assert await get_hello(port) == 200
        finally:
            quiet.close()
            slowloris.close()


async def test_at_the_cap_with_every_connection_busy_new_ones_get_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "loopwise.http.server")
    channel = EventChannel()
    app = hello_app()
    app.router.add_get("/events", channel.handler)
    async with (
        serving(app, max_connections=3, header_timeout=0.3) as port,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
    ):
        streams = [await session.get(f"http://127.0.0.1:{port}/events") for _ in range(3)]
        await asyncio.sleep(0.5)  # past header_timeout: streams are not cut by it
        assert channel.statistics().subscribers == 3
        newcomer = await silent(port)
        answer = await answer_or_close(newcomer, 5)
        newcomer.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        assert b"Retry-After: 1\r\n" in answer and b"application/problem+json" in answer
        assert "connection limit reached" in caplog.text
        assert channel.statistics().subscribers == 3
        for stream in streams:
            stream.close()
        for _ in range(100):  # the server notices the streams are gone
            if channel.statistics().subscribers == 0:
                break
            await asyncio.sleep(0.05)
        assert await get_hello(port) == 200


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        asyncio.run(serve(hello_app(), port=0, max_connections=0, handle_signals=False))
    with pytest.raises(ValueError, match="header_timeout"):
        asyncio.run(serve(hello_app(), port=0, header_timeout=0, handle_signals=False))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_limits_hold_in_a_server_process(loop: str) -> None:
    """The same guard in run(), on each event loop: a silent flood beyond the cap does not stop
    normal requests, and silent connections get their 408."""
    options = [f"loop={loop}", "max_connections=30", "header_timeout=1"]
    async with scenario_server("hello", *options) as server:
        flood = [await silent(server.port) for _ in range(60)]
        try:
            assert [await get_hello(server.port) for _ in range(10)] == [200] * 10
            answers = [await answer_or_close(sock, 10) for sock in flood[-10:]]
            assert all(a.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for a in answers)
        finally:
            for sock in flood:
                sock.close()
        assert server.process.stderr is not None
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.process.wait(), 15) == 0
        errors = (await server.process.stderr.read()).decode()
        assert "connection limit reached" in errors
        assert "Traceback" not in errors


async def raw_get(sock: socket.socket, port: int) -> None:
    request = f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_a_burst_accepted_at_once_replaces_waiting_connections_instead_of_refusing(
    loop: str,
) -> None:
    """Connections the server accepts in one go (here: made while it is stopped) are waiting for
    their headers from the moment they are accepted, so at the cap the newest replace the oldest
    and a request in the burst is served: nobody is refused while silent connections are open."""
    options = [f"loop={loop}", "max_connections=10", "header_timeout=2"]
    async with scenario_server("hello", *options) as server:
        server.process.send_signal(signal.SIGSTOP)
        try:
            flood = [await silent(server.port) for _ in range(40)]
            request = await silent(server.port)
            await raw_get(request, server.port)
        finally:
            server.process.send_signal(signal.SIGCONT)
        try:
            answer = await answer_or_close(request, 10)
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
            answers = [await answer_or_close(sock, 10) for sock in flood]
            assert not [a for a in answers if b" 503 " in a[:20]], "refused while others waited"
            assert answers[:31] == [b""] * 31  # replaced by newer ones (the request included)
            assert all(a.startswith(b"HTTP/1.1 408 Request Timeout\r\n") for a in answers[31:])
        finally:
            for sock in [*flood, request]:
                sock.close()


async def keep_alive_get(sock: socket.socket, port: int, pieces: int = 1) -> bytes:
    """One keep-alive GET /hello on ``sock``; returns the whole answer (it has a length)."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    received = b""
    async with asyncio.timeout(10):
        while not received.endswith(b"hello"):
            chunk = await loop.sock_recv(sock, 4096)
            assert chunk, received
            received += chunk
    return received


async def test_idle_keep_alive_connections_make_room_at_the_cap() -> None:
    """A connection idle between two requests is waiting for headers too: at the cap it makes
    room for a newcomer, so clients that sent one request and then hold their connections open
    cannot lock everyone else out for the keep-alive timeout."""
    async with serving(hello_app(), max_connections=4, header_timeout=30.0) as port:
        held: list[socket.socket] = []
        try:
            for _ in range(7):  # each newcomer holds its connection open too
                held.append(await silent(port))
                answer = await keep_alive_get(held[-1], port)
                assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            # The oldest idle ones were closed to make room, without an answer.
            assert [await answer_or_close(sock, 5) for sock in held[:3]] == [b""] * 3
            assert (await keep_alive_get(held[-1], port)).startswith(b"HTTP/1.1 200 OK\r\n")
        finally:
            for sock in held:
                sock.close()


async def test_the_next_request_on_a_keep_alive_connection_has_header_timeout_too() -> None:
    """After a first request, headers trickled for the next one are cut after header_timeout,
    not after aiohttp's keep-alive timeout (75 s)."""
    async with serving(hello_app(), header_timeout=0.5) as port:
        slowloris = await silent(port)
        loop = asyncio.get_running_loop()
        try:
            assert (await keep_alive_get(slowloris, port)).startswith(b"HTTP/1.1 200 OK\r\n")
            await asyncio.sleep(0.7)  # idle between requests is fine: keepalive_timeout rules
            start = time.monotonic()
            for piece in (b"GET /hello HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"):
                await loop.sock_sendall(slowloris, piece)  # never the empty line
                await asyncio.sleep(0.15)
            answer = await answer_or_close(slowloris, 5)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert time.monotonic() - start < 3.0
        finally:
            slowloris.close()


@pytest.mark.parametrize("opening", [b"\r\n\r\n", b"\n\n", b"\r\n\r\nGET /hello HTTP/1.1\r\n"])
async def test_empty_lines_before_the_request_do_not_stop_the_header_timeout(
    opening: bytes,
) -> None:
    """aiohttp skips empty lines before a request line; they are not the end of the headers, so
    they cannot stop the header_timeout clock and hold the connection for keepalive_timeout."""
    async with serving(hello_app(), header_timeout=0.5) as port:
        sock = await silent(port)
        try:
            await asyncio.get_running_loop().sock_sendall(sock, opening)
            start = time.monotonic()
            answer = await answer_or_close(sock, 5)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert time.monotonic() - start < 3.0
        finally:
            sock.close()
