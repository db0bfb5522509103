"""Adversarial tests of the patterns' documented guarantees (a second review of issue 18).

Each test attacks one promise from the docs: a quiet input on amap's error path, a reader
task that has not started yet when an output Pipeline closes, cancellation at every checkpoint
of the limiters' waiters (the statistics must balance afterwards), the stray-cancellation rule
next to ``asyncio.timeout()``, and sync retry from a worker thread of a running loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import (
    CapacityLimiter,
    Failure,
    Pipeline,
    RateLimiter,
    Supervisor,
    UsageError,
    amap,
    retry,
)
from loopwise.patterns import StrayCancellationError, set_retry_testing
from tests.patterns._virtual import VirtualClockLoop, now, run_virtual, virtual, vloop


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


# -- the limiters: cancellation at any moment, racing the wake-ups; the books must balance --------


@settings(max_examples=150, deadline=None)
@given(
    burst=st.integers(1, 4),
    requests=st.lists(
        st.tuples(
            st.integers(0, 6),  # arrival, in half intervals
            st.integers(1, 4),  # amount
            st.one_of(st.none(), st.integers(0, 12)),  # cancel time, in half intervals
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_rate_limiter_cancellation_at_any_moment_keeps_bound_fifo_and_books(
    burst: int, requests: list[tuple[int, int, int | None]]
) -> None:
    # Cancel times fall on the same grid as the grants, so many cancels land in the same loop
    # iteration as a grant, after the wake-up and before the waiter resumes.
    rate, half = 10, 0.05
    requests = [(arrive, min(amount, burst), cancel) for arrive, amount, cancel in requests]

    @virtual
    async def scenario() -> None:
        limiter = RateLimiter(rate, burst=burst)
        grants: list[tuple[int, float, int]] = []
        calls: list[int] = []
        loop = asyncio.get_running_loop()

        async def one(key: int, arrive: int, amount: int) -> None:
            await asyncio.sleep(arrive * half)
            calls.append(key)
            await limiter.acquire(amount)
            grants.append((key, now(), amount))

        tasks = []
        for key, (arrive, amount, cancel) in enumerate(requests):
            task = asyncio.create_task(one(key, arrive, amount))
            tasks.append(task)
            if cancel is not None:
                loop.call_at(cancel * half, task.cancel)
        await asyncio.gather(*tasks, return_exceptions=True)
        stats = limiter.statistics()
        assert stats.waiting == 0 and len(limiter._waiters) == 0
        assert limiter._timer is None  # no timer left armed for nobody
        granted = sum(a for _, _, a in grants)
        cancelled = sum(requests[k][1] for k, t in enumerate(tasks) if t.cancelled())
        assert granted <= stats.acquired <= granted + cancelled
        assert stats.delayed <= stats.acquired
        keys = [key for key, _, _ in grants]
        assert keys == [k for k in calls if k in keys]  # FIFO among those served
        for i, (_, start, _) in enumerate(grants):
            for _, end, _ in grants[i:]:
                total = sum(a for _, t, a in grants if start - 1e-9 <= t <= end + 1e-9)
                assert total <= burst + rate * (end - start) + 1e-6

    scenario()


def sweep(scenario: Callable[[int | None, int], Coroutine[Any, Any, None]], victims: int) -> int:
    """Run ``scenario(k, victim)`` once per loop iteration k of a clean run and per victim:
    ``scenario`` cancels task ``victim`` at the start of iteration ``k`` (before any callback of
    that iteration runs, so also between a wake-up and the woken task's resumption)."""
    loops: list[VirtualClockLoop] = []

    async def clean() -> None:
        loops.append(vloop())
        await scenario(None, 0)

    run_virtual(clean())
    iterations = loops[0].iterations
    for k in range(iterations + 1):
        for victim in range(victims):
            run_virtual(scenario(k, victim))
    return iterations


def cancel_at(k: int | None, task: Callable[[], asyncio.Task[Any]]) -> None:
    if k is not None:
        vloop().on_iteration = lambda it: task().cancel() if it == k else None


def test_capacity_limiter_cancel_at_every_iteration_keeps_fifo_and_the_books() -> None:
    async def scenario(k: int | None, victim: int) -> None:
        limiter = CapacityLimiter(2)
        order: list[int] = []
        holders = [0, 0]  # now, most

        async def one(i: int) -> None:
            await limiter.acquire()
            order.append(i)
            holders[0] += 1
            holders[1] = max(holders)
            try:
                await asyncio.sleep(0.01 * (i % 3 + 1))
            finally:
                holders[0] -= 1
                limiter.release()

        tasks = [asyncio.create_task(one(i)) for i in range(6)]
        cancel_at(k, lambda: tasks[victim])
        await asyncio.gather(*tasks, return_exceptions=True)
        stats = limiter.statistics()
        assert (stats.borrowed_tokens, stats.waiting, len(limiter._lot)) == (0, 0, 0)
        assert stats.acquired == len(order) and holders[1] <= 2
        survivors = [i for i, t in enumerate(tasks) if not t.cancelled()]
        assert order == sorted(order) and set(survivors) <= set(order)  # FIFO, nobody lost

    assert sweep(scenario, victims=6) > 10


def test_rate_limiter_cancel_at_every_iteration_keeps_bound_fifo_and_the_books() -> None:
    # After the burst, the loop runs late once (a 0.4 s stall), so the timer then grants several
    # waiters in one callback: a victim granted there can be followed by a later grant.
    rate, burst, amounts = 10, 3, [1, 1, 1, 1, 2, 1, 1, 2]

    async def scenario(k: int | None, victim: int) -> None:
        limiter = RateLimiter(rate, burst=burst)
        grants: list[tuple[int, float, int]] = []

        async def one(i: int) -> None:
            await limiter.acquire(amounts[i])
            grants.append((i, now(), amounts[i]))

        async def stall() -> None:
            await asyncio.sleep(0.05)
            vloop().stall(0.4)

        tasks = [asyncio.create_task(one(i)) for i in range(len(amounts))]
        staller = asyncio.create_task(stall())
        cancel_at(k, lambda: tasks[victim])
        await asyncio.gather(*tasks, return_exceptions=True)
        await staller
        stats = limiter.statistics()
        assert (stats.waiting, len(limiter._waiters), limiter._timer) == (0, 0, None)
        granted = sum(a for _, _, a in grants)
        assert granted <= stats.acquired <= granted + amounts[victim]
        assert [i for i, _, _ in grants] == sorted(i for i, _, _ in grants)  # FIFO
        assert {i for i, t in enumerate(tasks) if not t.cancelled()} <= {i for i, _, _ in grants}
        for n, (_, start, _) in enumerate(grants):
            for _, end, _ in grants[n:]:
                total = sum(a for _, t, a in grants if start - 1e-9 <= t <= end + 1e-9)
                assert total <= burst + rate * (end - start) + 1e-6, grants

    assert sweep(scenario, victims=len(amounts)) > 5


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


# -- a worker of amap or Pipeline cancelled by something other than the pattern -----------------


async def cancels_its_own_task(x: int) -> int:
    if x == 3:
        # what a library that "cancels the current task" does when it does not clean up
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
    await asyncio.sleep(0.001)
    return x


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


# -- asyncio.timeout() in user code is not a cancellation of the worker --------------------------


def times_out_then_strays(kind: str) -> Callable[[int], Coroutine[Any, Any, int]]:
    async def fn(x: int) -> int:
        if x == 1:  # a timeout that expires: asyncio cancels the task, then uncancels it
            if kind == "timeout":
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
            else:
                await asyncio.wait_for(asyncio.sleep(1), 0.01)
        if x == 2:  # then, on the same worker, a stray cancellation
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            never.cancel()
            await never
        await asyncio.sleep(0)
        return x

    return fn


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


@pytest.mark.parametrize("kind", ["timeout", "wait_for"])
@virtual
async def test_pipeline_a_timeout_in_a_stage_is_raised_as_timeout_error(kind: str) -> None:
    pipe = Pipeline(range(4)).stage(times_out_then_strays(kind))
    with pytest.raises(TimeoutError):
        await pipe.run()


# -- Supervisor --------------------------------------------------------------------------------


@pytest.mark.parametrize("reset_after", [0, -1.0, float("nan"), "60", True])
@virtual
async def test_supervise_refuses_a_reset_after_that_would_restart_in_a_busy_loop(
    reset_after: object,
) -> None:
    # reset_after=0 made every failure "healthy": a service failing at once was restarted
    # at once, forever, without the loop ever running anything else.
    runs = 0

    async def fails_at_once() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("down")

    async with Supervisor() as sup:
        with pytest.raises((ValueError, TypeError), match="reset_after"):
            sup.supervise(fails_at_once, reset_after=reset_after)  # type: ignore[arg-type]
    assert runs == 0


# -- amap's input: a pull that fails while amap stops, an input iterated twice ------------------


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


# -- RateLimiter: one timer, armed for the waiter's own amount ----------------------------------


@virtual
async def test_rate_limiter_arms_its_timer_once_for_a_large_first_waiter() -> None:
    limiter = RateLimiter(10, burst=5)
    await limiter.acquire(5)  # the bucket is empty: 5 more need 0.5 s
    before = vloop().timers_scheduled
    await limiter.acquire(5)
    assert now() == pytest.approx(0.5)
    # armed for amount 1 (due at 0.1 s) it fired for nothing and was armed again
    assert vloop().timers_scheduled - before == 1


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


# -- retry: a retry with no delay is still a checkpoint -----------------------------------------


async def test_retrying_without_delay_lets_other_tasks_run() -> None:
    # backoff=0 (or the testing switch, or full jitter drawing 0) skipped the sleep entirely, so
    # `attempts=None` on a call failing without awaiting blocked the event loop for ever.
    other_ran = False
    calls = 0

    def other() -> None:
        nonlocal other_ran
        other_ran = True

    async def fails_without_awaiting() -> str:
        nonlocal calls
        calls += 1
        if other_ran:
            return "done"
        if calls > 1000:
            raise Fatal("the loop never ran anything else")
        raise ValueError("try again")

    asyncio.get_running_loop().call_soon(other)  # runs when the loop gets control back
    policy = retry(attempts=None, backoff=0, on=ValueError)
    assert await policy.call(fails_without_awaiting) == "done"
    assert calls == 2


def test_supervised_service_failing_at_once_in_testing_mode_does_not_block_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def fails_at_once() -> None:
        nonlocal runs
        runs += 1
        if runs > 1000:
            raise Fatal("the loop never ran anything else")
        raise ValueError("down")

    async def main() -> None:
        async with Supervisor() as sup:
            sup.supervise(fails_at_once)
            for _ in range(3):
                await asyncio.sleep(0)

    set_retry_testing(True)
    try:
        with caplog.at_level(logging.CRITICAL, logger="loopwise.patterns"):
            asyncio.run(main())
    finally:
        set_retry_testing(False)
    assert 1 <= runs <= 10


# -- amap under an eager task factory (Python 3.12+) --------------------------------------------

needs_eager = pytest.mark.skipif(
    not hasattr(asyncio, "eager_task_factory"), reason="eager task factories came in 3.12"
)


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


def test_retry_refuses_to_decorate_a_generator_function_and_says_why() -> None:
    # An async generator was taken for a sync function and refused with "make the function
    # async", which it is; a sync generator was "retried" without effect (its errors come
    # while it is iterated, after the call returned).
    async def agen() -> AsyncIterator[int]:
        yield 1

    def gen() -> Iterator[int]:
        yield 1

    for fn in (agen, gen):
        with pytest.raises(TypeError, match=r"generator function.*attempt in policy"):
            retry(attempts=3)(fn)  # type: ignore[call-overload]


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


@virtual
async def test_rate_limiter_cancelling_waiters_behind_the_head_does_not_rearm_the_timer() -> None:
    limiter = RateLimiter(10)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(100)]
    await asyncio.sleep(0)
    before = vloop().timers_scheduled
    for task in waiters[1:]:
        task.cancel()  # a timeout around each, say; the head stays
    await asyncio.gather(*waiters[1:], return_exceptions=True)
    assert vloop().timers_scheduled == before  # was one new timer per cancelled waiter
    await waiters[0]
    assert now() == pytest.approx(0.1) and limiter.statistics().waiting == 0
