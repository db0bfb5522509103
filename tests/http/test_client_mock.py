"""loopwise.http.MockTransport: a Client answered in-process, its production code path intact.

No test here opens a TCP port: the point is testing code that uses Client without a server.
"""

from __future__ import annotations

import asyncio
import gc
import glob
import os
import tempfile
import warnings
from typing import Any

import pytest
from aiohttp import web

from loopwise.http import (
    Client,
    HTTPRetry,
    HTTPStatusError,
    HTTPTimeout,
    MockTransport,
    PoolTimeout,
    RetryExhausted,
)

BASE = "https://api.example.com/v1/"


async def test_routes_answer_and_requests_are_recorded() -> None:
    mock = MockTransport()
    users = mock.add("GET", "https://api.example.com/v1/users/42", json={"id": 42})
    created = mock.add("POST", "/v1/users", status=201, json={"id": 43})
    async with Client(BASE, transport=mock) as client:
        assert await client.get_json("users/42", params={"fields": "all"}) == {"id": 42}
        async with client.post("users", json={"name": "Ada"}) as response:
            assert response.status == 201
            assert await response.json() == {"id": 43}
    assert [(r.method, str(r.url)) for r in mock.requests] == [
        ("GET", "https://api.example.com/v1/users/42?fields=all"),
        ("POST", "https://api.example.com/v1/users"),
    ]
    assert created.calls[0].json() == {"name": "Ada"}
    assert created.calls[0].headers["Content-Type"] == "application/json"
    assert len(users.calls) == 1
    assert mock.unmatched == []


async def test_a_sequence_of_answers_drives_the_real_retry_rules() -> None:
    mock = MockTransport()
    mock.add("GET", "/v1/flaky", status=503, headers={"Retry-After": "0"}, times=2)
    mock.add("GET", "/v1/flaky", json={"ok": True})
    mock.add("GET", "/v1/down", status=503, headers={"Retry-After": "3600"})
    async with Client(BASE, transport=mock, retry=HTTPRetry(attempts=3)) as client:
        assert await client.get_json("flaky") == {"ok": True}
        with pytest.raises(RetryExhausted, match="Retry-After 3600s"):
            await client.get_json("down")
        assert client.statistics().retries == 2


async def test_an_unmatched_request_is_a_501_naming_it_and_the_routes() -> None:
    mock = MockTransport()
    mock.add("GET", "/v1/users/42", json={})
    async with Client(BASE, transport=mock) as client:
        with pytest.raises(HTTPStatusError) as info:
            await client.get_json("users/7")
    assert info.value.status == 501
    assert "no route for GET https://api.example.com/v1/users/7" in info.value.body
    assert "GET /v1/users/42" in info.value.body
    assert [str(r.url) for r in mock.unmatched] == ["https://api.example.com/v1/users/7"]


async def test_scheme_host_and_query_of_an_absolute_route_must_match() -> None:
    mock = MockTransport()
    mock.add("GET", "https://a.example/x?v=1", text="a")
    mock.add("GET", "/x", text="any host")
    async with Client(transport=mock) as client:
        assert await client.get_text("https://a.example/x?v=1&w=2") == "a"
        assert await client.get_text("http://a.example/x?v=1") == "any host"
        assert await client.get_text("https://b.example/x?v=1") == "any host"
        assert await client.get_text("https://a.example/x?v=2") == "any host"


async def test_a_handler_gets_the_real_aiohttp_request_and_redirects_are_followed() -> None:
    async def whoami(request: web.Request) -> web.StreamResponse:
        return web.json_response({"agent": request.headers["User-Agent"], "q": request.query["q"]})

    mock = MockTransport()
    mock.add("GET", "/old", status=301, headers={"Location": "/new?q=1"})
    mock.add("GET", "/new", handler=whoami)
    async with Client(BASE, transport=mock, headers={"User-Agent": "test"}) as client:
        assert await client.get_json("/old") == {"agent": "test", "q": "1"}
    assert [r.url.path for r in mock.requests] == ["/old", "/new"]


async def test_the_client_keeps_its_pool_limits_on_the_mock() -> None:
    mock = MockTransport()
    mock.add("GET", "/big", body=b"x" * 1_000_000)
    mock.add("GET", "/ok", json=True)
    async with Client(BASE, transport=mock, limit_per_host=1, pool_timeout=0.2) as client:
        async with client.stream("/big"):
            with pytest.raises(PoolTimeout):
                await client.get_json("/ok", retry=None)
        assert await client.get_json("/ok") is True


async def test_one_transport_serves_several_clients_and_stops_after_the_last() -> None:
    mock = MockTransport()
    mock.add("*", "/ping", text="pong")
    async with Client(BASE, transport=mock) as a:
        async with Client(BASE, transport=mock) as b:
            texts = await asyncio.gather(a.get_text("/ping"), b.get_text("/ping"))
            assert texts == ["pong", "pong"]
        assert "running" in repr(mock)
        assert await a.get_text("/ping") == "pong"
    assert "idle" in repr(mock)
    async with (
        Client(BASE, transport=mock) as c,  # and starts again
        c.delete("/ping") as response,
    ):
        assert await response.text() == "pong"
    assert len(mock.requests) == 4


