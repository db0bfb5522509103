"""WebSocketHub against a real server: fan-out, eviction of a client that never reads, callbacks,
rooms and shutdown."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from loopwise.http.server import HubConnection, WebSocketHub, create_app
from tests.http._serving import running


def hub_app(hub: WebSocketHub) -> web.Application:
    app = create_app()
    app.router.add_get("/ws", hub.handler)
    return app


async def wait_for(predicate: Callable[[], bool], *, rounds: int = 2000) -> None:
    """Yield to the loop until ``predicate()`` holds (bounded: fails after ``rounds`` ticks)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def raw_stalled_client(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a WebSocket by hand with a tiny receive buffer, read the 101, then never read again."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status = await reader.readuntil(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101")
    return reader, writer


def small_send_buffer(conn: HubConnection) -> None:
    """Make the server's kernel send buffer small so a stall shows after kilobytes, not MBs."""
    transport = conn.request.transport
    assert transport is not None
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)


async def test_slow_client_is_evicted_and_fast_clients_get_everything(
    session: aiohttp.ClientSession,
) -> None:
    fast_count, messages, batch = 20, 120, 4
    connected = asyncio.Event()

    async def on_connect(conn: HubConnection) -> None:
        small_send_buffer(conn)

    hub = WebSocketHub(queue_size=8, send_timeout=30.0, heartbeat=None, on_connect=on_connect)
    payload = "x" * 16384
    async with running(hub_app(hub)) as url:
        stalled_reader, stalled_writer = await raw_stalled_client(url)
        clients = [await session.ws_connect(f"{url}/ws") for _ in range(fast_count)]
        received = [0] * fast_count
        await wait_for(lambda: hub.statistics().clients == fast_count + 1)
        connected.set()

        async def consume(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for message in ws:
                assert message.type is WSMsgType.TEXT and message.data == payload
                received[i] += 1
                if received[i] == messages:
                    return

        consumers = [asyncio.create_task(consume(i, ws)) for i, ws in enumerate(clients)]
        for n in range(1, messages + 1):
            await hub.broadcast(payload)
            if n % batch == 0:  # pace on the fast clients only: never on the stalled one
                await wait_for(lambda n=n: min(received) >= n)
        await asyncio.wait_for(asyncio.gather(*consumers), 20)

        stats = hub.statistics()
        assert received == [messages] * fast_count
        assert stats.evicted_full == 1
        assert stats.evicted_timeout == 0
        assert stats.clients == fast_count
        assert stats.queued == 0
        assert all(not conn.closed for conn in hub.connections)
        # The stalled socket sees the server give up on it: EOF or a reset, never a hang.
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            async with asyncio.timeout(15):
                while await stalled_reader.read(65536):
                    pass
                raise ConnectionResetError("EOF")
        stalled_writer.close()
        for ws in clients:
            await ws.close()


async def test_stuck_send_is_evicted_after_send_timeout(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub(queue_size=10_000, send_timeout=0.2, heartbeat=None, on_connect=None)
    hub.on_connect = lambda conn: asyncio.sleep(0, small_send_buffer(conn))
    async with running(hub_app(hub)) as url:
        _, stalled_writer = await raw_stalled_client(url)
        await wait_for(lambda: hub.statistics().clients == 1)
        for _ in range(400):  # bounded: enough to fill the socket buffers
            if hub.statistics().evicted_timeout:
                break
            await hub.broadcast(b"y" * 8192)
        await wait_for(lambda: hub.statistics().evicted_timeout == 1)
        assert hub.statistics().clients == 0
        assert hub.statistics().evicted_full == 0
        stalled_writer.close()


async def test_broadcast_on_message_and_order(session: aiohttp.ClientSession) -> None:
    seen: list[tuple[int, str | bytes]] = []

    async def on_message(conn: HubConnection, data: str | bytes) -> None:
        seen.append((conn.id, data))
        await hub.broadcast(data, exclude=conn)

    hub = WebSocketHub(on_message=on_message, heartbeat=None)
    async with running(hub_app(hub)) as url:
        a = await session.ws_connect(f"{url}/ws")
        b = await session.ws_connect(f"{url}/ws")
        await wait_for(lambda: hub.statistics().clients == 2)
        for i in range(50):
            await a.send_str(f"m{i}")
        await a.send_bytes(b"\x00\x01")
        got = [(await b.receive(timeout=10)).data for _ in range(51)]
        assert got == [f"m{i}" for i in range(50)] + [b"\x00\x01"]
        assert [data for _, data in seen] == got
        assert hub.statistics().received == 51
        await a.close()
        await b.close()


async def test_rooms(session: aiohttp.ClientSession) -> None:
    async def on_message(conn: HubConnection, data: str | bytes) -> None:
        assert isinstance(data, str)
        verb, _, room = data.partition(" ")
        if verb == "join":
            conn.join(room)
        else:
            conn.leave(room)
        await conn.send(f"ok {data}")

    hub = WebSocketHub(on_message=on_message, heartbeat=None)
    async with running(hub_app(hub)) as url:
        a = await session.ws_connect(f"{url}/ws")
        b = await session.ws_connect(f"{url}/ws")
        await a.send_str("join red")
        assert (await a.receive_str(timeout=10)) == "ok join red"
        assert len(hub.room("red")) == 1
        assert await hub.broadcast("to red", room="red") == 1
        assert await hub.broadcast("to blue", room="blue") == 0
        await hub.broadcast("to all")
        assert (await a.receive_str(timeout=10)) == "to red"
        assert (await a.receive_str(timeout=10)) == "to all"
        assert (await b.receive_str(timeout=10)) == "to all"
        await a.send_str("leave red")
        assert (await a.receive_str(timeout=10)) == "ok leave red"
        assert hub.statistics().rooms == 0
        await a.close()
        await b.close()


async def test_callback_error_closes_that_client_with_1011(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async def on_message(conn: HubConnection, data: str | bytes) -> None:
        if data == "boom":
            raise RuntimeError("handler bug")
        await conn.send(f"echo {data}")

    hub = WebSocketHub(on_message=on_message, heartbeat=None)
    async with running(hub_app(hub)) as url:
        bad = await session.ws_connect(f"{url}/ws")
        good = await session.ws_connect(f"{url}/ws")
        await bad.send_str("boom")
        closing = await bad.receive(timeout=10)
        assert closing.type is WSMsgType.CLOSE
        assert bad.close_code == 1011 or closing.data == 1011
        await good.send_str("hi")
        assert (await good.receive_str(timeout=10)) == "echo hi"
        assert hub.statistics().errors == 1
        await good.close()
    assert any("handler bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


async def test_oversized_message_closes_with_1009(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub(max_msg_size=1024, heartbeat=None)
    async with running(hub_app(hub)) as url:
        ws = await session.ws_connect(f"{url}/ws")
        await ws.send_str("z" * 4096)
        message = await ws.receive(timeout=10)
        assert message.type is WSMsgType.CLOSE
        assert message.data == 1009
        await wait_for(lambda: hub.statistics().clients == 0)


async def test_plain_get_is_a_426_problem(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub()
    async with running(hub_app(hub)) as url, session.get(f"{url}/ws") as r:
        assert r.status == 426
        assert r.headers["Content-Type"] == "application/problem+json"
        assert "WebSocket" in (await r.json(content_type=None))["detail"]


async def test_close_sends_1001_and_refuses_new_clients(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub(heartbeat=None)
    async with running(hub_app(hub)) as url:
        clients = [await session.ws_connect(f"{url}/ws") for _ in range(3)]
        await wait_for(lambda: hub.statistics().clients == 3)
        closer = asyncio.create_task(hub.close())
        for ws in clients:
            message = await ws.receive(timeout=10)
            assert message.type is WSMsgType.CLOSE and message.data == 1001
            await ws.close()
        await asyncio.wait_for(closer, 10)
        assert "closed" in repr(hub)
        assert await hub.broadcast("late") == 0
        async with session.get(f"{url}/ws") as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"


async def test_statistics_and_repr(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub(heartbeat=None)
    assert repr(hub) == "<WebSocketHub clients=0 rooms=0 queued=0 evicted=0 open>"
    async with running(hub_app(hub)) as url:
        ws = await session.ws_connect(f"{url}/ws")
        await wait_for(lambda: hub.statistics().clients == 1)
        await hub.broadcast("one")
        assert (await ws.receive_str(timeout=10)) == "one"
        await wait_for(lambda: hub.statistics().sent == 1)
        stats = hub.statistics()
        assert (stats.clients, stats.broadcasts, stats.sent) == (1, 1, 1)
        assert "clients=1" in repr(hub)
        assert "HubConnection" in repr(hub.connections[0])
        await ws.close()


async def test_heartbeat_pings(session: aiohttp.ClientSession) -> None:
    hub = WebSocketHub(heartbeat=0.05)
    async with running(hub_app(hub)) as url:
        ws = await session.ws_connect(f"{url}/ws", autoping=False)
        message = await ws.receive(timeout=10)
        assert message.type is WSMsgType.PING
        await ws.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"queue_size": 0}, "queue_size"),
        ({"send_timeout": 0}, "send_timeout"),
        ({"heartbeat": -1}, "heartbeat"),
    ],
)
def test_bad_options(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WebSocketHub(**kwargs)  # type: ignore[arg-type]


async def test_bad_message_type() -> None:
    hub = WebSocketHub()
    bad: Callable[[object], Awaitable[int]] = hub.broadcast  # type: ignore[assignment]
    with pytest.raises(TypeError, match=r"json\.dumps"):
        await bad({"a": 1})


@pytest.mark.parametrize("kind", ["text", "binary", "compressed"])
async def test_a_message_of_exactly_max_msg_size_is_accepted(
    session: aiohttp.ClientSession, kind: str
) -> None:
    """The limit is on messages *over* max_msg_size: one byte less than refused is fine."""
    size = 1024
    got: list[int] = []

    async def on_message(conn: HubConnection, data: str | bytes) -> None:
        got.append(len(data))

    compressed = kind == "compressed"
    hub = WebSocketHub(
        max_msg_size=size, heartbeat=None, on_message=on_message, compress=compressed
    )
    async with running(hub_app(hub)) as url:
        ws = await session.ws_connect(f"{url}/ws", compress=15 if compressed else 0)
        assert ws.compress == (15 if compressed else 0)
        if kind in ("text", "compressed"):
            await ws.send_str("z" * size)
        else:
            await ws.send_bytes(b"z" * size)
        await wait_for(lambda: got == [size])
        await ws.send_str("z" * (size + 1))
        message = await ws.receive(timeout=10)
        assert (message.type, message.data) == (WSMsgType.CLOSE, 1009)
        await wait_for(lambda: hub.statistics().clients == 0)
