"""loopwise.http.Client: requests, errors mapped at the boundary, lifecycle, pool and rate limits.

Every test talks to a real aiohttp server on 127.0.0.1:0; nothing of the client is mocked.
"""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest
from aiohttp import web

import loopwise
from loopwise.http import (
    Client,
    ConnectError,
    DecodingError,
    HTTPError,
    HTTPStatusError,
    HTTPTimeout,
    InvalidURL,
    TransportError,
)
from tests.http._serving import Handler, serving


async def echo(request: web.Request) -> web.StreamResponse:
    return web.json_response(
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": (await request.read()).decode(),
        }
    )


async def not_found(request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": "no such user", "id": 42}, status=404)


async def truncated(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"x" * 300)
    assert request.transport is not None
    request.transport.close()
    return response


async def never_answers(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- requests -------------------------------------------------------------------------------------


async def test_get_json_text_bytes_and_base_url_join() -> None:
    async def text(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body="café".encode("latin-1"), content_type="text/plain", charset="latin-1"
        )

    async with (
        serving({"/v1/{tail:.*}": echo, "/text": text}) as url,
        Client(f"{url}/v1") as client,
    ):
        data = await client.get_json("users", params={"page": "2"})
        assert (data["path"], data["query"]) == ("/v1/users", {"page": "2"})
        assert json.loads(await client.get_bytes("users"))["path"] == "/v1/users"
        assert await client.get_text(f"{url}/text") == "café"
        assert (await client.get_json("/v1/abs"))["path"] == "/v1/abs"


@pytest.mark.parametrize("method", ["get", "head", "options", "post", "put", "patch", "delete"])
async def test_shorthands_send_their_method(method: str) -> None:
    async with serving({"/x": echo}) as url, Client(url) as client:
        async with getattr(client, method)("/x") as response:
            assert response.status == 200
            assert response.method == method.upper()
            if method != "head":
                assert (await response.json())["method"] == method.upper()
        assert client.statistics().in_flight == 0


async def test_default_and_per_request_headers_and_bodies() -> None:
    async with (
        serving({"/x": echo}) as url,
        Client(url, headers={"X-App": "demo", "X-Both": "client"}) as client,
        client.post("/x", json={"a": 1}, headers={"X-Both": "request"}) as response,
    ):
        data = await response.json()
    assert data["headers"]["X-App"] == "demo"
    assert data["headers"]["X-Both"] == "request"
    assert json.loads(data["body"]) == {"a": 1}


async def test_response_released_after_the_block() -> None:
    async with serving({"/x": echo}) as url, Client(url) as client:
        async with client.get("/x") as response:
            assert client.statistics().in_flight == 1
        assert response.closed
        assert client.statistics().in_flight == 0


# -- errors mapped at the boundary ----------------------------------------------------------------


async def test_status_error_carries_status_url_and_body_excerpt() -> None:
    async with serving({"/users/42": not_found}) as url, Client(url) as client:
        with pytest.raises(HTTPStatusError) as info:
            await client.get_json("/users/42")
        assert client.statistics().failures == 1
    error = info.value
    assert isinstance(error, HTTPError) and isinstance(error, loopwise.LoopwiseError)
    assert (error.status, error.reason, error.method) == (404, "Not Found", "GET")
    assert str(error.url) == f"{url}/users/42"
    assert json.loads(error.body) == {"error": "no such user", "id": 42}
    assert error.headers["Content-Type"].startswith("application/json")
    assert "404 Not Found for GET" in str(error)
    assert "no such user" in str(error)
    assert "raise_for_status=False" in str(error)


async def test_status_error_body_is_an_excerpt_and_credentials_are_hidden() -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="E" * 1_000_000)

    async with serving({"/x": huge}) as url, Client() as client:
        authed = url.replace("http://", "http://user:secret@")
        with pytest.raises(HTTPStatusError) as info:
            await client.get_bytes(f"{authed}/x")
    assert info.value.body == "E" * 2048
    assert "secret" not in str(info.value) and "secret" not in str(info.value.url)


async def test_raise_for_status_off_returns_the_response() -> None:
    async with serving({"/x": not_found}) as url:
        async with Client(url, raise_for_status=False) as client, client.get("/x") as response:
            assert response.status == 404
        async with Client(url) as client:
            async with client.get("/x", raise_for_status=False) as response:
                assert (await response.json())["id"] == 42
            assert (await client.get_json("/x", raise_for_status=False))["id"] == 42


async def test_invalid_urls() -> None:
    async with Client() as client:
        with pytest.raises(InvalidURL, match="needs a base"):
            await client.get_json("/relative")
        with pytest.raises(InvalidURL, match="only http and https"):
            await client.get_json("ftp://example.com/file")
        with pytest.raises(ValueError):
            await client.get_json("ftp://example.com/file")


async def test_connect_error_without_retries() -> None:
    port = refused_port()
    async with Client(retry=None) as client:
        with pytest.raises(ConnectError) as info:
            await client.get_json(f"http://127.0.0.1:{port}/")
    assert isinstance(info.value, TransportError)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
    assert info.value.url.port == port


async def test_timeout_is_mapped_and_is_a_timeout_error() -> None:
    async with serving({"/x": never_answers}) as url, Client(url, timeout=0.2) as client:
        with pytest.raises(HTTPTimeout) as info:
            await client.get_bytes("/x", retry=None)
    assert isinstance(info.value, TimeoutError)


async def test_decoding_errors() -> None:
    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>oops</html>", content_type="text/html")

    async def bad_utf8(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\xff\xfe\xfa", content_type="text/plain", charset="utf-8")

    async with serving({"/html": html, "/bin": bad_utf8}) as url, Client(url) as client:
        with pytest.raises(DecodingError) as info:
            await client.get_json("/html")
        assert info.value.body == "<html>oops</html>"
        assert isinstance(info.value, ValueError)
        with pytest.raises(DecodingError, match="not valid utf-8"):
            await client.get_text("/bin")
        assert await client.get_text("/bin", encoding="latin-1") == "ÿþú"


async def test_aiohttp_errors_inside_the_block_are_mapped() -> None:
    async with serving({"/x": truncated}) as url, Client(url) as client:
        with pytest.raises(TransportError) as info:
            async with client.get("/x") as response:
                await response.read()
        assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)
        assert client.statistics().in_flight == 0


async def test_errors_of_our_own_code_inside_the_block_pass_through() -> None:
    async with serving({"/x": echo}) as url, Client(url) as client:
        with pytest.raises(KeyError):
            async with client.get("/x"):
                raise KeyError("mine")


# -- lifecycle ------------------------------------------------------------------------------------


async def test_session_closed_when_the_block_raises() -> None:
    client = Client()
    with pytest.raises(RuntimeError, match="boom"):
        async with client:
            session = client.session
            raise RuntimeError("boom")
    assert session.closed
    assert client.statistics().state == "closed"


async def test_session_closed_when_a_request_error_escapes() -> None:
    async with serving({"/x": not_found}) as url:
        client = Client(url)
        with pytest.raises(HTTPStatusError):
            async with client:
                session = client.session
                async with client.get("/x"):
                    pass
    assert session.closed


async def test_session_closed_on_cancellation() -> None:
    arrived = asyncio.Event()
    holder: list[aiohttp.ClientSession] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.sleep(5)
        return web.Response()

    async def run(url: str) -> None:
        async with Client(url) as client:
            holder.append(client.session)
            await client.get_bytes("/x")

    async with serving({"/x": slow}) as url:
        task = asyncio.create_task(run(url))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert holder[0].closed


async def test_use_outside_the_block_says_what_to_do() -> None:
    client = Client()
    with pytest.raises(loopwise.UsageError, match="async with Client"):
        await client.get_json("http://127.0.0.1:1/")
    async with client:
        pass
    with pytest.raises(loopwise.ClosedError, match="closed"):
        await client.get_json("http://127.0.0.1:1/")
    with pytest.raises(loopwise.UsageError, match="entered once"):
        async with client:
            pass
    await client.aclose()  # idempotent


async def test_statistics_and_repr() -> None:
    async with serving({"/x": echo, "/404": not_found}) as url, Client(url) as client:
        await client.get_json("/x")
        with pytest.raises(HTTPStatusError):
            await client.get_json("/404")
        stats = client.statistics()
        assert (stats.state, stats.requests, stats.attempts, stats.failures) == ("open", 2, 2, 1)
        assert repr(client) == (
            f"<Client {url} open in_flight=0 requests=2 retries=0 failures=1 limit=100/10>"
        )


def test_bad_options_get_one_clear_message() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        Client("api.example.com")
    with pytest.raises(ValueError, match="limit must be"):
        Client(limit=-1)
    with pytest.raises(ValueError, match="timeout must be"):
        Client(timeout=0)
    with pytest.raises(ValueError, match="rate must be"):
        Client(rate=0)
    with pytest.raises(ValueError, match="rate_scope"):
        Client(rate=1, rate_scope="world")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared by every request"):
        Client(rate=loopwise.RateLimiter(1), rate_scope="host")
    with pytest.raises(ValueError, match="use the Client argument"):
        Client(session_options={"timeout": 3})
    with pytest.raises(ValueError, match="chunk_size"):
        Client().stream("http://x/", chunk_size=0)


# -- pool and rate limits -------------------------------------------------------------------------


async def test_limit_per_host_bounds_concurrent_connections() -> None:
    active = peak = 0

    async def busy(request: web.Request) -> web.StreamResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return web.Response(text="ok")

    async with serving({"/x": busy}) as url, Client(url, limit_per_host=2) as client:
        results = await asyncio.gather(*(client.get_text("/x") for _ in range(8)))
    assert results == ["ok"] * 8
    assert peak == 2


async def test_rate_per_host_spaces_requests() -> None:
    rate, n = 50.0, 6
    async with serving({"/x": echo}) as url, Client(url, rate=rate) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(client.get_bytes("/x") for _ in range(n)))
        elapsed = loop.time() - start
        assert client.statistics().rate_limiters == 1
    # a lower bound only: n requests at `rate`/s need at least (n - 1) intervals
    assert elapsed >= (n - 1) / rate - 0.005


async def test_rate_limits_are_per_host_unless_global() -> None:
    async def arrivals(scope: str) -> list[str]:
        order: list[str] = []

        def recorder(name: str) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                order.append(name)
                return web.Response()

            return handler

        async with (
            serving({"/a": recorder("a")}) as a,
            serving({"/b": recorder("b")}) as b,
            Client(rate=4, rate_scope=scope) as client,  # type: ignore[arg-type]
        ):
            await asyncio.gather(
                client.get_bytes(f"{a}/a"), client.get_bytes(f"{a}/a"), client.get_bytes(f"{b}/b")
            )
            assert client.statistics().rate_limiters == (2 if scope == "host" else 1)
        return order

    # per host, b's first request does not queue behind a's second (which waits 0.25 s)
    assert await arrivals("host") == ["a", "b", "a"]
    assert await arrivals("global") == ["a", "a", "b"]
