"""loopwise.http.Client and redirects: too many is its own error, every hop is rate limited.

A real aiohttp server on 127.0.0.1:0 answers the redirects.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

import loopwise
from loopwise.http import Client, HTTPError, HTTPStatusError, RetryExhausted, TooManyRedirects
from tests.http._serving import serving


async def hop(request: web.Request) -> web.StreamResponse:
    n = int(request.match_info["n"])
    raise web.HTTPFound(f"/hop/{n + 1}")


async def small(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


@pytest.mark.parametrize("raise_for_status", [True, False])
async def test_too_many_redirects_is_its_own_error_with_the_chain(raise_for_status: bool) -> None:
    async with (
        serving({"/hop/{n}": hop}) as url,
        Client(url, raise_for_status=raise_for_status) as client,
    ):
        async with asyncio.timeout(5):
            with pytest.raises(TooManyRedirects) as info:
                await client.get_json("/hop/0")
            with pytest.raises(TooManyRedirects):
                async with client.get("/hop/0", max_redirects=3):
                    pass
        assert client.statistics().attempts == 2  # not retried
    error = info.value
    assert isinstance(error, HTTPError)
    assert not isinstance(error, HTTPStatusError | RetryExhausted)
    assert [u.path for u in error.chain] == [f"/hop/{n}" for n in range(11)]
    assert error.method == "GET"
    assert error.url.path == "/hop/0"
    assert "after 10 redirects" in str(error)
    assert "/hop/0 -> /hop/1" in str(error)


async def test_every_redirect_hop_takes_a_permit_from_its_hosts_limiter() -> None:
    async def three_hops(request: web.Request) -> web.StreamResponse:
        n = int(request.match_info["n"])
        if n == 3:
            raise web.HTTPFound("/ok")
        return await hop(request)

    limiter = loopwise.RateLimiter(1000, burst=1000)
    async with (
        serving({"/hop/{n}": three_hops, "/ok": small}) as url,
        Client(url, rate=limiter) as client,
    ):
        assert await client.get_json("/hop/0") == {"ok": True}
    # /hop/0, /hop/1, /hop/2, /hop/3, /ok: five requests on the wire, five permits
    assert limiter.statistics().acquired == 5


async def test_a_redirect_to_another_host_takes_a_permit_from_that_hosts_limiter() -> None:
    # Limiters are per (scheme, host, port): a second server on another port is another host.
    async with serving({"/ok": small}) as target:

        async def elsewhere(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{target}/ok")

        async with serving({"/go": elsewhere}) as url, Client(url, rate=1000) as client:
            assert await client.get_json("/go") == {"ok": True}
            assert client.statistics().rate_limiters == 2


async def test_aiohttps_resend_on_a_stale_connection_takes_a_permit() -> None:
    # A server that answers the first request of each connection and drops the connection on
    # the second without answering: aiohttp resends that GET once on a new connection.
    heads = 0
    body = b'{"ok": true}'
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal heads
        served = 0
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                heads += 1
                if served:
                    break
                served += 1
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = loopwise.RateLimiter(1000, burst=1000)
    try:
        async with Client(f"http://127.0.0.1:{port}", rate=limiter, retry=None) as client:
            async with asyncio.timeout(5):
                assert await client.get_json("/a") == {"ok": True}
                assert await client.get_json("/b") == {"ok": True}
    finally:
        server.close()
        await server.wait_closed()
    assert heads == 3  # /a, /b dropped, /b resent by aiohttp
    assert limiter.statistics().acquired == heads
