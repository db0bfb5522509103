"""An event stream's replay is held to the same per-client bound as its live events: clients
that ask for a large history and never read cannot grow the server's memory past it."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from loopwise.http.server import EventChannel, create_app, standard_middlewares
from tests.http._serving import running

from .conftest import ServerProcess, SSEReader, scenario_server

CLIENTS, EVENTS, EVENT_SIZE, QUEUE_SIZE = 50, 1000, 8192, 16


async def open_non_reader(port: int, last_event_id: int) -> socket.socket:
    """Ask for the stream from ``last_event_id`` with a tiny receive buffer, then never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(
        sock,
        f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Last-Event-ID: {last_event_id}\r\n\r\n".encode(),
    )
    return sock


async def stats(session: aiohttp.ClientSession, server: ServerProcess) -> dict[str, int]:
    async with session.get(f"{server.url}/stats") as response:
        data: dict[str, int] = await response.json()
        return data


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_replay_to_non_reading_clients_stays_within_the_queue_bound(loop: str) -> None:
    options = [f"events={EVENTS}", f"size={EVENT_SIZE}", f"queue_size={QUEUE_SIZE}", f"loop={loop}"]
    async with (
        scenario_server("replay", *options) as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
    ):
        await stats(session, server)  # the history is full once the server answers
        baseline = server.rss_kib()
        socks = [await open_non_reader(server.port, 0) for _ in range(CLIENTS)]
        try:
            for _ in range(200):  # up to 10 s for every handler to start its replay
                if (await stats(session, server))["subscribers"] == CLIENTS:
                    break
                await asyncio.sleep(0.05)
            peak = baseline
            for _ in range(40):  # 2 s of samples while the replays are stuck
                peak = max(peak, server.rss_kib())
                await asyncio.sleep(0.05)
            after = await stats(session, server)
        finally:
            for sock in socks:
                sock.close()
    grown = peak - baseline
    # Per client: one batch of queue_size events, in the write and in the transport's buffer,
    # plus the kernel-side slack of a stalled socket the process does not own. Anything close
    # to the history (8 MB per client here) is far over.
    per_client = 2 * QUEUE_SIZE * EVENT_SIZE // 1024 + 256
    bound = CLIENTS * per_client + 16 * 1024
    print(
        f"replay RSS ({loop}): baseline {baseline} KiB, peak {peak} KiB, grown {grown} KiB, "
        f"bound {bound} KiB, stats {after}"
    )
    assert after["subscribers"] == CLIENTS, after
    assert grown < bound, f"grew {grown} KiB with {CLIENTS} non-reading clients (bound {bound})"


def replay_app(channel: EventChannel) -> web.Application:
    @web.middleware
    async def small_send_buffer(request: web.Request, handler: Handler) -> web.StreamResponse:
        """A stall shows after kilobytes, not after the megabytes loopback buffers take."""
        assert request.transport is not None
        sock = request.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        return await handler(request)

    app = create_app(middlewares=[*standard_middlewares(), small_send_buffer])
    app.router.add_get("/events", channel.handler)
    return app


async def drain_until_closed(sock: socket.socket, seconds: float) -> int:
    """Read everything until the server closes or resets the connection; returns the bytes."""
    loop = asyncio.get_running_loop()
    total = 0
    async with asyncio.timeout(seconds):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except ConnectionResetError:
                return total
            if not chunk:
                return total
            total += len(chunk)


async def test_a_replay_that_stalls_is_evicted_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "loopwise.http.server")
    channel = EventChannel(history=100, queue_size=4, send_timeout=0.3)
    for n in range(100):
        await channel.publish(f"{n}" + "x" * 65536)
    async with running(replay_app(channel)) as url:
        sock = await open_non_reader(int(url.rsplit(":", 1)[1]), 0)
        try:
            for _ in range(200):
                if channel.statistics().evicted == 1:
                    break
                await asyncio.sleep(0.05)
            assert channel.statistics().evicted == 1
            assert "a write stalled for send_timeout during its replay" in caplog.text
            await drain_until_closed(sock, 10)
        finally:
            sock.close()


async def test_a_replay_overtaken_by_the_history_is_evicted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "loopwise.http.server")
    channel = EventChannel(history=20, queue_size=2, send_timeout=60.0)
    for n in range(20):
        await channel.publish(f"{n}" + "x" * 65536)
    async with running(replay_app(channel)) as url:
        sock = await open_non_reader(int(url.rsplit(":", 1)[1]), 0)
        try:
            for _ in range(200):  # the first replay write is under way and stuck
                if channel.statistics().replayed or channel.statistics().subscribers:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            for n in range(40):  # while it is stuck, the history moves on past it
                await channel.publish(f"live {n}")
            received = await drain_until_closed(sock, 10)
            assert channel.statistics().evicted == 1
            assert "could not take its replay" in caplog.text
            # It got the part of the replay already written, never the events it skipped over.
            assert received < 20 * 65536
        finally:
            sock.close()


async def test_replay_then_live_while_publishing_loses_and_repeats_nothing(
    session: aiohttp.ClientSession,
) -> None:
    channel = EventChannel(history=1000, queue_size=8, send_timeout=10.0)
    for n in range(300):
        await channel.publish(f"old {n} " + "x" * 2000)
    app = create_app()
    app.router.add_get("/events", channel.handler)
    async with running(app) as url:

        async def publish_more() -> None:
            for n in range(300):
                await channel.publish(f"new {n}")
                if n % 10 == 0:
                    await asyncio.sleep(0.001)

        async with session.get(f"{url}/events", headers={"Last-Event-ID": "0"}) as response:
            publisher = asyncio.create_task(publish_more())
            events = await SSEReader(response).take(600)
            await publisher
    assert [int(e.id or 0) for e in events] == list(range(1, 601))
    assert channel.statistics().evicted == 0
