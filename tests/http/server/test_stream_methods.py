"""Event-stream and WebSocket endpoints speak GET only: HEAD and other methods get a 405 problem,
subscribe nothing, and a HEAD answer carries no body (the next pipelined request still parses)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from loopwise.http.server import EventChannel, WebSocketHub, create_app
from tests.http._serving import running


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


def stream_app(channel: EventChannel, hub: WebSocketHub) -> web.Application:
    app = create_app()
    app.router.add_get("/events", channel.handler)
    app.router.add_get("/ws", hub.handler)
    app.router.add_route("*", "/any-events", channel.handler)
    app.router.add_route("*", "/any-ws", hub.handler)
    app.router.add_get("/hello", hello)
    return app


async def read_response(
    reader: asyncio.StreamReader, *, head: bool
) -> tuple[int, dict[str, str], bytes]:
    head_bytes = await reader.readuntil(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = 0 if head else int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return status, headers, body


@pytest.mark.parametrize("path", ["/events", "/ws"])
async def test_head_is_405_without_a_body_and_the_next_request_parses(path: str) -> None:
    channel, hub = EventChannel(), WebSocketHub(heartbeat=None)
    await channel.publish("one")
    async with running(stream_app(channel, hub)) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        upgrade = (
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        writer.write(
            f"HEAD {path} HTTP/1.1\r\nHost: {host}\r\nLast-Event-ID: 0\r\n{upgrade}\r\n"
            f"GET /hello HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):
            status, headers, _ = await read_response(reader, head=True)
            assert status == 405
            assert headers["content-type"].startswith("application/problem+json")
            assert headers["allow"] == "GET"
            assert "x-request-id" in headers
            status, _, body = await read_response(reader, head=False)
        assert (status, body) == (200, b"hello")
        writer.close()
    assert channel.statistics().subscribers == 0
    assert channel.statistics().resumed == 0
    assert hub.statistics().clients == 0


@pytest.mark.parametrize("path", ["/any-events", "/any-ws"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405_problems(
    session: aiohttp.ClientSession, path: str, method: str
) -> None:
    channel, hub = EventChannel(), WebSocketHub(heartbeat=None)
    async with (
        running(stream_app(channel, hub)) as url,
        session.request(method, f"{url}{path}", data=b"{}") as response,
    ):
        assert response.status == 405
        assert response.content_type == "application/problem+json"
        assert response.headers["Allow"] == "GET"
        problem = json.loads(await response.read())
        assert problem["status"] == 405 and "GET" in problem["detail"]
    assert channel.statistics().subscribers == 0
    assert hub.statistics().clients == 0
