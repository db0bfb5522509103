"""Adversarial tests of amap's documented guarantees: errors and cancellations never wait for a
quiet input, a worker cancelled from outside is an error, BaseExceptions are never lost,
concurrency holds under an eager task factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from loopwise import (
    Failure,
    amap,
)
from loopwise.patterns import StrayCancellationError
from tests.patterns._adversarial import (
    Boom,
    Fatal,
    cancel_at,
    cancels_its_own_task,
    quiet_after,
    sweep,
    times_out_then_strays,
)
from tests.patterns._virtual import now, virtual

needs_eager = pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager task factories came in 3.12"
)


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


def test_amap_consumer_cancelled_at_every_iteration_leaves_no_task_and_no_lost_error() -> None:
    async def fn(x: int) -> int:
        await asyncio.sleep(0.01 * (x % 3))
        if x == 7:
            raise Boom(x)
        return x

    async def source() -> AsyncIterator[int]:
        for i in range(10):
            await asyncio.sleep(0.003)
            yield i

    async def scenario(k: int | None, victim: int) -> None:
        got: list[int] = []

        async def consume() -> None:
            async with amap(fn, source(), concurrency=3, buffer=1) as results:
                async for x in results:
                    got.append(x)

        task = asyncio.create_task(consume())
        cancel_at(k, lambda: task)
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        # either the failure or the cancellation, nothing else, and never a hang
        assert isinstance(outcome, Boom | asyncio.CancelledError), outcome
        assert got == list(range(len(got))) and len(got) <= 7

    assert sweep(scenario, victims=1) > 10


@pytest.mark.parametrize("errors", ["raise", "collect"])
@virtual
async def test_amap_worker_cancelled_from_outside_is_an_error_of_amap(errors: str) -> None:
    async def consume() -> list[object]:
        got: list[object] = []
        async for x in amap(cancels_its_own_task, range(10), concurrency=2, errors=errors):  # type: ignore[call-overload]
            got.append(x)
        return got

    # In a TaskGroup a CancelledError from the consumer would count as "cancelled": the results
    # and the problem would vanish without a trace.
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(consume())
    (error,) = caught.value.exceptions
    assert isinstance(error, StrayCancellationError)
    assert "cancelled by something other than amap" in str(error)


@pytest.mark.parametrize("kind", ["timeout", "wait_for"])
@virtual
async def test_amap_a_timeout_in_fn_is_a_timeout_and_a_later_stray_is_still_a_stray(
    kind: str,
) -> None:
    got = [
        r
        async for r in amap(times_out_then_strays(kind), range(4), concurrency=1, errors="collect")
    ]
    assert got[0] == 0 and got[3] == 3
    assert isinstance(got[1], Failure) and type(got[1].exception) is TimeoutError
    assert isinstance(got[2], Failure)
    assert isinstance(got[2].exception, StrayCancellationError)


@virtual
async def test_amap_base_exception_from_the_pull_waited_for_on_exit_is_raised_by_the_exit() -> None:
    async def source() -> AsyncIterator[int]:
        yield 0
        await asyncio.sleep(0.05)  # the pull amap's exit waits for...
        raise Fatal("while amap was stopping")  # ...fails with a BaseException

    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    with pytest.raises(Fatal):
        async with amap(fn, source(), concurrency=2) as results:
            async for _ in results:
                break


@virtual
async def test_amap_input_iterated_elsewhere_at_the_same_time_raises_not_hangs() -> None:
    gate = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        for i in range(5):
            await gate.wait()
            yield i

    async def fn(x: int) -> int:
        return x

    gen = source()
    other = asyncio.create_task(anext(gen))  # someone else is inside the generator
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="already running"):
            async for _ in amap(fn, gen, concurrency=2):
                pass
    gate.set()
    assert await other == 0


async def test_amap_timeout_around_async_with_on_a_quiet_input_ends_on_time() -> None:
    # The timeout cancels the consumer once; the exit must not then wait for the input's next
    # item (the cancellation was already delivered, nothing would interrupt that wait).
    stop = asyncio.Event()

    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    source = quiet_after(2, stop)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                async with amap(fn, source, concurrency=2) as results:
                    async for _ in results:
                        pass
        assert loop.time() - began < 2  # the input stays quiet for ever
    finally:
        stop.set()
        await source.aclose()


async def test_amap_aclose_in_finally_after_a_timeout_on_a_quiet_input_ends_on_time() -> None:
    stop = asyncio.Event()

    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    source = quiet_after(2, stop)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                results = amap(fn, source, concurrency=2)
                try:
                    async for _ in results:
                        pass
                finally:
                    await results.aclose()  # the task is being cancelled: no wait for the pull
        assert loop.time() - began < 2
    finally:
        stop.set()
        await source.aclose()


async def test_amap_base_exception_from_the_pull_left_after_a_bare_break_is_not_lost() -> None:
    # After a bare `break` nobody awaits amap any more; the pull it leaves running must not
    # swallow a BaseException: it is left in the worker task for asyncio to report.
    import gc

    seen: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx.get("exception")))
    finished = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        yield 0
        await asyncio.sleep(0.05)
        finished.set()
        raise Fatal("in the pull left running")

    async def fn(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    try:
        async for _ in amap(fn, source(), concurrency=2):
            break
        await finished.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        gc.collect()
        assert any(isinstance(e, Fatal) for e in seen), seen
    finally:
        loop.set_exception_handler(None)


@needs_eager
@pytest.mark.parametrize("concurrency", [5, 1500])
@virtual
async def test_amap_under_an_eager_task_factory_runs_concurrency_calls_at_once(
    concurrency: int,
) -> None:
    # An eager factory runs a new worker inside create_task(), before its spawner counted
    # itself busy: the new worker saw an idle spare and started none, so far fewer calls ran at
    # once. Nesting each spawn in the previous one must not hit the recursion limit either.
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
    running = peak = 0

    async def slow(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(1.0)
        finally:
            running -= 1
        return x

    results = [r async for r in amap(slow, range(2 * concurrency), concurrency=concurrency)]
    assert results == list(range(2 * concurrency))
    assert peak == concurrency
    assert now() == pytest.approx(2.0)
