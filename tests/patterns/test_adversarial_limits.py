"""Adversarial tests of the limiters, retry and Supervisor: cancellation at any moment keeps the
books, FIFO and the window bound; one timer; a retry without delay is a checkpoint;
supervise() and retry refuse arguments that would hang or do nothing."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import (
    CapacityLimiter,
    RateLimiter,
    Supervisor,
    retry,
)
from loopwise.patterns import set_retry_testing
from tests.patterns._adversarial import (
    Fatal,
    cancel_at,
    sweep,
)
from tests.patterns._virtual import now, virtual, vloop


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
        # FIFO among those served: nobody who called later is served at an earlier time. Two
        # served at the same instant may resume in either order: a newcomer that finds the
        # bucket open returns without suspending, while a waiter granted just before it has yet
        # to resume (its slot was taken first all the same).
        served_at = {key: at for key, at, _ in grants}
        order = [k for k in calls if k in served_at]
        assert all(served_at[a] <= served_at[b] for a, b in itertools.pairwise(order))
        for i, (_, start, _) in enumerate(grants):
            for _, end, _ in grants[i:]:
                total = sum(a for _, t, a in grants if start - 1e-9 <= t <= end + 1e-9)
                assert total <= burst + rate * (end - start) + 1e-6

    scenario()


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


@virtual
async def test_rate_limiter_arms_its_timer_once_for_a_large_first_waiter() -> None:
    limiter = RateLimiter(10, burst=5)
    await limiter.acquire(5)  # the bucket is empty: 5 more need 0.5 s
    before = vloop().timers_scheduled
    await limiter.acquire(5)
    assert now() == pytest.approx(0.5)
    # armed for amount 1 (due at 0.1 s) it fired for nothing and was armed again
    assert vloop().timers_scheduled - before == 1


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


async def test_retry_still_retries_in_a_task_where_a_taskgroup_leaked_a_cancel_request() -> None:
    # On Python 3.11 and 3.12 a TaskGroup whose child fails after the body reached the end of
    # `async with` leaves Task.cancelling() at 1 for the rest of the task (fixed in 3.13).
    # retry refuses to retry while the task is being cancelled, so from then on it never
    # retried anything in that task. It now compares with the count when the call started.
    async def child() -> None:
        await asyncio.sleep(0.001)
        raise ValueError("child")

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(child())
    except* ValueError:
        pass

    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("try again")
        return "ok"

    assert await retry(attempts=3, backoff=0).call(flaky) == "ok"
    assert calls == 3
