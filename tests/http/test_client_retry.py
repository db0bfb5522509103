"""loopwise.http.Client retries: urllib3's rules against a real aiohttp server on 127.0.0.1:0.

Delays go through an injected ``sleep`` that records them and returns at once (a virtual clock):
no test waits for a backoff or a Retry-After.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections import Counter
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest
from aiohttp import web

import loopwise
from loopwise.http import (
    AttemptRecord,
    Client,
    ConnectError,
    HTTPRetry,
    HTTPStatusError,
    RetryExhausted,
    TransportError,
    parse_retry_after,
)
from tests.http._serving import Handler, serving_with_hits


class VirtualSleep:
    """An injected ``sleep``: records each delay and advances a virtual clock, no waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 0.0

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        await asyncio.sleep(0)

    def clock(self) -> float:
        return self.now


def policy(sleep: VirtualSleep, **options: object) -> HTTPRetry:
    options.setdefault("jitter", False)
    return HTTPRetry(sleep=sleep, clock=sleep.clock, **options)  # type: ignore[arg-type]


def answers(*statuses: int, headers: dict[str, str] | None = None, body: str = "") -> Handler:
    """A handler answering the given statuses in turn, then 200 {"ok": true}."""
    queue = list(statuses)

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        if queue:
            return web.Response(status=queue.pop(0), text=body or "busy", headers=headers)
        return web.json_response({"ok": True})

    return handler


async def drop_connection(request: web.Request) -> web.StreamResponse:
    """Read the request, then close the connection without answering."""
    await request.read()
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- which failures retry -------------------------------------------------------------------------


async def test_get_retried_on_503_until_success_with_backoff() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, 503)}) as (url, hits),
        Client(url, retry=policy(sleep, backoff=0.5)) as client,
    ):
        assert await client.get_json("/x") == {"ok": True}
        stats = client.statistics()
    assert hits["/x"] == 3
    assert sleep.delays == [0.5, 1.0]
    assert (stats.requests, stats.attempts, stats.retries, stats.failures) == (1, 3, 2, 0)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"])
async def test_idempotent_methods_retried_until_attempts_used_up(method: str) -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, 503, 503, 503)}) as (url, hits),
        Client(url, retry=policy(sleep, attempts=3)) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            async with client.request(method, "/x"):
                pass
    assert hits["/x"] == 3
    assert info.value.status == 503
    assert [a.status for a in info.value.attempts] == [503, 503, 503]
    assert isinstance(info.value.last, HTTPStatusError)
    assert info.value.__cause__ is info.value.last
    assert len(sleep.delays) == 2


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_methods_not_retried_by_default(method: str) -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503)}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        with pytest.raises(HTTPStatusError) as info:
            async with client.request(method, "/x", json={"a": 1}):
                pass
    assert not isinstance(info.value, RetryExhausted)
    assert info.value.status == 503
    assert hits["/x"] == 1
    assert sleep.delays == []


async def test_post_not_retried_on_a_dropped_connection() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": drop_connection}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        with pytest.raises(TransportError) as info:
            async with client.post("/x", data=b"payload"):
                pass
        assert client.statistics().attempts == 1
    assert not isinstance(info.value, RetryExhausted)
    assert hits["/x"] == 1
    assert sleep.delays == []


async def test_get_retried_on_a_dropped_connection() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": drop_connection}) as (url, _),
        Client(url, retry=policy(sleep, attempts=3)) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            await client.get_bytes("/x")
        assert client.statistics().attempts == 3
    assert isinstance(info.value.last, TransportError)
    assert info.value.status is None
    assert all(a.status is None and a.error is not None for a in info.value.attempts)
    assert len(sleep.delays) == 2


@pytest.mark.parametrize(
    ("status", "retried"),
    [(429, True), (502, True), (503, True), (504, True), (500, False), (404, False)],
)
async def test_retried_statuses(status: int, retried: bool) -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(status)}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        if retried:
            assert await client.get_json("/x") == {"ok": True}
        else:
            with pytest.raises(HTTPStatusError) as info:
                await client.get_json("/x")
            assert info.value.status == status
    assert hits["/x"] == (2 if retried else 1)


async def test_connect_error_retried_for_any_method_since_the_request_never_left() -> None:
    sleep = VirtualSleep()
    port = refused_port()
    async with Client(retry=policy(sleep, attempts=3)) as client:
        with pytest.raises(RetryExhausted) as info:
            async with client.post(f"http://127.0.0.1:{port}/x", json={"a": 1}):
                pass
        assert client.statistics().attempts == 3
    assert isinstance(info.value.last, ConnectError)
    assert len(sleep.delays) == 2


async def test_body_cut_short_retried_by_get_bytes() -> None:
    calls = 0

    async def truncated_once(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls > 1:
            return web.Response(body=b"x" * 1000)
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x" * 500)
        assert request.transport is not None
        request.transport.close()
        return response

    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": truncated_once}) as (url, _),
        Client(url, retry=policy(sleep)) as client,
    ):
        assert await client.get_bytes("/x") == b"x" * 1000
    assert len(sleep.delays) == 1


