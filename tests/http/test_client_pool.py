"""loopwise.http.Client: connections always go back to the pool, and no wait for one is unbounded.

A real aiohttp server on 127.0.0.1:0; every loop of requests is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from loopwise import UsageError
from loopwise.http import (
    Client,
    ConnectError,
    HTTPError,
    HTTPRetry,
    PoolTimeout,
    RetryExhausted,
)
from tests.http._serving import serving

BODY = b"x" * (1024 * 1024)  # larger than one chunk, so a stopped stream leaves body unread


async def big(request: web.Request) -> web.StreamResponse:
    return web.Response(body=BODY)


async def small(request: web.Request) -> web.StreamResponse:
    return web.json_response({"ok": True})


async def test_iterating_a_stream_without_async_with_is_refused_before_anything_is_sent() -> None:
    # `async for` gives an iterator no signal when the loop stops early (break, an exception in
    # the body): such a stream could never give its connection back, so it is refused at once.
    hits = 0

    async def counted(request: web.Request) -> web.StreamResponse:
        nonlocal hits
        hits += 1
        return await big(request)

    async with (
        serving({"/big": counted, "/ok": small}) as url,
        Client(url, limit_per_host=2) as client,
    ):
        async with asyncio.timeout(10):
            for _ in range(100):
                with pytest.raises(UsageError, match=r"async with client\.stream"):
                    async for _chunk in client.stream("/big"):
                        break
            gc.collect()
            assert client.statistics().in_flight == 0
            async with asyncio.timeout(2):
                assert await client.get_json("/ok") == {"ok": True}
    assert hits == 0


async def test_a_stream_left_early_100_times_gives_every_connection_back() -> None:
    async with (
        serving({"/big": big, "/ok": small}) as url,
        Client(url, limit_per_host=2, retry=None) as client,
    ):
        async with asyncio.timeout(20):
            for i in range(100):
                if i % 2:
                    async with client.stream("/big", chunk_size=1024) as chunks:
                        async for _ in chunks:
                            break
                else:  # a timeout inside the loop body
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.01):
                            async with client.stream("/big", chunk_size=1024) as chunks:
                                async for _ in chunks:
                                    await asyncio.sleep(1)
            assert client.statistics().in_flight == 0
            async with asyncio.timeout(2):
                assert await client.get_json("/ok") == {"ok": True}
                async with client.stream("/ok") as chunks:
                    assert b"".join([c async for c in chunks]) == b'{"ok": true}'


async def test_a_full_pool_ends_the_wait_with_pool_timeout(tmp_path: Path) -> None:
    async with (
        serving({"/big": big, "/ok": small}) as url,
        Client(url, limit_per_host=1, pool_timeout=0.2) as client,
    ):
        async with client.stream("/big") as held:
            async with asyncio.timeout(5):
                attempts = client.statistics().attempts
                with pytest.raises(PoolTimeout, match="limit_per_host=1") as info:
                    await client.get_json("/ok")
                # not retried, although the policy retries connect errors: the bound holds
                assert client.statistics().attempts == attempts + 1
                with pytest.raises(PoolTimeout):
                    async with client.stream("/ok"):
                        pass
                with pytest.raises(PoolTimeout):
                    await client.download("/ok", tmp_path / "never-written.json")
                with pytest.raises(PoolTimeout):
                    async with client.get("/ok"):
                        pass
            assert held.response is not None
        # a pool timeout never reached the server: it is a ConnectError, safe to retry
        assert isinstance(info.value, ConnectError)
        assert await client.get_json("/ok") == {"ok": True}


async def test_pool_timeout_is_validated() -> None:
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises((ValueError, TypeError), match="pool_timeout"):
            Client(pool_timeout=bad)  # type: ignore[arg-type]


class Abort(BaseException):
    """Not an Exception: what user code may raise (a test framework's failure, say)."""


async def test_a_base_exception_or_cancellation_in_user_code_gives_the_connection_back() -> None:
    def loads(body: bytes) -> object:
        raise Abort

    async with (
        serving({"/big": big, "/ok": small}) as url,
        Client(url, limit_per_host=1, pool_timeout=2) as client,
    ):
        async with asyncio.timeout(10):
            for _ in range(5):
                with pytest.raises(Abort):
                    await client.get_json("/ok", loads=loads)
                with pytest.raises(Abort):
                    async with client.stream("/big") as chunks:
                        async for _ in chunks:
                            raise Abort
                with pytest.raises(Abort):
                    async with client.get("/big"):
                        raise Abort
                async with client.stream("/big"):  # holds the only connection
                    waiting = asyncio.ensure_future(client.get_json("/ok"))
                    await asyncio.sleep(0.05)
                    assert not waiting.done()
                    waiting.cancel()  # cancelled while waiting for the pool
                    with pytest.raises(asyncio.CancelledError):
                        await waiting
            assert client.statistics().in_flight == 0
            assert await client.get_json("/ok") == {"ok": True}


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose listener never accepts and whose backlog is full: a new TCP
    connection to it hangs in the handshake (its SYN is dropped), as to a host that is down."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):  # fill the accept queue; later connects are left hanging
            filler = socket.socket()
            filler.setblocking(False)
            fillers.append(filler)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_socket_connect_timeout_after_a_long_wait_is_not_a_pool_timeout() -> None:
    # aiohttp raises the same ConnectionTimeoutError for its sock_connect bound and for the pool
    # bound. A request that first waited for its rate-limit permit, then timed out opening a
    # socket, spent longer than pool_timeout in all, but the pool was never full.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=0.2)
    with unanswered_port() as port:
        async with (
            serving({"/ok": small}) as url,
            Client(pool_timeout=1.0, timeout=timeout, rate=1.0, rate_scope="global") as client,
        ):
            async with asyncio.timeout(10):
                assert await client.get_json(f"{url}/ok") == {"ok": True}  # takes the permit
                with pytest.raises(ConnectError) as info:
                    await client.get_json(f"http://127.0.0.1:{port}/", retry=None)
                assert not isinstance(info.value, PoolTimeout), info.value


async def test_a_pool_timeout_says_whether_the_pool_was_full_or_the_server_slow_to_accept() -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=None)
    with unanswered_port() as port:
        async with Client(pool_timeout=0.3, timeout=timeout, retry=None) as client:
            async with asyncio.timeout(10):
                with pytest.raises(PoolTimeout, match="did not accept a new connection in time"):
                    await client.get_bytes(f"http://127.0.0.1:{port}/")
    async with (
        serving({"/big": big}) as url,
        Client(url, limit_per_host=1, pool_timeout=0.3) as client,
        client.stream("/big"),
    ):
        async with asyncio.timeout(10):
            with pytest.raises(PoolTimeout, match=r"limit_per_host=1\) stayed full;"):
                await client.get_bytes("/big")


