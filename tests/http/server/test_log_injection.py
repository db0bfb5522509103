"""A client cannot forge or break log lines: control characters in anything it sends are
escaped in every logged field, on the create_app() stack and on the single middlewares."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware

from loopwise.http.server import (
    access_log_middleware,
    create_app,
    problem_middleware,
    request_id_middleware,
)
from tests.http._serving import running

FORGED = "/crash/x%0A2099-01-01 00:00:00 CRITICAL root: forged%0D%00%1B[31m%E2%80%A8end"


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


def make_app(stack: str) -> web.Application:
    middlewares: list[Middleware] | None = None
    if stack == "separate":
        middlewares = [request_id_middleware(), access_log_middleware(), problem_middleware()]
    app = create_app(middlewares=middlewares)
    app.router.add_get("/crash/{tail:[^/]*}", crash)
    return app


async def raw_get(url: str, target: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target.replace(' ', '%20')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return head


@pytest.mark.parametrize("stack", ["create_app", "separate"])
async def test_control_characters_are_escaped_in_every_logged_field(
    stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running(make_app(stack)) as url:
        head = await raw_get(url, FORGED)
    assert head.startswith(b"HTTP/1.1 500")
    records = [r for r in caplog.records if r.name.startswith("loopwise.http")]
    assert {r.name for r in records} == {"loopwise.http.access", "loopwise.http.server"}
    for record in records:
        texts = [record.getMessage()] + [
            str(value) for key, value in vars(record).items() if key in ("path", "method")
        ]
        for text in texts:
            assert text.isprintable(), f"{record.name}: {text!r}"
        assert "\\n2099-01-01" in record.getMessage()  # escaped, still readable
