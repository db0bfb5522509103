"""CapacityLimiter: the holder bound, FIFO without barging, cancellation, resizing."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import CapacityLimiter, UsageError
from tests.patterns._virtual import now, virtual


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 4),
    jobs=st.lists(
        st.tuples(st.floats(0, 1, allow_nan=False), st.floats(0.01, 1, allow_nan=False)),
        min_size=1,
        max_size=20,
    ),
)
def test_never_more_holders_than_tokens_and_fifo(
    total: int, jobs: list[tuple[float, float]]
) -> None:
    @virtual
    async def scenario() -> None:
        limiter = CapacityLimiter(total)
        holding = peak = 0
        arrived: list[int] = []
        entered: dict[int, float] = {}

        async def job(key: int, delay: float, hold: float) -> None:
            nonlocal holding, peak
            await asyncio.sleep(delay)
            arrived.append(key)
            async with limiter:
                entered[key] = now()
                holding += 1
                peak = max(peak, holding)
                await asyncio.sleep(hold)
                holding -= 1

        async with asyncio.TaskGroup() as tg:
            for key, (delay, hold) in enumerate(jobs):
                tg.create_task(job(key, delay, hold))
        assert peak <= total
        # FIFO: no task enters before one that asked earlier (at the same instant, a task
        # granted a token may resume after a newcomer that found another token free)
        times = [entered[key] for key in arrived]
        assert times == sorted(times)
        stats = limiter.statistics()
        assert (stats.borrowed_tokens, stats.waiting, stats.acquired) == (0, 0, len(jobs))

    scenario()


@virtual
async def test_a_released_token_goes_to_the_waiter_not_to_a_newcomer() -> None:
    limiter = CapacityLimiter(1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # handed to the waiter, which has not resumed yet
    assert not limiter.try_acquire()
    await waiter
    assert limiter.statistics().borrowed_tokens == 1
    assert "borrowed=1/1 waiting=0 acquired=2" in repr(limiter)


@virtual
async def test_cancellation_while_waiting_and_after_the_handover() -> None:
    limiter = CapacityLimiter(1)
    await limiter.acquire()
    a = asyncio.create_task(limiter.acquire())
    b = asyncio.create_task(limiter.acquire())
    c = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    a.cancel()  # while waiting
    await asyncio.sleep(0)
    assert limiter.statistics().waiting == 2
    limiter.release()  # to b...
    b.cancel()  # ...cancelled before it resumed: the token moves on to c
    await c
    assert b.cancelled() and a.cancelled()
    stats = limiter.statistics()
    assert (stats.borrowed_tokens, stats.waiting, stats.acquired) == (1, 0, 2)


@virtual
async def test_resizing_wakes_waiters_or_lets_holders_drain() -> None:
    limiter = CapacityLimiter(1)
    await limiter.acquire()
    waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
    await asyncio.sleep(0)
    limiter.total_tokens = 3
    await asyncio.gather(*waiters[:2])
    assert not waiters[2].done() and limiter.available_tokens == 0
    limiter.total_tokens = 1  # three holders now, one allowed
    limiter.release()
    limiter.release()
    await asyncio.sleep(0.01)
    assert not waiters[2].done()  # still one holder: it is full
    limiter.release()
    await waiters[2]
    assert limiter.borrowed_tokens == 1 and now() == pytest.approx(0.01)


@virtual
async def test_misuse_is_refused() -> None:
    limiter = CapacityLimiter(2)
    with pytest.raises(UsageError, match="without a matching acquire"):
        limiter.release()
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="total_tokens"):
            CapacityLimiter(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        limiter.total_tokens = 0
