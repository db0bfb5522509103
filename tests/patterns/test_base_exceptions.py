"""A BaseException that is not an Exception, or a CancelledError raised by user code that was
not cancelled, in every pattern: it reaches the caller, nothing hangs, nothing vanishes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import Pipeline, Supervisor, amap, retry
from loopwise.patterns import StrayCancellationError
from tests.patterns._virtual import virtual


class Boom(BaseException):
    """What a test framework's failure or a custom control-flow exception looks like."""


def record_loop_errors() -> list[dict[str, Any]]:
    """Collect what the loop's exception handler receives ("never retrieved", ...)."""
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    return seen


async def stray_cancel() -> None:
    """Await a future that someone else cancelled: CancelledError without being cancelled."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.cancel()
    await fut


# -- amap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("errors", ["raise", "collect"])
@virtual
async def test_amap_base_exception_from_fn_reaches_the_consumer(ordered: bool, errors: str) -> None:
    seen = record_loop_errors()

    async def fn(x: int) -> int:
        await asyncio.sleep(0.01 * (x % 3))
        if x == 4:
            raise Boom("item 4")
        return x

    got: list[Any] = []
    with pytest.raises(Boom, match="item 4"):
        async with asyncio.timeout(10):
            async for r in amap(fn, range(10), concurrency=3, ordered=ordered, errors=errors):  # type: ignore[call-overload]
                got.append(r)
    assert 4 not in got
    await asyncio.sleep(0)
    assert seen == []


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@virtual
async def test_amap_keyboard_interrupt_and_system_exit_reach_the_consumer(
    exc_type: type[BaseException],
) -> None:
    async def fn(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 2:
            raise exc_type
        return x

    with pytest.raises(exc_type):
        async with asyncio.timeout(10):
            async for _ in amap(fn, range(10), concurrency=3):
                pass


@virtual
async def test_amap_base_exception_from_the_input_reaches_the_consumer() -> None:
    seen = record_loop_errors()

    async def source() -> AsyncIterator[int]:
        yield 1
        raise Boom("input")

    async def fn(x: int) -> int:
        return x

    with pytest.raises(Boom, match="input"):
        async with asyncio.timeout(10):
            async for _ in amap(fn, source(), concurrency=2):
                pass
    await asyncio.sleep(0)
    assert seen == []


@pytest.mark.parametrize("ordered", [True, False])
@virtual
async def test_amap_stray_cancellation_is_an_error_of_the_item(ordered: bool) -> None:
    async def fn(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 3:
            await stray_cancel()
        return x

    with pytest.raises(StrayCancellationError) as info:
        async with asyncio.timeout(10):
            async for _ in amap(fn, range(10), concurrency=2, ordered=ordered):
                pass
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    failures = [
        r
        async for r in amap(fn, range(10), concurrency=2, ordered=ordered, errors="collect")
        if not isinstance(r, int)
    ]
    assert [f.index for f in failures] == [3]
    assert isinstance(failures[0].exception, StrayCancellationError)


# -- Pipeline -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
@virtual
async def test_pipeline_stray_cancellation_in_a_stage_fails_run(workers: int) -> None:
    done: list[int] = []

    async def stage(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 3:
            await stray_cancel()
        return x

    async def sink(x: int) -> None:
        done.append(x)

    pipe = Pipeline(range(10)).stage(stage, workers=workers).stage(sink)
    with pytest.raises(StrayCancellationError, match="stage"):
        async with asyncio.timeout(10):
            await pipe.run()
    assert 3 not in done
    assert pipe.statistics().state == "failed"


@pytest.mark.parametrize("workers", [1, 2])
@virtual
async def test_pipeline_base_exception_in_a_stage_fails_run(workers: int) -> None:
    seen = record_loop_errors()

    async def stage(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 3:
            raise Boom("stage")
        return x

    with pytest.raises(Boom, match="stage"):
        async with asyncio.timeout(10):
            await Pipeline(range(10)).stage(stage, workers=workers).run()
    await asyncio.sleep(0)
    assert seen == []


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@virtual
async def test_pipeline_keyboard_interrupt_and_system_exit_reach_run(
    exc_type: type[BaseException],
) -> None:
    async def stage(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 3:
            raise exc_type
        return x

    pipe = Pipeline(range(10)).stage(stage, workers=2)
    with pytest.raises(exc_type):
        async with asyncio.timeout(10):
            await pipe.run()
    assert pipe.statistics().state == "failed"


@virtual
async def test_pipeline_stray_cancellation_in_an_async_source_fails_run() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        await stray_cancel()
        yield 2

    async def stage(x: int) -> None:
        return None

    with pytest.raises(StrayCancellationError, match="source"):
        async with asyncio.timeout(10):
            await Pipeline(source()).stage(stage).run()


@virtual
async def test_pipeline_base_exception_in_a_stage_reaches_output_consumer() -> None:
    async def stage(x: int) -> int:
        await asyncio.sleep(0.01)
        if x == 2:
            raise Boom("stage")
        return x

    with pytest.raises(Boom):
        async with asyncio.timeout(10):
            async with Pipeline(range(10), output=True).stage(stage, workers=2) as pipe:
                async for _ in pipe:
                    pass


# -- Supervisor ---------------------------------------------------------------------------------


@virtual
async def test_supervisor_restarts_a_service_that_raised_a_stray_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def service() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        await stray_cancel()

    caplog.set_level(logging.ERROR, logger="loopwise.patterns")
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(100):
            async with Supervisor(name="app") as sup:
                sup.supervise(service, restart=retry(attempts=3, backoff=0.01))
                await asyncio.sleep(50)
    assert runs == 3
    (error,) = info.value.exceptions
    assert isinstance(error, StrayCancellationError)
    assert len([r for r in caplog.records if "service" in r.getMessage()]) == 2


@virtual
async def test_supervisor_service_with_restart_false_raising_stray_cancellation_fails_scope() -> (
    None
):
    async def service() -> None:
        await stray_cancel()

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(100):
            async with Supervisor() as sup:
                sup.supervise(service, restart=False)
                await asyncio.sleep(50)
    assert info.group_contains(StrayCancellationError)


@virtual
async def test_supervisor_service_base_exception_reaches_the_scope() -> None:
    async def service() -> None:
        await asyncio.sleep(0.01)
        raise Boom("service")

    with pytest.raises(BaseExceptionGroup) as info:
        async with asyncio.timeout(100):
            async with Supervisor() as sup:
                sup.supervise(service)
                await asyncio.sleep(50)
    assert info.group_contains(Boom)


@virtual
async def test_retry_never_retries_a_base_exception_or_a_stray_cancellation() -> None:
    calls = 0

    @retry(attempts=5, backoff=0)
    async def boom() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    with pytest.raises(Boom):
        await boom()
    assert calls == 1

    @retry(attempts=5, backoff=0)
    async def stray() -> None:
        nonlocal calls
        calls += 1
        await stray_cancel()

    calls = 0
    with pytest.raises(asyncio.CancelledError):
        await stray()
    assert calls == 1


@virtual
async def test_amap_base_exception_after_the_consumer_left_is_raised_by_aclose() -> None:
    async def fn(x: int) -> int:
        if x == 1:
            await asyncio.sleep(0.01)
            raise Boom("late")
        return x

    results = amap(fn, range(3), concurrency=2, ordered=False)
    assert await anext(results) == 0
    await asyncio.sleep(0.1)  # item 1 fails while nobody iterates
    with pytest.raises(Boom, match="late"):
        await results.aclose()
    await results.aclose()  # raised once


@virtual
async def test_supervisor_task_raising_a_stray_cancellation_is_logged_and_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def job() -> None:
        await asyncio.sleep(0.01)
        await stray_cancel()

    caplog.set_level(logging.ERROR, logger="loopwise.patterns")
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(10):
            async with Supervisor(name="app") as sup:
                sup.create_task(job(), name="job")
                sup.create_task(job(), name="bg", background=True)
                await asyncio.sleep(1)
    assert [str(e).split(" raised")[0] for e in info.value.exceptions] == [
        "task 'job' of app",
        "task 'bg' of app",
    ]
    assert all(isinstance(e.__cause__, asyncio.CancelledError) for e in info.value.exceptions)
    assert len([r for r in caplog.records if "without being cancelled" in r.getMessage()]) == 2


@virtual
async def test_supervisor_tasks_cancelled_for_real_are_not_strays() -> None:
    async with Supervisor() as sup:
        task = sup.create_task(asyncio.sleep(10))
        sup.create_task(asyncio.sleep(10), background=True)
        await asyncio.sleep(0)
        task.cancel()
    assert task.cancelled()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    where=st.integers(0, 29),
    concurrency=st.integers(1, 6),
    ordered=st.booleans(),
    collect=st.booleans(),
    stray=st.booleans(),
    delays=st.lists(st.sampled_from([0, 0.001, 0.01]), min_size=30, max_size=30),
)
def test_property_amap_never_hangs_or_loses_a_base_exception(
    n: int,
    where: int,
    concurrency: int,
    ordered: bool,
    collect: bool,
    stray: bool,
    delays: list[float],
) -> None:
    @virtual
    async def scenario() -> None:
        seen = record_loop_errors()

        async def fn(x: int) -> int:
            if delays[x]:
                await asyncio.sleep(delays[x])
            if x == where:
                if stray:
                    await stray_cancel()
                raise Boom(x)
            return x

        got: list[Any] = []
        errors = "collect" if collect else "raise"
        try:
            async with asyncio.timeout(60):
                async for r in amap(
                    fn,
                    range(n),
                    concurrency=concurrency,
                    ordered=ordered,
                    errors=errors,  # type: ignore[arg-type]
                ):
                    got.append(r)
        except (Boom, StrayCancellationError) as exc:
            assert where < n
            assert isinstance(exc, StrayCancellationError if stray else Boom)
        else:
            failed = [r for r in got if not isinstance(r, int)]
            if where < n:  # only a collected stray cancellation can end without raising
                assert stray and collect and [f.index for f in failed] == [where]
            assert len(got) == n
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0)
        assert seen == []

    scenario()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 20),
    where=st.integers(0, 19),
    stage_at=st.integers(0, 1),
    workers=st.integers(1, 3),
    stray=st.booleans(),
    output=st.booleans(),
)
def test_property_pipeline_never_hangs_or_loses_a_base_exception(
    n: int, where: int, stage_at: int, workers: int, stray: bool, output: bool
) -> None:
    @virtual
    async def scenario() -> None:
        seen = record_loop_errors()

        def make(stage: int):  # type: ignore[no-untyped-def]
            async def fn(x: int) -> int:
                await asyncio.sleep(0.001 * (x % 3))
                if stage == stage_at and x == where:
                    if stray:
                        await stray_cancel()
                    raise Boom(x)
                return x

            return fn

        pipe = Pipeline(range(n), output=output).stage(make(0), workers=workers)
        pipe = pipe.stage(make(1), workers=workers)
        try:
            async with asyncio.timeout(60):
                await pipe.run()
        except (Boom, StrayCancellationError) as exc:
            assert where < n
            assert isinstance(exc, StrayCancellationError if stray else Boom)
            assert pipe.statistics().state == "failed"
        else:
            assert where >= n
            assert pipe.statistics().completed == n
        await asyncio.sleep(0)
        assert seen == []

    scenario()
