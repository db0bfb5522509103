"""create_app(allowed_origins=...): pages from other origins cannot open WebSockets or event
streams, nor change state; the demo uses it."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from loopwise.http.server import EventChannel, WebSocketHub, create_app, origin_middleware
from loopwise.http.server._demo import make_demo_app
from tests.http._serving import running

GOOD, EVIL = "https://app.example", "https://evil.example"


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def guarded_app() -> tuple[web.Application, WebSocketHub, EventChannel]:
    hub, channel = WebSocketHub(heartbeat=None), EventChannel()
    app = create_app(allowed_origins=[GOOD + ":443/", "http://127.0.0.1:8080"])
    app.router.add_get("/ws", hub.handler)
    app.router.add_get("/events", channel.handler)
    app.router.add_get("/hello", hello)
    app.router.add_post("/hello", hello)
    return app, hub, channel


async def assert_403_problem(response: aiohttp.ClientResponse, origin: str) -> None:
    assert response.status == 403
    assert response.content_type == "application/problem+json"
    body = json.loads(await response.read())
    assert origin in body["detail"] and body["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("origin", [EVIL, "null", "https://app.example.evil.example"])
async def test_cross_site_streams_and_writes_are_403(
    session: aiohttp.ClientSession, origin: str
) -> None:
    app, hub, channel = guarded_app()
    async with running(app) as url:
        headers = {"Origin": origin}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{url}/ws", headers=headers)
        assert refused.value.status == 403
        stream_headers = {**headers, "Accept": "text/event-stream"}
        async with session.get(f"{url}/events", headers=stream_headers) as response:
            await assert_403_problem(response, origin)
        async with session.post(f"{url}/hello", headers=headers, data=b"x") as response:
            await assert_403_problem(response, origin)
        async with session.get(f"{url}/hello", headers=headers) as response:  # a plain read
            assert response.status == 200
    assert hub.statistics().clients == 0 and channel.statistics().subscribers == 0


@pytest.mark.parametrize("origin", ["https://APP.example", "https://app.example:443", None])
async def test_allowed_origins_and_non_browser_clients_pass(
    session: aiohttp.ClientSession, origin: str | None
) -> None:
    app, _, _ = guarded_app()
    headers = {} if origin is None else {"Origin": origin}
    async with running(app) as url:
        ws = await session.ws_connect(f"{url}/ws", headers=headers)
        await ws.close()
        stream_headers = {**headers, "Accept": "text/event-stream"}
        async with session.get(f"{url}/events", headers=stream_headers) as response:
            assert response.status == 200
        async with session.post(f"{url}/hello", headers=headers) as response:
            assert response.status == 200


def test_an_allowed_origin_must_be_an_origin() -> None:
    with pytest.raises(ValueError, match="scheme://host"):
        origin_middleware(allowed_origins=["app.example"])
    with pytest.raises(ValueError, match="scheme://host"):
        create_app(allowed_origins=["https://app.example/path"])


async def test_the_demo_refuses_cross_site_requests(session: aiohttp.ClientSession) -> None:
    app = make_demo_app(tick_interval=5, allowed_origins=["http://127.0.0.1:8080"])
    async with running(app) as url:
        async with session.post(f"{url}/api/feed/drop", headers={"Origin": EVIL}) as response:
            await assert_403_problem(response, EVIL)
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{url}/ws", headers={"Origin": EVIL})
        drop = await session.post(
            f"{url}/api/feed/drop", headers={"Origin": "http://127.0.0.1:8080"}
        )
        assert drop.status == 200
        drop.release()


async def raw_answer(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(100), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "upgrade",
    [b"websocket\xc2\xa0", b"\xc2\x85websocket", b"WEBSOCKET"],
    ids=["trailing-nbsp", "leading-nel", "upper-case"],
)
async def test_any_upgrade_header_aiohttp_accepts_is_checked(upgrade: bytes) -> None:
    """aiohttp strips every Unicode space around the Upgrade value before it accepts a
    WebSocket handshake; the origin check must see such a handshake as one too."""
    app, hub, _ = guarded_app()
    async with running(app) as url:
        answer = await raw_answer(
            url,
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: " + upgrade + b"\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: " + EVIL.encode() + b"\r\n\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer
    assert hub.statistics().clients == 0


@pytest.mark.parametrize("accept", ["TEXT/EVENT-STREAM", "text/html, Text/Event-Stream;q=0.9"])
async def test_an_event_stream_asked_for_in_any_case_is_checked(
    session: aiohttp.ClientSession, accept: str
) -> None:
    app, _, channel = guarded_app()
    async with (
        running(app) as url,
        session.get(f"{url}/events", headers={"Origin": EVIL, "Accept": accept}) as response,
    ):
        await assert_403_problem(response, EVIL)
    assert channel.statistics().subscribers == 0
