"""Adversarial tests of Pipeline's documented guarantees: the output close tells a late reader
from nobody, a worker cancelled from outside fails the pipeline, a cancellation at any moment
accounts for every item, close() from its own stage is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loopwise import (
    Pipeline,
    UsageError,
)
from loopwise.patterns import StrayCancellationError
from tests.patterns._adversarial import (
    cancel_at,
    cancels_its_own_task,
    double,
    sweep,
    times_out_then_strays,
)
from tests.patterns._virtual import virtual


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


def test_pipeline_cancelled_at_every_iteration_accounts_for_every_item() -> None:
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.01 * (x % 3))
        return 2 * x

    async def scenario(k: int | None, victim: int) -> None:
        got: list[int] = []
        pipe = Pipeline(range(8), output=True, buffer=2)
        pipe.stage(slow_double, workers=2).stage(slow_double, workers=1)

        async def consume() -> None:
            async with pipe:
                async for x in pipe:
                    got.append(x)

        task = asyncio.create_task(consume())
        cancel_at(k, lambda: task)
        await asyncio.gather(task, return_exceptions=True)
        stats = pipe.statistics()
        assert stats.state in ("new", "finished", "cancelled"), stats  # new: never entered
        assert all(s.workers == 0 and s.busy == 0 for s in stats.stages)
        if stats.state == "finished":
            assert sorted(got) == [4 * i for i in range(8)] and stats.dropped == 0
        else:
            assert stats.accepted == stats.completed + stats.dropped, stats
            assert len(got) <= stats.completed

    assert sweep(scenario, victims=1) > 10


@pytest.mark.parametrize("workers", [1, 2])
@virtual
async def test_pipeline_worker_cancelled_from_outside_fails_the_pipeline(workers: int) -> None:
    pipe = Pipeline(range(10)).stage(cancels_its_own_task, workers=workers)
    async with asyncio.timeout(5):
        with pytest.raises(StrayCancellationError, match="something other than the pipeline"):
            await pipe.run()
    assert pipe.statistics().state == "failed"


@virtual
async def test_pipeline_feeder_cancelled_from_outside_fails_the_pipeline() -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(10):
            if i == 3:
                this = asyncio.current_task()  # the pipeline's feeder task
                assert this is not None
                this.cancel()
            await asyncio.sleep(0.001)
            yield i

    async def ident(x: int) -> int:
        return x

    pipe = Pipeline(source()).stage(ident)
    async with asyncio.timeout(5):
        with pytest.raises(StrayCancellationError, match="something other than the pipeline"):
            await pipe.run()


@pytest.mark.parametrize("kind", ["timeout", "wait_for"])
@virtual
async def test_pipeline_a_timeout_in_a_stage_is_raised_as_timeout_error(kind: str) -> None:
    pipe = Pipeline(range(4)).stage(times_out_then_strays(kind))
    with pytest.raises(TimeoutError):
        await pipe.run()


@virtual
async def test_output_pipeline_reader_that_breaks_after_the_exit_began_cancels_it() -> None:
    # A break before the block's exit cancels the pipeline (documented); the same break a
    # moment later, while the exit's close waits, must not turn into "nobody reads" UsageError.
    exiting = False

    async def reader(pipe: Pipeline[int]) -> None:
        async for _ in pipe:
            await asyncio.sleep(0.01)
            if exiting:
                break  # with results still to come: the pipeline holds more than it reads

    async with Pipeline(range(100), output=True, buffer=1).stage(double) as pipe:
        task = asyncio.create_task(reader(pipe))
        await asyncio.sleep(0.05)
        exiting = True
    await task
    stats = pipe.statistics()
    assert stats.state == "cancelled" and stats.accepted == stats.completed + stats.dropped


@pytest.mark.parametrize("method", ["close", "wait"])
@virtual
async def test_pipeline_close_or_wait_from_its_own_stage_is_refused_not_a_deadlock(
    method: str,
) -> None:
    async def stage(x: int) -> int:
        if x == 2:
            await getattr(pipe, method)()  # would wait for this very worker
        return x

    pipe = Pipeline(range(5)).stage(stage)
    async with asyncio.timeout(5):
        with pytest.raises(UsageError, match="from one of its own stages"):
            await pipe.run()
