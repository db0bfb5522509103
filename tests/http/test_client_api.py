"""loopwise.http.Client's request methods: typed keyword arguments and USE_CLIENT_DEFAULT.

A real aiohttp server on 127.0.0.1:0 answers; nothing of the client is mocked.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import typing

import pytest
from aiohttp import web

from loopwise.http import (
    USE_CLIENT_DEFAULT,
    Client,
    GiveUpReason,
    HTTPRetry,
    HTTPStatusError,
    HTTPTimeout,
    RetryOption,
    UseClientDefault,
)
from tests.http._serving import serving
from tests.http.test_client import echo

METHODS = (
    "request",
    "get",
    "head",
    "options",
    "delete",
    "post",
    "put",
    "patch",
    "get_bytes",
    "get_text",
    "get_json",
    "stream",
    "download",
)


@pytest.mark.parametrize("name", METHODS)
def test_every_request_method_has_typed_keywords_and_no_kwargs_catch_all(name: str) -> None:
    parameters = inspect.signature(getattr(Client, name)).parameters
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert parameters["retry"].default is USE_CLIENT_DEFAULT
    assert parameters["timeout"].default is USE_CLIENT_DEFAULT
    assert "aiohttp_options" in parameters
    if name != "download":
        assert parameters["raise_for_status"].default is USE_CLIENT_DEFAULT


def test_use_client_default_is_one_named_marker() -> None:
    assert repr(USE_CLIENT_DEFAULT) == "USE_CLIENT_DEFAULT"
    assert isinstance(USE_CLIENT_DEFAULT, UseClientDefault)
    assert pickle.loads(pickle.dumps(USE_CLIENT_DEFAULT)) is USE_CLIENT_DEFAULT


def test_give_up_reason_is_public() -> None:
    assert set(typing.get_args(GiveUpReason)) == {"attempts", "max_time", "max_hint"}
    assert HTTPRetry(attempts=1).next_delay(1, 0.0, None) in typing.get_args(GiveUpReason)


async def test_a_wrapper_forwards_the_marker_and_gets_the_clients_settings() -> None:
    calls = 0

    async def busy_once(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=503) if calls == 1 else web.json_response({"ok": True})

    async def fetch(
        client: Client,
        url: str,
        *,
        retry: RetryOption | UseClientDefault = USE_CLIENT_DEFAULT,
        raise_for_status: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> object:
        return await client.get_json(url, retry=retry, raise_for_status=raise_for_status)

    policy = HTTPRetry(backoff=0.001, jitter=False)
    async with serving({"/busy": busy_once}) as url, Client(url, retry=policy) as client:
        assert await fetch(client, "/busy") == {"ok": True}  # the client's retry policy
        assert calls == 2
        calls = 0
        with pytest.raises(HTTPStatusError):
            await fetch(client, "/busy", retry=None)  # this request: no retries


async def test_typed_options_reach_the_server() -> None:
    async with serving({"/echo": echo}) as url, Client(url) as client:
        got = await client.get_json("/echo", params={"q": "1"}, headers={"X-A": "b"})
        assert got["query"] == {"q": "1"}
        assert got["headers"]["X-A"] == "b"
        async with client.post("/echo", json={"n": 1}, cookies={"c": "d"}) as response:
            body = await response.json()
        assert body["body"] == '{"n": 1}'
        assert body["headers"]["Cookie"] == "c=d"
        async with client.put("/echo", data=b"raw", aiohttp_options={"ssl": False}) as response:
            assert (await response.json())["body"] == "raw"


async def test_a_requests_timeout_none_means_no_timeout_and_the_marker_the_clients() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return web.json_response({"ok": True})

    async with serving({"/slow": slow}) as url, Client(url, timeout=0.1, retry=None) as client:
        with pytest.raises(HTTPTimeout):
            await client.get_json("/slow", timeout=USE_CLIENT_DEFAULT)
        assert await client.get_json("/slow", timeout=None) == {"ok": True}
        assert await client.get_json("/slow", timeout=2) == {"ok": True}


def test_bad_request_options_are_refused_at_once() -> None:
    client = Client()
    with pytest.raises(ValueError, match="aiohttp_options may not set json"):
        client.get("http://x/", aiohttp_options={"json": {}})
    with pytest.raises(TypeError, match="raise_for_status must be True, False or leave it out"):
        client.get("http://x/", raise_for_status=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.get("http://x/", bogus=1)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", [m for m in METHODS if m != "download"])
async def test_raise_for_status_none_is_refused_by_every_method_before_anything_is_sent(
    name: str,
) -> None:
    # None is not "the client's default": taken as False it would hand a 404's body back as data.
    hits = 0

    async def missing(request: web.Request) -> web.StreamResponse:
        nonlocal hits
        hits += 1
        return web.json_response({"error": "no such user"}, status=404)

    async with serving({"/x": missing}) as url, Client(url) as client:
        args: tuple[str, ...] = ("GET", "/x") if name == "request" else ("/x",)
        with pytest.raises(TypeError, match="raise_for_status=None") as info:
            result = getattr(client, name)(*args, raise_for_status=None)
            if inspect.iscoroutine(result):
                await result
            else:
                async with result:
                    pass
        assert "USE_CLIENT_DEFAULT" in str(info.value)
        assert client.statistics().requests == 0
    assert hits == 0