async def test_stream_body_is_not_retried() -> None:
    async def gen() -> AsyncIterator[bytes]:
        yield b"chunk"

    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503)}) as (url, hits),
        Client(url, retry=policy(sleep, methods=None)) as client,
    ):
        with pytest.raises(HTTPStatusError):
            async with client.put("/x", data=gen()):
                pass
        # the same request with bytes is replayable, hence retried
        async with client.put("/x", data=b"chunk") as response:
            assert response.status == 200
    assert hits["/x"] == 2


# -- Retry-After ----------------------------------------------------------------------------------


async def test_retry_after_in_seconds_replaces_the_backoff() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(429, headers={"Retry-After": "7"})}) as (url, _),
        Client(url, retry=policy(sleep, backoff=0.5)) as client,
    ):
        assert await client.get_json("/x") == {"ok": True}
    assert sleep.delays == [7.0]


async def test_retry_after_as_an_http_date_on_the_injected_wall_clock() -> None:
    now = 1_700_000_000.0
    sleep = VirtualSleep()
    header = {"Retry-After": formatdate(now + 42, usegmt=True)}
    async with (
        serving_with_hits({"/x": answers(503, headers=header)}) as (url, _),
        Client(url, retry=policy(sleep, wall_clock=lambda: now)) as client,
    ):
        assert await client.get_json("/x") == {"ok": True}
    assert sleep.delays == [42.0]


async def test_retry_after_above_the_cap_gives_up_without_sleeping() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, headers={"Retry-After": "3600"})}) as (url, hits),
        Client(url, retry=policy(sleep, max_retry_after=120)) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            await client.get_json("/x")
    assert hits["/x"] == 1
    assert sleep.delays == []
    assert "Retry-After 3600s is above max_retry_after=120s" in str(info.value)
    assert len(info.value.attempts) == 1


@pytest.mark.parametrize(
    "hint",
    [
        "9" * 400,
        "99999999999999999999",
        "Mon, 01 Jan 10000 00:00:00 GMT",  # a date past what datetime holds: for ever
        "Mon, 01 Jan 99999999999 00:00:00 GMT",
    ],
)
async def test_an_infinite_or_absurd_retry_after_gives_up_instead_of_backing_off(
    hint: str,
) -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, 503, headers={"Retry-After": hint})}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            await client.get_json("/x")
    assert hits["/x"] == 1
    assert sleep.delays == []
    assert "above max_retry_after=120s" in str(info.value)
    assert len(info.value.attempts) == 1


def test_parse_retry_after_reads_a_number_too_large_for_a_float_as_infinity() -> None:
    assert parse_retry_after("9" * 400) == math.inf
    assert parse_retry_after("9" * 400 + ".5") == math.inf
    assert parse_retry_after("1e999") is None  # not the RFC's delay-seconds form
    for invalid in ("inf", "-1", "nan", "+5", "Mon, 32 Jan 2020 00:00:00 GMT"):
        assert parse_retry_after(invalid) is None, invalid
    assert parse_retry_after("Mon, 01 Jan 99999999999 00:00:00 GMT") == math.inf
    assert policy(VirtualSleep()).next_delay(1, 0.0, math.inf) == "max_hint"
    assert policy(VirtualSleep(), attempts=1).next_delay(1, 0.0, math.inf) == "attempts"


async def test_retry_after_ignored_when_turned_off() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, headers={"Retry-After": "7"})}) as (url, _),
        Client(url, retry=policy(sleep, backoff=0.25, retry_after=False)) as client,
    ):
        await client.get_json("/x")
    assert sleep.delays == [0.25]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-1", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),  # in the past
        ("Sun, 06 Nov 1994 08:49:37 GMT", 10.0),  # now = 10 s before it
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    date = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT
    now = date - 10 if expected == 10.0 else date + 5
    assert parse_retry_after(value, now=now) == expected


# -- release before sleeping: the aiohttp-retry hang ----------------------------------------------


async def test_limit_1_retry_with_a_large_error_body_does_not_hang() -> None:
    big = "e" * (4 * 1024 * 1024)
    sleep = VirtualSleep()
    checks: list[bytes] = []

    async def sleep_using_the_only_connection(delay: float) -> None:
        # The failed response must already be released: this needs the only connection.
        checks.append(await client.get_bytes("/ok", retry=None))
        await sleep(delay)

    rules = policy(sleep).replace(sleep=sleep_using_the_only_connection)
    async with serving_with_hits({"/x": answers(503, body=big), "/ok": answers()}) as (url, hits):
        client = Client(url, limit=1, limit_per_host=1, retry=rules)
        async with client, asyncio.timeout(5):
            assert await client.get_json("/x") == {"ok": True}
    assert hits["/x"] == 2
    assert checks == [b'{"ok": true}']


# -- overrides, cancellation, policies ------------------------------------------------------------


async def test_per_request_override() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/get": answers(503), "/post": answers(503)}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        with pytest.raises(HTTPStatusError):
            await client.get_json("/get", retry=None)
        async with client.post("/post", json={}, retry=policy(sleep, methods=None)) as response:
            assert response.status == 200
    assert hits == Counter({"/get": 1, "/post": 2})


