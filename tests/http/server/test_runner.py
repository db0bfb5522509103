"""The server's run() and loopwise.run() build their loop in one place: the same loop choice,
the same errors for the same mistakes, and both are the home loop of run_sync()."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
import warnings

import aiohttp
import pytest
from aiohttp import web

import loopwise
from loopwise import ConfigError, UsageError
from loopwise.http.server import run as serve_app

from .conftest import scenario_server

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
LOOPS = [
    "asyncio",
    pytest.param("uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason="no uvloop")),
]


@pytest.mark.parametrize("loop", LOOPS)
async def test_run_sync_from_a_worker_thread_runs_on_the_servers_loop(loop: str) -> None:
    async with (
        scenario_server("bridge", f"loop={loop}", "shutdown_timeout=1") as server,
        aiohttp.ClientSession() as session,
        asyncio.timeout(30),
        session.get(f"{server.url}/bridge") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"same_loop": True}


async def idle() -> None:
    pass


def both_runners(uvloop: object) -> list[BaseException]:
    """What loopwise.run() and the server's run() raise for the same ``uvloop`` argument."""
    raised: list[BaseException] = []
    for start in (
        lambda: loopwise.run(idle(), uvloop=uvloop),  # type: ignore[arg-type]
        lambda: serve_app(web.Application(), "127.0.0.1", 0, uvloop=uvloop),  # type: ignore[arg-type]
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a coroutine left unawaited would warn
            with pytest.raises(Exception) as caught:
                start()
            gc.collect()
        raised.append(caught.value)
    return raised


def test_uvloop_required_but_missing_is_the_same_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    first, second = both_runners(True)
    assert isinstance(first, ConfigError)
    assert type(second) is type(first)
    assert str(second) == str(first)
    assert "pip install 'loopwise[uvloop]'" in str(first)


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_a_uvloop_argument_that_is_not_a_bool_or_none_is_the_same_type_error(bad: object) -> None:
    first, second = both_runners(bad)
    assert isinstance(first, TypeError)
    assert type(second) is type(first)
    assert "uvloop=" in str(first) and "uvloop=" in str(second)


async def test_both_runners_called_inside_a_running_loop_raise_usage_error() -> None:
    running = asyncio.get_running_loop()
    coro = idle()
    with pytest.raises(UsageError, match="inside a running event loop"):
        loopwise.run(coro)
    with pytest.raises(UsageError, match="inside a running event loop") as caught:
        serve_app(web.Application(), "127.0.0.1", 0)
    assert "await serve(" in str(caught.value)
    assert asyncio.get_running_loop() is running
    assert not running.is_closed()
    await asyncio.sleep(0)  # the test's own loop still works