class HandlerBug(BaseException):
    """Not an Exception: what pytest.fail() or a KeyboardInterrupt look like to a handler."""


@pytest.mark.parametrize("error", [ValueError("handler bug"), HandlerBug("handler bug")])
async def test_an_exception_in_a_route_handler_is_raised_from_the_request_it_answers(
    error: BaseException,
) -> None:
    # A bug in a test's handler must fail that test where the request is sent: not vanish into
    # a 500, a "Server disconnected", retries, or "Task exception was never retrieved".
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))

    async def buggy(request: web.Request) -> web.StreamResponse:
        raise error

    mock = MockTransport()
    route = mock.add("GET", "/v1/buggy", handler=buggy)
    mock.add("GET", "/v1/missing", handler=lambda request: _raise(web.HTTPNotFound()))
    mock.add("GET", "/v1/ok", json=True)
    mock.add("GET", "/v1/not-an-answer", handler=lambda request: _return({"a": 1}))
    async with Client(BASE, transport=mock) as client:
        async with asyncio.timeout(5):
            with pytest.raises(TypeError, match=r"returned \{'a': 1\}, not an aiohttp"):
                await client.get_json("not-an-answer")
            with pytest.raises(type(error)) as info:
                await client.get_json("buggy")
            assert info.value is error
            assert len(route.calls) == 1  # not retried
            assert client.statistics().in_flight == 0
            assert await client.get_json("ok") is True
            # aiohttp's own way to answer an error status from a handler is not a bug
            with pytest.raises(HTTPStatusError) as status:
                await client.get_json("missing")
            assert status.value.status == 404
    await asyncio.sleep(0.05)
    gc.collect()
    assert loop_errors == []


async def test_a_handler_failing_after_its_sender_gave_up_is_logged_not_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def late(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        raise HandlerBug("failed after the client timed out")

    mock = MockTransport()
    mock.add("GET", "/v1/late", handler=late)
    async with Client(BASE, transport=mock, timeout=0.05, retry=None) as client:
        with pytest.raises(HTTPTimeout):
            await client.get_bytes("late")
        await asyncio.sleep(0.5)
    assert "failed after the client timed out" in caplog.text


async def _raise(exc: BaseException) -> web.StreamResponse:
    raise exc


async def _return(value: Any) -> Any:
    return value


def _open_fds() -> int | None:
    """How many files this process has open, where the system tells (Linux's /proc)."""
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None


def _mock_directories() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "loopwise-mock-*")))


@pytest.mark.parametrize("clients", [1, 3])
async def test_a_client_cancelled_at_any_step_leaves_no_socket_or_directory_behind(
    clients: int,
) -> None:
    # Cancel after k loop iterations, for every k up to a whole run: entering (the server
    # starts), requesting, and leaving (the server stops). The server must stop whole each time.
    # Several clients, a little apart, also cancel each other's waits for the start/stop lock.
    before = _mock_directories()
    fds_before = _open_fds()
    mock = MockTransport()
    mock.add("GET", "/v1/x", json={"a": 1})

    async def use_one(lag: int) -> Any:
        for _ in range(lag):
            await asyncio.sleep(0)
        async with Client(BASE, transport=mock) as client:
            return await client.get_json("x")

    async def use() -> None:
        async with asyncio.TaskGroup() as group:  # unlike gather, waits for every client
            for lag in range(clients):
                group.create_task(use_one(3 * lag))

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        async with asyncio.timeout(30):
            finished = 0
            for k in range(500):
                task = asyncio.ensure_future(use())
                for _ in range(k):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                    finished += 1
                except asyncio.CancelledError:
                    pass
                gc.collect()
                assert "idle" in repr(mock), k
                assert _mock_directories() == before, k
                assert _open_fds() == fds_before, k
                if finished >= 3:
                    break
            assert finished >= 3
    assert mock.requests  # the sweep reached the requests


def test_bad_routes_and_transports_are_refused_at_once() -> None:
    mock = MockTransport()
    with pytest.raises(ValueError, match=r"not text and json"):
        mock.add("GET", "/x", json={}, text="")
    with pytest.raises(ValueError, match="times"):
        mock.add("GET", "/x", times=0)
    with pytest.raises(ValueError, match="absolute or a path"):
        mock.add("GET", "x")
    with pytest.raises(ValueError, match="status"):
        mock.add("GET", "/x", status=42)
    with pytest.raises(TypeError, match="MockTransport"):
        Client(transport=object())  # type: ignore[arg-type]


def test_one_transport_serves_clients_in_one_event_loop_after_another() -> None:
    # A module-level MockTransport shared by tests that each run their own event loop.
    mock = MockTransport()
    mock.add("GET", "/v1/x", json=1)

    async def use_twice_at_once() -> list[Any]:
        async def use() -> Any:
            async with Client(BASE, transport=mock) as client:
                return await client.get_json("x")

        return await asyncio.gather(use(), use())

    assert asyncio.run(use_twice_at_once()) == [1, 1]
    assert asyncio.run(use_twice_at_once()) == [1, 1]
    assert len(mock.requests) == 4
