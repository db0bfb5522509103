"""The backplane with two real server processes on port 0, real WebSocket and SSE clients and a
real redis-server: a broadcast or an event sent through one process reaches the clients of the
other; SSE ids are shared and a resume works on a restarted process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio
from aiohttp import WSMsgType, web

from loopwise.http.server import EventChannel, WebSocketHub
from loopwise.redis import Backplane
from tests.http.server.conftest import SSEReader
from tests.redis._server import RedisServer

SERVER = Path(__file__).with_name("_backplane_server.py")


class Server:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_server(redis_url: str, name: str) -> Server:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), redis_url, name, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        line = (await process.stdout.readline()).decode()
    assert "serving on http://127.0.0.1:" in line, line
    return Server(process, line.split("serving on ")[1].split()[0])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_two_server_processes_share_broadcasts_events_ids_and_history(
    client: redis.asyncio.Redis, redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    a = await start_server(redis_server.url, "bp")
    b = await start_server(redis_server.url, "bp")
    servers = [a, b]
    try:
        ws_b = await session.ws_connect(f"{b.url}/ws")
        ws_a = await session.ws_connect(f"{a.url}/ws")
        sse_b = await session.get(f"{b.url}/events")
        await asyncio.sleep(0.2)  # both hubs have their client
        async with session.post(f"{a.url}/broadcast", data="hello") as r:
            assert r.status == 200
        for ws in (ws_b, ws_a):
            message = await ws.receive(timeout=10)
            assert (message.type, message.data) == (WSMsgType.TEXT, "hello")

        ids = []
        for n in range(7):  # alternate the process that publishes
            target = (a, b)[n % 2]
            async with session.post(f"{target.url}/publish", data=f"event {n + 1}") as r:
                ids.append(int(await r.text()))
        assert ids == [1, 2, 3, 4, 5, 6, 7]
        events = await SSEReader(sse_b).take(7)
        assert [(e.id, e.data) for e in events] == [(str(n), f"event {n}") for n in range(1, 8)]
        sse_b.release()

        await b.stop()
        b = await start_server(redis_server.url, "bp")  # a restarted process
        servers.append(b)
        resumed = await session.get(f"{b.url}/events", headers={"Last-Event-ID": "4"})
        assert [e.id for e in await SSEReader(resumed).take(3)] == ["5", "6", "7"]
        resumed.release()
        old = await session.get(f"{b.url}/events", headers={"Last-Event-ID": "1"})
        reader = SSEReader(old)
        gap = await reader.next()
        assert gap is not None and gap.event == "gap"
        assert json.loads(gap.data) == {
            "last_event_id": 1,
            "first_available_id": 3,
            "reason": "expired",
        }
        assert [e.id for e in await reader.take(5)] == ["3", "4", "5", "6", "7"]
        async with session.post(f"{b.url}/publish", data="after the restart") as r:
            assert await r.text() == "8"
        event = await reader.next()
        assert event is not None and (event.id, event.data) == ("8", "after the restart")
        old.release()
        await ws_a.close()
        await ws_b.close()
    finally:
        for server in servers:
            await server.stop()


async def test_a_process_that_missed_events_keeps_no_hole_in_its_history(
    client: redis.asyncio.Redis,
) -> None:
    channel = EventChannel(history=3)
    for n in range(1, 4):
        await client.xadd("gap:events", {"d": f"e{n}"}, id="0-*")
    async with Backplane(client, "gap", channel=channel):  # loads events 1 to 3 on start
        assert channel.statistics().last_event_id == 3
    # while this process was away, more events came and the stream lost some of them
    for n in range(4, 9):
        await client.xadd("gap:events", {"d": f"e{n}"}, id="0-*")
    await client.xtrim("gap:events", maxlen=2, approximate=False)
    async with Backplane(client, "gap", channel=channel) as backplane:
        stats = channel.statistics()
        # 4 to 6 are gone: the history holds 7 and 8 only, never a sequence with a hole
        assert (stats.last_event_id, stats.history) == (8, 2)
        assert backplane.statistics().last_event_id == 8


def test_options_are_checked() -> None:
    c = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="hub=, a channel="):
        Backplane(c, "x")
    with pytest.raises(ValueError, match="name"):
        Backplane(c, "", hub=WebSocketHub())


async def test_a_hole_in_the_ids_ends_the_streams_and_resuming_clients_get_a_gap(
    client: redis.asyncio.Redis, session: aiohttp.ClientSession
) -> None:
    channel = EventChannel(history=10)
    app = web.Application()
    app.router.add_get("/events", channel.handler)
    app.on_shutdown.append(channel.on_shutdown)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/events"
    try:
        async with asyncio.timeout(30), Backplane(client, "hole", channel=channel) as backplane:
            live = await session.get(url)
            reader = SSEReader(live)
            await backplane.publish("one")
            assert [e.id for e in await reader.take(1)] == ["1"]
            # events 2 and 3 never reached this process (the stream was trimmed past them
            # while it could not reach Redis): the next one its follower hands over is 4
            channel._deliver(4, "four", None)
            assert await reader.next() is None  # the stream ended instead of skipping 2 and 3
            live.release()
            resumed = await session.get(url, headers={"Last-Event-ID": "1"})
            gap = await SSEReader(resumed).next()
            assert gap is not None and gap.event == "gap"
            assert json.loads(gap.data)["first_available_id"] == 4
            resumed.release()
    finally:
        await runner.cleanup()


async def test_hub_messages_trimmed_before_a_paused_process_read_them_are_counted(
    client: redis.asyncio.Redis, redis_server: RedisServer, session: aiohttp.ClientSession
) -> None:
    """A server process stopped (SIGSTOP: its loop cannot run) while 1,000 messages go through
    a stream kept to about 10 entries: once it runs again, every message is either handed to
    its hub or counted as missed, exactly."""
    follower = await start_server(redis_server.url, "paused")
    total = 1000
    try:
        async with Backplane(client, "paused", hub=WebSocketHub(), hub_maxlen=10) as publisher:
            follower.process.send_signal(signal.SIGSTOP)
            try:
                for i in range(total):
                    await publisher.broadcast(f"message {i}")
                assert await client.xlen("paused:hub") < total / 2  # Redis trimmed it
            finally:
                follower.process.send_signal(signal.SIGCONT)
            stats: dict[str, int] = {}
            async with asyncio.timeout(20):
                while stats.get("messages", 0) + stats.get("missed", 0) < total:
                    await asyncio.sleep(0.1)
                    async with session.get(f"{follower.url}/stats") as r:
                        stats = await r.json()
            assert stats["missed"] > 0
            assert stats["messages"] + stats["missed"] == total
            for _ in range(400):  # the publisher's own follower: the same account (20 s)
                s = publisher.statistics()
                if s.messages + s.missed >= total:
                    break
                await asyncio.sleep(0.05)
            assert s.messages + s.missed == total
    finally:
        await follower.stop()