async def test_no_retries_at_all_with_retry_none() -> None:
    async with (
        serving_with_hits({"/x": answers(503)}) as (url, hits),
        Client(url, retry=None) as client,
    ):
        with pytest.raises(HTTPStatusError) as info:
            await client.get_json("/x")
    assert not isinstance(info.value, RetryExhausted)
    assert hits["/x"] == 1


async def test_a_loopwise_retry_policy_gives_its_timing_to_the_http_rules() -> None:
    sleep = VirtualSleep()
    timing = loopwise.retry(attempts=2, backoff=0.125, jitter=False, sleep=sleep)
    async with (
        serving_with_hits({"/get": answers(503, 503), "/post": answers(503)}) as (url, hits),
        Client(url, retry=timing) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            await client.get_json("/get")
        with pytest.raises(HTTPStatusError):
            async with client.post("/post"):
                pass
    assert "attempts=2 used up" in str(info.value)
    assert hits == Counter({"/get": 2, "/post": 1})
    assert sleep.delays == [0.125]


async def test_max_time_stops_new_attempts() -> None:
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, 503, 503)}) as (url, hits),
        Client(url, retry=policy(sleep, attempts=10, backoff=4, max_time=5)) as client,
    ):
        with pytest.raises(RetryExhausted) as info:
            await client.get_json("/x")
    assert sleep.delays == [4.0]  # the next delay, 8 s, would end past max_time
    assert hits["/x"] == 2
    assert "max_time=5s" in info.value.reason


async def test_on_retry_sees_each_retried_attempt() -> None:
    seen: list[AttemptRecord] = []
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(502, 504)}) as (url, _),
        Client(url, retry=policy(sleep, backoff=1, on_retry=seen.append)) as client,
    ):
        await client.get_json("/x")
    assert [(a.number, a.status, a.delay) for a in seen] == [(1, 502, 1.0), (2, 504, 2.0)]


async def test_cancellation_is_never_retried() -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.sleep(5)
        return web.Response()

    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": slow}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        task = asyncio.create_task(client.get_bytes("/x"))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.statistics().attempts == 1
        assert client.statistics().in_flight == 0
    assert hits["/x"] == 1
    assert sleep.delays == []


async def test_timeout_around_the_call_is_not_retried() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response()

    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": slow}) as (url, hits),
        Client(url, retry=policy(sleep)) as client,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await client.get_bytes("/x")
    assert hits["/x"] == 1
    assert sleep.delays == []


# -- the policy object ----------------------------------------------------------------------------


def test_policy_validation_messages() -> None:
    with pytest.raises(TypeError, match="collection of method names"):
        HTTPRetry(methods="GET")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="100-599"):
        HTTPRetry(statuses=frozenset({999}))
    with pytest.raises(ValueError, match="attempts must be"):
        HTTPRetry(attempts=0)
    with pytest.raises(ValueError, match="max_hint"):
        HTTPRetry(max_retry_after=-1)
    with pytest.raises(TypeError, match="retry takes"):
        Client(retry="3")  # type: ignore[arg-type]


def test_policy_rules_and_repr() -> None:
    rules = HTTPRetry(methods=["get", "post"])
    assert rules.methods == frozenset({"GET", "POST"})
    assert rules.retries_status("POST", 503)
    assert not rules.retries_status("PUT", 503)
    assert not rules.retries_status("GET", 500)
    assert HTTPRetry(methods=None).allows_method("PATCH")
    assert rules.replace(attempts=5).attempts == 5
    assert repr(HTTPRetry()) == (
        "<HTTPRetry attempts=3 methods=DELETE,GET,HEAD,OPTIONS,PUT,TRACE "
        "statuses=429,502,503,504 backoff=0.5..30 full-jitter retry_after<=120>"
    )


async def test_min_backoff_of_a_general_policy_reaches_the_http_rules() -> None:
    """A jittered delay never falls below min_backoff, whether set on HTTPRetry or carried over
    from a loopwise.retry() policy."""
    general = loopwise.retry(attempts=3, backoff=1.0, min_backoff=0.4, random=lambda: 0.0)
    assert HTTPRetry.from_retry(general).min_backoff == 0.4
    sleep = VirtualSleep()
    async with (
        serving_with_hits({"/x": answers(503, 503)}) as (url, _),
        Client(url, retry=policy(sleep, jitter=True, min_backoff=0.4, random=lambda: 0.0)) as c,
    ):
        assert await c.get_json("/x") == {"ok": True}
    assert sleep.delays == [0.4, 0.4]


async def test_the_testing_switch_skips_the_clients_sleeps() -> None:
    sleep = VirtualSleep()
    loopwise.patterns.set_retry_testing(True)
    try:
        async with (
            serving_with_hits({"/x": answers(503, 503)}) as (url, hits),
            Client(url, retry=policy(sleep, backoff=0.5)) as client,
        ):
            assert await client.get_json("/x") == {"ok": True}
    finally:
        loopwise.patterns.set_retry_testing(False)
    assert hits["/x"] == 3
    assert sleep.delays == []
