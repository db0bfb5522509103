"""RateLimiter: the window bound, FIFO order, catch-up, one timer, cancellation (virtual clock)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import RateLimiter
from tests.patterns._virtual import now, virtual, vloop

EPS = 1e-9


def assert_window_bound(times: list[float], rate: float, per: float, burst: int) -> None:
    """In every window [t_i, t_j], (j - i + 1) grants <= burst + rate/per * (t_j - t_i)."""
    times = sorted(times)
    r = rate / per
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            count = j - i + 1
            assert count <= burst + r * (times[j] - times[i]) + 1e-6, (
                f"{count} grants in [{times[i]}, {times[j]}]: bound is "
                f"{burst + r * (times[j] - times[i])}"
            )


def reference_schedule(calls: list[float], rate: float, per: float, burst: int) -> list[float]:
    """When an ideal FIFO limiter grants requests arriving at ``calls`` (sorted)."""
    interval = per / rate
    slack = (burst - 1) * interval
    tat = -math.inf
    grants: list[float] = []
    previous = -math.inf
    for call in calls:
        grant = max(call, tat - slack, previous)
        tat = max(tat, grant) + interval
        grants.append(grant)
        previous = grant
    return grants


async def acquire_at(
    limiter: RateLimiter,
    delay: float,
    log: list[tuple[int, float]],
    key: int,
    calls: list[tuple[int, float]] | None = None,
) -> None:
    await asyncio.sleep(delay)
    if calls is not None:
        calls.append((key, now()))
    await limiter.acquire()
    log.append((key, now()))


@virtual
async def test_rate_100_burst_1_never_more_than_101_in_any_second() -> None:
    limiter = RateLimiter(100)
    log: list[tuple[int, float]] = []
    async with asyncio.TaskGroup() as tg:
        for i in range(300):
            tg.create_task(acquire_at(limiter, 0, log, i))
    times = [t for _, t in log]
    assert len(times) == 300
    assert sum(1 for t in times if t <= 1.0 + EPS) == 101  # 0.00, 0.01, ..., 1.00: never 200
    assert_window_bound(times, 100, 1.0, 1)
    assert times[-1] == pytest.approx(2.99)  # no slot wasted


@virtual
async def test_starts_with_burst_not_a_full_bucket() -> None:
    limiter = RateLimiter(10, burst=3)
    log: list[tuple[int, float]] = []
    async with asyncio.TaskGroup() as tg:
        for i in range(5):
            tg.create_task(acquire_at(limiter, 0, log, i))
    assert [t for _, t in log] == pytest.approx([0, 0, 0, 0.1, 0.2])


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1, 3, 10, 100, 1000]),
    per=st.sampled_from([0.5, 1.0, 2.0]),
    burst=st.integers(1, 4),
    arrivals=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=25),
)
def test_window_bound_fifo_and_no_idle_slot(
    rate: int, per: float, burst: int, arrivals: list[float]
) -> None:
    @virtual
    async def scenario() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        limiter = RateLimiter(rate, per=per, burst=burst)
        log: list[tuple[int, float]] = []
        calls: list[tuple[int, float]] = []
        async with asyncio.TaskGroup() as tg:
            for key, delay in enumerate(arrivals):
                tg.create_task(acquire_at(limiter, delay, log, key, calls))
        return log, calls

    log, calls = scenario()
    times = [t for _, t in log]
    assert_window_bound(times, rate, per, burst)
    # FIFO: requests are granted in the order acquire() was called.
    assert [key for key, _ in log] == [key for key, _ in calls]
    # No slot wasted: each grant happens as early as the bound and FIFO allow.
    expected = reference_schedule([t for _, t in calls], rate, per, burst)
    assert times == pytest.approx(expected, abs=1e-6)


@virtual
async def test_catches_up_after_the_loop_ran_late() -> None:
    limiter = RateLimiter(10, burst=5)
    log: list[tuple[int, float]] = []
    tasks = [asyncio.create_task(acquire_at(limiter, 0, log, i)) for i in range(20)]
    await asyncio.sleep(0.25)
    vloop().stall(0.45)  # a blocking call held the loop from 0.25 to 0.70
    await asyncio.gather(*tasks)
    times = [t for _, t in log]
    assert_window_bound(times, 10, 1.0, 5)
    # 5 at once, then one per 0.1 s at 0.1 and 0.2; when the loop wakes at 0.7 the five slots it
    # missed (0.3 to 0.7) are granted at once: catching up, within burst.
    assert times[:7] == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2])
    assert times[7:12] == pytest.approx([0.7] * 5)
    # Back on the original timeline: the 20th grant at 1.5 s, as if the loop had never stalled.
    assert times[12:] == pytest.approx([0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])


@virtual
async def test_burst_1_cannot_catch_up_but_stays_within_bound() -> None:
    limiter = RateLimiter(10)
    log: list[tuple[int, float]] = []
    tasks = [asyncio.create_task(acquire_at(limiter, 0, log, i)) for i in range(5)]
    await asyncio.sleep(0.15)
    vloop().stall(0.3)
    await asyncio.gather(*tasks)
    times = [t for _, t in log]
    assert times == pytest.approx([0.0, 0.1, 0.45, 0.55, 0.65])
    assert_window_bound(times, 10, 1.0, 1)


@virtual
async def test_one_timer_not_one_wakeup_per_waiter() -> None:
    limiter = RateLimiter(100)
    loop = vloop()
    before = loop.timers_scheduled
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(200)]
    await asyncio.sleep(0)
    assert limiter.statistics().waiting == 199
    await asyncio.gather(*waiters)
    # One timer per grant that had to wait, however many tasks wait.
    assert loop.timers_scheduled - before <= 200
    assert limiter.statistics().delayed == 199


@virtual
async def test_cancelled_waiter_takes_nothing_and_keeps_fifo() -> None:
    limiter = RateLimiter(1)
    log: list[tuple[int, float]] = []
    await limiter.acquire()  # t=0
    b = asyncio.create_task(acquire_at(limiter, 0, log, 1))
    c = asyncio.create_task(acquire_at(limiter, 0, log, 2))
    d = asyncio.create_task(acquire_at(limiter, 0, log, 3))
    await asyncio.sleep(0.5)
    b.cancel()
    await asyncio.gather(c, d)
    assert b.cancelled()
    assert log == [(2, 1.0), (3, 2.0)]
    assert limiter.statistics().waiting == 0


@virtual
async def test_waiter_cancelled_after_grant_gives_the_slot_back() -> None:
    limiter = RateLimiter(1)
    loop = vloop()
    log: list[tuple[int, float]] = []
    await limiter.acquire()  # t=0; the next slot is at t=1
    b = asyncio.create_task(acquire_at(limiter, 0, log, 1))
    c = asyncio.create_task(acquire_at(limiter, 0, log, 2))
    await asyncio.sleep(0)
    # Same loop iteration as the limiter's timer at t=1, after it: B is granted, then cancelled
    # before it can resume.
    loop.call_at(1.0 + 1e-10, b.cancel)
    await asyncio.gather(c)
    assert b.cancelled()
    assert log == [(2, 1.0)]  # C got B's slot, not t=2
    assert limiter.statistics().acquired == 2


@virtual
async def test_async_with_and_statistics_and_repr() -> None:
    limiter = RateLimiter(5, per=2.0, burst=2)
    assert limiter.statistics().available == 2
    async with limiter:
        pass
    async with limiter:
        pass
    stats = limiter.statistics()
    assert (stats.acquired, stats.waiting, stats.available) == (2, 0, 0)
    assert "RateLimiter 5/2s burst=2" in repr(limiter)
    await asyncio.sleep(0.4)  # one slot back after per/rate = 0.4 s
    assert limiter.statistics().available == pytest.approx(1)
    assert limiter.rate == 5 and limiter.per == 2.0 and limiter.burst == 2


def test_created_outside_a_loop_and_reused_across_runs() -> None:
    limiter = RateLimiter(1000)

    @virtual
    async def use() -> None:
        await limiter.acquire()

    use()
    use()
    assert limiter.statistics().acquired == 2


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((0,), {}, ValueError),
        ((-1,), {}, ValueError),
        ((math.inf,), {}, ValueError),
        (("10",), {}, TypeError),
        ((10,), {"per": 0}, ValueError),
        ((10,), {"burst": 0}, ValueError),
        ((10,), {"burst": 1.5}, ValueError),
    ],
)
def test_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        RateLimiter(*args, **kwargs)  # type: ignore[arg-type]


@virtual
async def test_statistics_count_a_granted_slot_that_could_not_be_given_back() -> None:
    limiter = RateLimiter(10, burst=2)
    await limiter.acquire()
    await limiter.acquire()  # t=0: the burst is used; the next slot is at t=0.1
    returned: list[str] = []

    async def waiter(name: str) -> None:
        await limiter.acquire()
        returned.append(name)

    a = asyncio.create_task(waiter("a"))
    b = asyncio.create_task(waiter("b"))
    await asyncio.sleep(0)
    vloop().stall(0.5)  # the loop ran late: A and B are granted together when the timer fires
    await asyncio.sleep(0)  # this step runs before the timer callback of this iteration...
    await asyncio.sleep(0)  # ...and this one before A and B resume
    assert limiter.statistics().acquired == 4
    a.cancel()  # granted, cancelled before it resumed; B was granted after it
    await b
    assert a.cancelled() and returned == ["b"]
    stats = limiter.statistics()
    # A's slot was spent (giving it back after B's grant could break the window bound): it
    # counts, so `acquired` matches the schedule that the window bound is about.
    assert stats.acquired == 4 and stats.delayed == 2
    assert stats.available == pytest.approx(
        0, abs=1e-9
    )  # at t=0.5 the schedule has room for nothing more


@settings(max_examples=80, deadline=None)
@given(
    rate=st.integers(1, 50),
    burst=st.integers(1, 6),
    requests=st.lists(
        st.tuples(st.floats(0, 2, allow_nan=False), st.integers(1, 6)), min_size=1, max_size=20
    ),
)
def test_weighted_acquire_keeps_the_window_bound_and_fifo(
    rate: int, burst: int, requests: list[tuple[float, int]]
) -> None:
    requests = [(delay, min(amount, burst)) for delay, amount in requests]

    @virtual
    async def scenario() -> tuple[list[tuple[int, float, int]], list[int]]:
        limiter = RateLimiter(rate, burst=burst)
        grants: list[tuple[int, float, int]] = []
        calls: list[int] = []

        async def one(key: int, delay: float, amount: int) -> None:
            await asyncio.sleep(delay)
            calls.append(key)
            await limiter.acquire(amount)
            grants.append((key, now(), amount))

        async with asyncio.TaskGroup() as tg:
            for key, (delay, amount) in enumerate(requests):
                tg.create_task(one(key, delay, amount))
        assert limiter.statistics().acquired == sum(a for _, a in requests)
        return grants, calls

    grants, calls = scenario()
    assert [key for key, _, _ in grants] == calls  # FIFO whatever the amounts
    for i, (_, start, _) in enumerate(grants):
        for _, end, _ in grants[i:]:
            total = sum(a for _, t, a in grants if start - 1e-9 <= t <= end + 1e-9)
            assert total <= burst + rate * (end - start) + 1e-6


@virtual
async def test_a_large_request_at_the_head_is_not_overtaken() -> None:
    limiter = RateLimiter(10, burst=5)
    await limiter.acquire(5)  # t=0: bucket empty; 5 more need 0.5 s
    log: list[tuple[str, float]] = []

    async def one(name: str, amount: int) -> None:
        await limiter.acquire(amount)
        log.append((name, now()))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(one("big", 5))
        await asyncio.sleep(0)
        tg.create_task(one("small", 1))
    assert log == [("big", pytest.approx(0.5)), ("small", pytest.approx(0.6))]


@virtual
async def test_cancelling_a_large_head_lets_the_next_go_at_its_own_time() -> None:
    limiter = RateLimiter(10, burst=5)
    await limiter.acquire(5)
    big = asyncio.create_task(limiter.acquire(5))
    await asyncio.sleep(0)
    small = asyncio.create_task(limiter.acquire(1))
    await asyncio.sleep(0.05)
    big.cancel()
    await small
    assert now() == pytest.approx(0.1)  # one slot refills in 0.1 s; big's 0.5 s timer is gone


@virtual
async def test_try_acquire_never_waits_and_never_overtakes() -> None:
    limiter = RateLimiter(10, burst=2)
    assert limiter.try_acquire() and limiter.try_acquire()
    assert not limiter.try_acquire()  # bucket empty
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.2)  # the waiter got its slot at 0.1; one more is free at 0.2
    assert waiter.done()
    assert limiter.try_acquire()
    queued = asyncio.create_task(limiter.acquire(2))
    await asyncio.sleep(0.15)
    assert not queued.done()
    assert not limiter.try_acquire()  # one slot is free, but a waiter is queued: FIFO
    await queued
    assert limiter.statistics().acquired == 2 + 1 + 1 + 2


@pytest.mark.parametrize("amount", [0, -1, 1.5, True, 3])
@virtual
async def test_bad_amounts(amount: object) -> None:
    limiter = RateLimiter(10, burst=2)
    with pytest.raises(ValueError, match="amount"):
        await limiter.acquire(amount)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        limiter.try_acquire(amount)  # type: ignore[arg-type]
