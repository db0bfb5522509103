"""loopwise.run: asyncio.run with uvloop when installed, and a clear error inside a loop."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
import warnings

import pytest

import loopwise
from loopwise import ConfigError, UsageError

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_returns_the_result_and_closes_the_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loops.append(asyncio.get_running_loop())
        return 42

    assert loopwise.run(main(), uvloop=False) == 42
    assert loops[0].is_closed()


def test_uvloop_false_uses_asyncio() -> None:
    assert loopwise.run(loop_module(), uvloop=False).startswith("asyncio")


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is an optional extra, not installed here")
def test_uvloop_none_or_true_uses_uvloop_when_installed() -> None:
    assert loopwise.run(loop_module()).startswith("uvloop")
    assert loopwise.run(loop_module(), uvloop=True).startswith("uvloop")


def block_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail


def test_uvloop_true_without_uvloop_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    block_uvloop(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"pip install 'loopwise\[uvloop\]'"):
            loopwise.run(loop_module(), uvloop=True)
        gc.collect()  # the coroutine was closed: no "never awaited" warning


def test_uvloop_none_without_uvloop_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    block_uvloop(monkeypatch)
    assert loopwise.run(loop_module()).startswith("asyncio")


async def test_inside_a_running_loop_raises_usage_error_and_closes_the_coroutine() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UsageError, match="await"):
            loopwise.run(loop_module())
        gc.collect()


def test_not_a_coroutine_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="call the async function"):
        loopwise.run(loop_module)  # type: ignore[arg-type]


# The task is left pending on purpose: loopwise.run must cancel it at exit, which is what is tested.
@pytest.mark.loopwise(allow=["task-leak"])
def test_pending_tasks_are_cancelled_at_exit() -> None:
    cancelled: list[bool] = []

    async def background() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        asyncio.get_running_loop().create_task(background())
        await asyncio.sleep(0)

    loopwise.run(main(), uvloop=False)
    assert cancelled == [True]