async def test_closing_the_client_ends_every_request_in_flight_at_once() -> None:
    # Requests reading a body, streaming, in a retry's backoff, waiting for the pool or for a
    # rate-limit permit when the client closes: each ends promptly with an HTTPError saying the
    # client was closed (not a raw RuntimeError, not a wait for a timeout), and none is retried.
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(200):
            await response.write(b"x" * 1000)
            await asyncio.sleep(0.05)
        return response

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, headers={"Retry-After": "0.5"})

    async def busy_slowly(request: web.Request) -> web.StreamResponse:
        # a 503 whose small body the client drains (to reuse the connection) before backing off
        response = web.StreamResponse(status=503, headers={"Retry-After": "30"})
        response.content_length = 10
        await response.prepare(request)
        await response.write(b"busy.")
        await asyncio.sleep(30)
        return response

    async with serving({"/slow": slow, "/busy": busy, "/busy-slowly": busy_slowly}) as url:
        client = Client(url, timeout=None, retry=HTTPRetry(attempts=3))
        full = Client(url, limit_per_host=1, timeout=None)
        rated = Client(url, rate=0.5)
        clients = (client, full, rated)
        for each in clients:
            await each.__aenter__()

        async def streamed(client: Client) -> None:
            async with client.stream("/slow", chunk_size=100) as chunks:
                async for _ in chunks:
                    pass

        async def read_in_block() -> None:
            async with client.get("/slow") as response:
                await response.read()

        await rated.get_bytes("/busy", raise_for_status=False, retry=None)  # takes the permit
        work = {
            "get_bytes": asyncio.ensure_future(client.get_bytes("/slow")),
            "stream": asyncio.ensure_future(streamed(client)),
            "get": asyncio.ensure_future(read_in_block()),
            "backoff": asyncio.ensure_future(client.get_json("/busy")),
            "draining": asyncio.ensure_future(client.get_json("/busy-slowly")),
            "holds the pool": asyncio.ensure_future(streamed(full)),
            "pool": asyncio.ensure_future(full.get_bytes("/slow")),
            "rate": asyncio.ensure_future(rated.get_bytes("/busy")),
        }
        cancelled = asyncio.ensure_future(full.get_bytes("/slow"))  # and cancelled as it closes
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in work.values())
        async with asyncio.timeout(2):
            cancelled.cancel()
            await asyncio.gather(*(each.aclose() for each in clients))
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            for name, task in work.items():
                with pytest.raises(HTTPError, match="closed") as info:
                    await task
                assert not isinstance(info.value, RetryExhausted), name
        for each in clients:
            assert each.statistics().in_flight == 0


async def test_a_total_timeout_shorter_than_pool_timeout_on_a_full_pool_is_a_pool_timeout() -> None:
    # Client(timeout=10) is common, and its total runs out before the 60 s pool_timeout: the
    # error must still say the pool was full, not "raise the timeout or use stream()".
    async with (
        serving({"/big": big}) as url,
        Client(url, limit_per_host=1, timeout=0.3) as client,
        client.stream("/big", timeout=None),
    ):
        async with asyncio.timeout(10):
            with pytest.raises(PoolTimeout, match=r"limit_per_host=1\) stayed full;") as info:
                await client.get_bytes("/big")
            assert "0.3s" in str(info.value)


async def test_iterating_a_stream_after_its_block_raises_instead_of_yielding_nothing() -> None:
    async with serving({"/big": big}) as url, Client(url) as client:
        async with client.stream("/big") as chunks:
            pass
        with pytest.raises(UsageError, match="inside the block"):
            async for _ in chunks:
                pass
        async with client.stream("/big") as whole:
            assert len(b"".join([chunk async for chunk in whole])) == len(BODY)
            assert [chunk async for chunk in whole] == []  # read to the end: nothing more
