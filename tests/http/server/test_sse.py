"""EventChannel against a real server: framing, resume with Last-Event-ID, gaps, keep-alive,
slow clients and shutdown."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from aiohttp import web

from loopwise.http.server import EventChannel, create_app
from tests.http._serving import running

from .conftest import SSEReader
from .test_hub import wait_for


def channel_app(channel: EventChannel) -> web.Application:
    app = create_app()
    app.router.add_get("/events", channel.handler)
    return app


async def test_stream_headers_and_framing(session: aiohttp.ClientSession) -> None:
    channel = EventChannel(retry_ms=250)
    async with running(channel_app(channel)) as url, session.get(f"{url}/events") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        assert r.headers["Cache-Control"] == "no-cache"
        await wait_for(lambda: channel.statistics().subscribers == 1)
        assert await channel.publish("one") == 1
        assert await channel.publish("two\nlines\r\nand\rmore", event="multi") == 2
        assert await channel.publish(" spaced") == 3
        reader = SSEReader(r)
        first, second, third = await reader.take(3)
        assert reader.retry == 250
        assert (first.id, first.event, first.data) == ("1", None, "one")
        assert (second.id, second.event, second.data) == ("2", "multi", "two\nlines\nand\nmore")
        assert third.data == " spaced"


async def test_resume_returns_exactly_the_missed_events(session: aiohttp.ClientSession) -> None:
    channel = EventChannel(history=100, keepalive=0.05)  # notices the dropped client quickly
    async with running(channel_app(channel)) as url:
        async with session.get(f"{url}/events") as r:
            await wait_for(lambda: channel.statistics().subscribers == 1)
            for i in range(5):
                await channel.publish(f"e{i}")
            seen = await SSEReader(r).take(3)  # the client drops after reading 3 of 5
        last_id = seen[-1].id
        assert last_id == "3"
        await wait_for(lambda: channel.statistics().subscribers == 0)
        for i in range(5, 8):  # published while the client is away
            await channel.publish(f"e{i}")
        headers = {"Last-Event-ID": last_id}
        async with session.get(f"{url}/events", headers=headers) as r:
            reader = SSEReader(r)
            replayed = await reader.take(5)
            assert [e.data for e in replayed] == ["e3", "e4", "e5", "e6", "e7"]
            assert [e.id for e in replayed] == ["4", "5", "6", "7", "8"]
            await channel.publish("live")
            live = await reader.next()
            assert live is not None and (live.id, live.data) == ("9", "live")
    stats = channel.statistics()
    assert (stats.resumed, stats.replayed, stats.gaps) == (1, 5, 0)


async def test_resume_via_query_parameter(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    for i in range(3):
        await channel.publish(f"e{i}")
    async with (
        running(channel_app(channel)) as url,
        session.get(f"{url}/events?last_event_id=2") as r,
    ):
        [event] = await SSEReader(r).take(1)
        assert (event.id, event.data) == ("3", "e2")


async def test_up_to_date_resume_replays_nothing(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    await channel.publish("only")
    async with (
        running(channel_app(channel)) as url,
        session.get(f"{url}/events", headers={"Last-Event-ID": "1"}) as r,
    ):
        await wait_for(lambda: channel.statistics().subscribers == 1)
        await channel.publish("next")
        [event] = await SSEReader(r).take(1)
        assert event.data == "next"


async def test_expired_gap_is_signalled(session: aiohttp.ClientSession) -> None:
    channel = EventChannel(history=3)
    for i in range(10):
        await channel.publish(f"e{i}")
    async with (
        running(channel_app(channel)) as url,
        session.get(f"{url}/events", headers={"Last-Event-ID": "2"}) as r,
    ):
        gap, *rest = await SSEReader(r).take(4)
        assert gap.event == "gap" and gap.id is None
        assert json.loads(gap.data) == {
            "last_event_id": 2,
            "first_available_id": 8,
            "reason": "expired",
        }
        assert [e.data for e in rest] == ["e7", "e8", "e9"]
    assert channel.statistics().gaps == 1


async def test_unknown_id_after_restart_is_signalled(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    await channel.publish("fresh")
    async with (
        running(channel_app(channel)) as url,
        session.get(f"{url}/events", headers={"Last-Event-ID": "500"}) as r,
    ):
        gap, fresh = await SSEReader(r).take(2)
        assert json.loads(gap.data)["reason"] == "unknown"
        assert fresh.data == "fresh"


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "١٢", "9" * 30])
async def test_malformed_last_event_id_is_400(session: aiohttp.ClientSession, bad: str) -> None:
    channel = EventChannel()
    async with (
        running(channel_app(channel)) as url,
        session.get(f"{url}/events", headers={"Last-Event-ID": bad}) as r,
    ):
        assert r.status == 400
        assert r.headers["Content-Type"] == "application/problem+json"
        assert "Last-Event-ID" in (await r.json(content_type=None))["detail"]


async def test_invalid_events_are_rejected() -> None:
    channel = EventChannel()
    with pytest.raises(ValueError, match="line breaks"):
        await channel.publish("x", event="a\nb")
    with pytest.raises(ValueError, match="line breaks"):
        await channel.publish("x", event="a\rb")
    with pytest.raises(ValueError, match="empty"):
        await channel.publish("")
    with pytest.raises(TypeError, match=r"json\.dumps"):
        await channel.publish(b"bytes")  # type: ignore[arg-type]
    assert channel.statistics().last_event_id == 0


async def test_keepalive_comments(session: aiohttp.ClientSession) -> None:
    channel = EventChannel(keepalive=0.02)
    async with running(channel_app(channel)) as url, session.get(f"{url}/events") as r:
        reader = SSEReader(r)
        await wait_for(lambda: channel.statistics().subscribers == 1)
        await asyncio.sleep(0.1)
        await channel.publish("after idle")
        event = await reader.next()
        assert event is not None and event.data == "after idle"
        assert reader.comments >= 1


async def test_slow_client_is_dropped_and_resumes(session: aiohttp.ClientSession) -> None:
    channel = EventChannel(queue_size=16, history=100_000, send_timeout=30.0)
    async with running(channel_app(channel)) as url:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET /events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        await wait_for(lambda: channel.statistics().subscribers == 1)
        payload = "p" * 8192
        for _ in range(5000):  # bounded; the stalled reader is dropped long before
            if channel.statistics().evicted:
                break
            await channel.publish(payload)
        stats = channel.statistics()
        assert stats.evicted == 1
        assert stats.subscribers == 0
        last_id = stats.last_event_id
        writer.close()
        # A reader that comes back with its last id gets the rest from the history.
        async with session.get(f"{url}/events", headers={"Last-Event-ID": str(last_id - 2)}) as r:
            events = await SSEReader(r).take(2)
            assert [e.id for e in events] == [str(last_id - 1), str(last_id)]


async def test_disconnect_all_and_close(session: aiohttp.ClientSession) -> None:
    channel = EventChannel()
    async with running(channel_app(channel)) as url:
        async with session.get(f"{url}/events") as r:
            await wait_for(lambda: channel.statistics().subscribers == 1)
            assert channel.disconnect_all() == 1
            assert await SSEReader(r).next() is None  # a clean end of stream
        async with session.get(f"{url}/events") as r:
            await wait_for(lambda: channel.statistics().subscribers == 1)
            await asyncio.wait_for(channel.close(), 10)
            assert await SSEReader(r).next() is None
        async with session.get(f"{url}/events") as r:
            assert r.status == 503
    assert "closed" in repr(channel)


def test_repr_and_bad_options() -> None:
    assert repr(EventChannel()) == (
        "<EventChannel subscribers=0 last_event_id=0 history=0 evicted=0 open>"
    )
    with pytest.raises(ValueError, match="history"):
        EventChannel(history=-1)
    with pytest.raises(ValueError, match="keepalive"):
        EventChannel(keepalive=0)
