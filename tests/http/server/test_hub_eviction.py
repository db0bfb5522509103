"""Evicted WebSocket clients are disconnected: the socket is gone within a second of the eviction
and ``on_disconnect`` runs exactly once, whichever way the client left."""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import time

import aiohttp
import pytest

from loopwise.http.server import HubConnection, WebSocketHub
from tests.http._serving import running

from .conftest import scenario_server
from .test_hub import hub_app, raw_stalled_client, small_send_buffer, wait_for

TCP_ESTABLISHED = 1


def tcp_state(writer: asyncio.StreamWriter) -> int:
    """The kernel's TCP state of the client's socket (1 while established), read without
    receiving anything: an aborted server side shows as a state change here (0: the client
    closed its socket after the reset)."""
    if writer.transport.is_closing():  # the client's loop saw the reset and closed its side
        return 0
    sock = writer.get_extra_info("socket")
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return int(struct.unpack("B", info[:1])[0])


async def wait_all_gone(writers: list[asyncio.StreamWriter], seconds: float) -> float:
    """Seconds until no client socket is established any more; fails after ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if all(tcp_state(w) != TCP_ESTABLISHED for w in writers):
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    alive = sum(tcp_state(w) == TCP_ESTABLISHED for w in writers)
    raise AssertionError(f"{alive} of {len(writers)} evicted clients still connected")


def counting_hub(**options: float) -> tuple[WebSocketHub, collections.Counter[int]]:
    disconnects: collections.Counter[int] = collections.Counter()

    async def on_connect(conn: HubConnection) -> None:
        small_send_buffer(conn)

    async def on_disconnect(conn: HubConnection) -> None:
        disconnects[conn.id] += 1

    hub = WebSocketHub(
        heartbeat=None, on_connect=on_connect, on_disconnect=on_disconnect, **options
    )
    return hub, disconnects


@pytest.mark.parametrize("cause", ["queue_full", "send_timeout"])
async def test_evicted_clients_are_disconnected_within_a_second(cause: str) -> None:
    clients, payload = 10, b"x" * 65536
    if cause == "queue_full":
        hub, disconnects = counting_hub(queue_size=4, send_timeout=60.0)
    else:
        hub, disconnects = counting_hub(queue_size=10_000, send_timeout=0.3)
    async with running(hub_app(hub)) as url:
        stalled = [await raw_stalled_client(url) for _ in range(clients)]
        writers = [writer for _, writer in stalled]
        await wait_for(lambda: hub.statistics().clients == clients)
        for _ in range(40):  # 2.5 MiB for each: far more than the socket buffers take
            await hub.broadcast(payload)
            if hub.statistics().clients == 0:
                break
        await wait_for(lambda: hub.statistics().clients == 0)
        evicted_at = time.monotonic()
        stats = hub.statistics()
        evicted = stats.evicted_full if cause == "queue_full" else stats.evicted_timeout
        assert evicted == clients
        # The promise is one second; the margin is for a busy machine.
        await wait_all_gone(writers, 1.5 - (time.monotonic() - evicted_at))
        await wait_for(lambda: sum(disconnects.values()) == clients)
        await asyncio.sleep(0.2)
        assert sorted(disconnects.values()) == [1] * clients
        for writer in writers:
            writer.close()


async def test_on_disconnect_runs_once_when_a_stuck_handler_is_cancelled() -> None:
    """Shutdown cancels what is left: a handler cancelled while its client's send is stuck still
    runs on_disconnect, once, drops the socket, and the cancellation still ends the handler."""
    calls: list[int] = []
    entered = asyncio.Event()
    handler_tasks: list[asyncio.Task[object]] = []

    async def on_connect(conn: HubConnection) -> None:
        small_send_buffer(conn)
        task = asyncio.current_task()
        assert task is not None
        handler_tasks.append(task)
        entered.set()

    async def on_disconnect(conn: HubConnection) -> None:
        calls.append(conn.id)

    hub = WebSocketHub(
        heartbeat=None,
        queue_size=1000,
        send_timeout=60.0,
        on_connect=on_connect,
        on_disconnect=on_disconnect,
    )
    async with running(hub_app(hub)) as url:
        _, writer = await raw_stalled_client(url)
        async with asyncio.timeout(5):
            await entered.wait()
        for _ in range(20):
            await hub.broadcast(b"x" * 65536)
        await wait_for(lambda: hub.statistics().queued > 0)
        handler_tasks[0].cancel()
        await wait_for(lambda: handler_tasks[0].done())
        assert handler_tasks[0].cancelled()
        assert len(calls) == 1
        await wait_all_gone([writer], 1.5)
        writer.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_fifty_evicted_clients_leave_nothing_behind_in_the_server(loop: str) -> None:
    """The audit's case, measured from outside: 50 clients that never read, 100 x 64 KiB
    broadcast; every one is evicted, disconnected and reported to on_disconnect, and the
    server's memory stays within clients x queue bound."""
    clients, queue_size, size = 50, 8, 65536
    async with (
        scenario_server("broadcast", f"queue_size={queue_size}", f"loop={loop}") as server,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        baseline = server.rss_kib()
        stalled = [await raw_stalled_client(server.url) for _ in range(clients)]
        writers = [writer for _, writer in stalled]
        try:
            peak = baseline
            async with session.post(
                f"{server.url}/broadcast", params={"count": "100", "size": str(size)}
            ) as response:
                assert response.status == 200
            peak = max(peak, server.rss_kib())
            evicted_at = time.monotonic()
            async with session.get(f"{server.url}/stats") as response:
                stats = await response.json()
            assert stats["evicted"] == clients, stats
            gone_after = await wait_all_gone(writers, 1.5 - (time.monotonic() - evicted_at))
            for _ in range(100):
                async with session.get(f"{server.url}/stats") as response:
                    stats = await response.json()
                if stats["disconnects"] == clients:
                    break
                await asyncio.sleep(0.05)
            assert stats == {"clients": 0, "evicted": clients, "disconnects": clients}
            for _ in range(10):
                peak = max(peak, server.rss_kib())
                await asyncio.sleep(0.05)
        finally:
            for writer in writers:
                writer.close()
    grown = peak - baseline
    bound = clients * (queue_size * size // 1024 + 256) + 16 * 1024
    print(
        f"eviction ({loop}): RSS baseline {baseline} KiB, peak {peak} KiB, grown {grown} KiB "
        f"(bound {bound}); all {clients} sockets gone {gone_after:.2f} s after the eviction"
    )
    assert grown < bound
