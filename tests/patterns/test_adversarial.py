"""Adversarial tests of the patterns' documented guarantees (a second review of issue 18).

Each test attacks one promise from the docs: a quiet input on amap's error path, a reader
task that has not started yet when an output Pipeline closes, cancellation at every checkpoint
of the limiters' waiters (the statistics must balance afterwards), the stray-cancellation rule
next to ``asyncio.timeout()``, and sync retry from a worker thread of a running loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loopwise import CapacityLimiter, Pipeline, amap
from loopwise.patterns import StrayCancellationError
from tests.patterns._virtual import virtual


class Boom(Exception):
    pass


class Fatal(BaseException):
    pass


async def quiet_after(n: int, stop: asyncio.Event) -> AsyncIterator[int]:
    """Yields n items, then waits (a subscription with no new message) until ``stop``."""
    for i in range(n):
        yield i
    await stop.wait()
    yield n


# -- amap: the error path does not wait for the next item of a quiet input ----------------------


@pytest.mark.parametrize("error", [Boom, Fatal], ids=["Exception", "BaseException"])
async def test_amap_error_is_raised_while_the_input_waits_for_its_next_item(
    error: type[BaseException],
) -> None:
    stop = asyncio.Event()

    async def fn(x: int) -> int:
        await asyncio.sleep(0.01)  # meanwhile another worker waits in the input's __anext__
        raise error(x)

    source = quiet_after(1, stop)
    try:
        async with asyncio.timeout(2):  # the input stays quiet far longer than that
            with pytest.raises(error):
                async for _ in amap(fn, source, concurrency=2):
                    pass
    finally:
        stop.set()
        await source.aclose()


async def test_amap_exception_leaving_async_with_does_not_wait_for_a_quiet_input() -> None:
    stop = asyncio.Event()

    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    source = quiet_after(1, stop)
    try:
        async with asyncio.timeout(2):
            with pytest.raises(Boom):
                async with amap(fn, source, concurrency=2) as results:
                    async for _ in results:
                        raise Boom  # the other worker waits in the input's __anext__
    finally:
        stop.set()
        await source.aclose()


# -- Pipeline(output=True): a close must not call a reader that has not started yet "nobody" -----


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


@virtual
async def test_output_pipeline_closing_right_after_starting_a_reader_task_is_not_a_stall() -> None:
    got: list[int] = []

    async def read_all(pipe: Pipeline[int]) -> None:
        async for x in pipe:
            got.append(x)

    async with Pipeline(range(10), output=True, buffer=2).stage(double, workers=2) as pipe:
        await asyncio.sleep(0.1)  # the output buffer fills, a put waits
        reader = asyncio.create_task(read_all(pipe))  # starts at the next loop iteration
    await reader
    stats = pipe.statistics()
    assert stats.state == "finished" and stats.dropped == 0
    # the close stopped taking from the source; every item accepted until then is delivered
    assert sorted(got) == [2 * i for i in range(stats.accepted)] and stats.accepted >= 6
