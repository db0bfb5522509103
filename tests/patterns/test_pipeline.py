"""Pipeline: backpressure, graceful close without loss or duplicates, cancel, failures."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import ClosedError, Pipeline, UsageError
from tests.patterns._virtual import now, virtual


def recorder(seen: list[object], delay: float = 0.0):  # type: ignore[no-untyped-def]
    async def record(item: object) -> object:
        await asyncio.sleep(delay)
        seen.append(item)
        return item

    return record


async def double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@virtual
async def test_run_processes_every_item_through_every_stage_once() -> None:
    seen: list[object] = []
    pipe = Pipeline(range(100)).stage(double, workers=5).stage(recorder(seen), workers=3)
    await pipe.run()
    assert sorted(seen) == [2 * i for i in range(100)]  # type: ignore[type-var]
    stats = pipe.statistics()
    assert (stats.state, stats.accepted, stats.completed, stats.dropped) == (
        "finished",
        100,
        100,
        0,
    )
    assert [s.processed for s in stats.stages] == [100, 100]


@virtual
async def test_async_source_and_output_iteration() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(20):
            await asyncio.sleep(0.001)
            yield i

    async with Pipeline(numbers(), output=True).stage(double, workers=4) as pipe:
        results = [r async for r in pipe]
    assert sorted(results) == [2 * i for i in range(20)]


@virtual
async def test_backpressure_bounds_items_in_the_pipeline() -> None:
    pulled = 0

    def source():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield i

    async def slow(x: int) -> int:
        await asyncio.sleep(1)
        return x

    pipe = Pipeline(source()).stage(slow, workers=2, buffer=3)
    task = asyncio.create_task(pipe.run())
    await asyncio.sleep(10.5)
    # 2 per second processed; at most workers + buffer + the feeder's one item ahead
    assert pulled <= 20 + 2 + 3 + 1 + 1
    await pipe.cancel()
    await task


@virtual
async def test_put_then_graceful_close_processes_everything_accepted() -> None:
    seen: list[object] = []
    async with Pipeline().stage(double, workers=3).stage(recorder(seen, 0.02)) as pipe:
        for i in range(50):
            await pipe.put(i)
    assert sorted(seen) == [2 * i for i in range(50)]  # type: ignore[type-var]
    with pytest.raises(ClosedError):
        await pipe.put(99)


@virtual
async def test_put_waiting_when_close_starts_is_still_processed() -> None:
    seen: list[object] = []
    pipe = Pipeline().stage(recorder(seen, 1.0), workers=1, buffer=1)
    async with pipe:
        await pipe.put(0)  # taken by the worker
        await pipe.put(1)  # fills the channel
        late_put = asyncio.create_task(pipe.put(2))  # waits for room
        await asyncio.sleep(0.1)
        closing = asyncio.create_task(pipe.close())
        await asyncio.sleep(0)
        with pytest.raises(ClosedError):
            await pipe.put(3)  # after close() started: refused
        await late_put
        await closing
    assert seen == [0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(
    stages=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=3),
    n_items=st.integers(0, 40),
    close_after=st.floats(0, 0.2),
    seed=st.integers(0, 2**16),
)
def test_graceful_close_never_loses_or_duplicates(
    stages: list[tuple[int, int]], n_items: int, close_after: float, seed: int
) -> None:
    rng = random.Random(seed)
    delays = [rng.choice([0, 0, 0.001, 0.01, 0.03]) for _ in range(200)]
    done: list[int] = []

    def make_stage(last: bool):  # type: ignore[no-untyped-def]
        async def stage(x: int) -> int:
            await asyncio.sleep(delays[(x * 7 + len(done)) % len(delays)])
            if last:
                done.append(x)
            return x

        return stage

    @virtual
    async def scenario() -> tuple[list[int], int]:
        pipe = Pipeline()
        for i, (workers, buffer) in enumerate(stages):
            pipe = pipe.stage(make_stage(i == len(stages) - 1), workers=workers, buffer=buffer)
        accepted: list[int] = []
        async with pipe:

            async def feed() -> None:
                for i in range(n_items):
                    try:
                        await pipe.put(i)
                    except ClosedError:
                        return
                    accepted.append(i)

            feeder = asyncio.create_task(feed())
            await asyncio.sleep(close_after)
            await pipe.close()
            await feeder
        assert pipe.statistics().accepted == len(accepted)
        return accepted, pipe.statistics().dropped

    accepted, dropped = scenario()
    assert Counter(done) == Counter(accepted)  # each accepted item exactly once, nothing else
    assert dropped == 0


@virtual
async def test_consumer_crash_surfaces_and_unblocks_everyone() -> None:
    processed: list[int] = []

    async def store(x: int) -> None:
        if x == 14:
            raise ValueError("disk full")
        await asyncio.sleep(0.01)
        processed.append(x)

    pipe = Pipeline().stage(double, workers=2, buffer=2).stage(store, workers=1, buffer=1)
    with pytest.raises(ValueError, match="disk full") as info:
        async with pipe:
            for i in range(100):
                await pipe.put(i)  # refused (ClosedError) once the consumer crashed
    assert "stage 'test_consumer_crash_surfaces_and_unblocks_everyone.<locals>.store'" in (
        "".join(info.value.__notes__)
    )
    assert isinstance(info.value.__context__, ClosedError)
    stats = pipe.statistics()
    assert stats.state == "failed" and all(s.workers == 0 for s in stats.stages)
    assert len(processed) == len(set(processed)) and 14 not in processed


@virtual
async def test_a_stage_failure_is_raised_by_run_put_close_and_iteration() -> None:
    async def explode(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 3:
            raise KeyError("bad item")
        return x

    pipe = Pipeline(range(1000)).stage(explode, workers=2, name="explode").stage(double)
    with pytest.raises(KeyError) as info:
        await pipe.run()
    assert "raised in pipeline stage 'explode'" in info.value.__notes__
    stats = pipe.statistics()
    assert stats.state == "failed" and stats.dropped == stats.accepted - stats.completed
    with pytest.raises(ClosedError) as closed:
        await pipe.put(1)
    assert closed.value.__cause__ is info.value
    with pytest.raises(KeyError):
        await pipe.close()

    out = Pipeline(range(10), output=True).stage(explode)
    with pytest.raises(KeyError):
        async with out:
            async for _ in out:
                pass


@virtual
async def test_crashing_last_stage_with_producer_blocked_on_put() -> None:
    async def crash(x: int) -> None:
        await asyncio.sleep(0.5)
        raise OSError("consumer crashed")

    pipe = Pipeline().stage(double, workers=1, buffer=1).stage(crash, workers=1, buffer=1)
    put_error: BaseException | None = None
    with pytest.raises(OSError, match="consumer crashed"):
        async with pipe:
            try:
                for i in range(100):
                    await pipe.put(i)  # blocks: the consumer is slow, then dies
            except ClosedError as exc:
                put_error = exc
            with pytest.raises(OSError, match="consumer crashed"):
                await pipe.wait()
        # leaving the block raises the failure again
    assert isinstance(put_error, ClosedError)
    assert isinstance(put_error.__cause__, OSError)
    assert now() < 1


@virtual
async def test_source_failure_is_surfaced() -> None:
    def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        await Pipeline(broken()).stage(double).run()


@virtual
async def test_cancel_stops_at_once_and_counts_dropped() -> None:
    seen: list[object] = []
    pipe = Pipeline(range(1000)).stage(double, workers=4).stage(recorder(seen, 5.0), workers=2)
    async with pipe:
        await asyncio.sleep(1)
        await pipe.cancel()
        stats = pipe.statistics()
    assert stats.state == "cancelled"
    assert stats.completed == 0 and stats.dropped == stats.accepted > 0
    assert all(s.workers == 0 for s in stats.stages)
    assert now() == pytest.approx(1)


@virtual
async def test_exception_in_the_block_cancels() -> None:
    pipe = Pipeline(range(1000)).stage(double, workers=4)
    with pytest.raises(ZeroDivisionError):
        async with pipe:
            await asyncio.sleep(0.05)
            1 / 0  # noqa: B018
    assert pipe.statistics().state == "cancelled"


@virtual
async def test_close_cancels_an_async_source_waiting_for_its_next_item() -> None:
    got: list[int] = []
    source_cancelled = asyncio.Event()

    async def feed() -> AsyncIterator[int]:
        yield 1
        try:
            await asyncio.sleep(3600)  # nothing more for an hour
        except asyncio.CancelledError:
            source_cancelled.set()
            raise
        yield 2  # pragma: no cover

    async with Pipeline(feed()).stage(recorder(got)) as pipe:  # type: ignore[arg-type]
        await asyncio.sleep(1)
    assert got == [1] and source_cancelled.is_set()
    assert pipe.statistics().state == "finished"
    assert now() == pytest.approx(1)


@virtual
async def test_output_pipeline_left_early_is_cancelled() -> None:
    pipe = Pipeline(range(1000), output=True).stage(double, workers=2)
    async with pipe:
        async for r in pipe:
            assert r == 0
            break
    assert pipe.statistics().state == "cancelled"


@virtual
async def test_usage_errors_and_repr() -> None:
    with pytest.raises(UsageError):
        await Pipeline(range(3)).run()  # no stage
    pipe = Pipeline().stage(double)
    with pytest.raises(UsageError):
        await pipe.put(1)  # not started
    with pytest.raises(UsageError):
        await pipe.run()  # no source
    with pytest.raises(UsageError):
        pipe.__aiter__()  # output=False
    async with pipe:
        with pytest.raises(UsageError):
            pipe.stage(double)
        assert "running" in repr(pipe) and "double[0/1 q=0]" in repr(pipe)
    with pytest.raises(ValueError):
        Pipeline().stage(double, workers=0)
    with pytest.raises(TypeError):
        Pipeline(42)  # type: ignore[arg-type]


@virtual
async def test_a_timeout_around_close_cancels_the_pipeline() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(10)
        return x

    pipe = Pipeline(range(1000)).stage(slow, workers=1)
    async with pipe:
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await pipe.close()  # the items already accepted need 10 s or more
        assert pipe.statistics().state == "cancelled"
    assert now() == pytest.approx(1.05)


async def read_all(pipe: Pipeline[int], into: list[int]) -> None:
    async for r in pipe:
        await asyncio.sleep(0.005)  # a consumer that does some work per result
        into.append(r)


@virtual
async def test_output_pipeline_left_normally_delivers_every_accepted_item() -> None:
    got: list[int] = []
    async with Pipeline(output=True).stage(double, workers=2) as pipe:
        reader = asyncio.create_task(read_all(pipe, got))
        for i in range(20):
            await pipe.put(i)
    await reader
    assert sorted(got) == [2 * i for i in range(20)]
    assert pipe.statistics().state == "finished"
    assert pipe.statistics().accepted == pipe.statistics().completed == 20


@virtual
async def test_output_pipeline_left_normally_keeps_unread_results_that_fit() -> None:
    async with Pipeline(output=True, buffer=10).stage(double, workers=2) as pipe:
        for i in range(4):
            await pipe.put(i)
    assert sorted([r async for r in pipe]) == [0, 2, 4, 6]
    assert pipe.statistics().state == "finished"


@virtual
async def test_close_of_an_output_pipeline_nobody_reads_raises_instead_of_hanging() -> None:
    pipe = Pipeline(output=True, buffer=2).stage(double, workers=2)
    async with asyncio.timeout(10):
        with pytest.raises(UsageError, match="nobody reads"):
            async with pipe:
                for i in range(4):
                    await pipe.put(i)
                await pipe.close()
    stats = pipe.statistics()
    assert stats.state == "failed" and stats.dropped == 4 - 2  # two results were queued
    with pytest.raises(UsageError):
        await pipe.close()  # the failure stays


@virtual
async def test_close_of_an_output_pipeline_waits_for_a_reader_in_another_task() -> None:
    got: list[int] = []
    async with Pipeline(output=True, buffer=1).stage(double, workers=3) as pipe:
        reader = asyncio.create_task(read_all(pipe, got))
        for i in range(30):
            await pipe.put(i)
        await pipe.close()
    await reader
    assert sorted(got) == [2 * i for i in range(30)]
