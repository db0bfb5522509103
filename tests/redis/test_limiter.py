"""The shared rate limiter against a real redis-server: the window bound across processes, FIFO
within one, try_acquire, cancellation, and an unreachable Redis."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from loopwise.redis import RedisUnavailableError, SharedRateLimiter
from tests.redis._server import RedisServer, free_port

PROGRAM = Path(__file__).with_name("_limiter_proc.py")


def most_in_any_window(times_us: list[int], window_us: int) -> int:
    times = sorted(times_us)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_processes_sharing_a_quota_stay_within_rate_and_burst(
    client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    rate, burst, seconds = 40, 5, 2.0
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROGRAM),
            redis_server.url,
            "quota",
            str(rate),
            str(burst),
            str(seconds),
            "3",
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = []
    async with asyncio.timeout(60):
        for process in processes:
            out, _ = await process.communicate()
            assert process.returncode == 0
            outputs.append([int(x) for x in out.split()])
    grants = [t for out in outputs for t in out]
    assert all(len(out) >= 3 for out in outputs)  # every process got its share
    for window, slots in ((0.1, 4), (0.5, 20), (1.0, 40)):  # slots: rate * window
        # In a closed window of W seconds at most burst + rate * W grants; in a half-open one
        # (how most_in_any_window counts) one fewer: the grant at its far end is outside.
        assert most_in_any_window(grants, int(window * 1e6)) <= burst + slots - 1, window
    span = (max(grants) - min(grants)) / 1e6
    assert len(grants) <= burst + rate * span + 1


async def test_fifo_within_a_process(client: redis.asyncio.Redis) -> None:
    limiter = SharedRateLimiter(client, "fifo", 50, burst=1)
    order: list[int] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    async with asyncio.timeout(20), asyncio.TaskGroup() as group:
        for n in range(8):
            group.create_task(take(n))
            await asyncio.sleep(0)  # each one calls acquire() before the next is created
    assert order == list(range(8))
    stats = limiter.statistics()
    assert stats.acquired == 8 and stats.delayed == 7 and stats.waiting == 0


async def test_try_acquire_and_amounts(client: redis.asyncio.Redis) -> None:
    limiter = SharedRateLimiter(client, "burst", 1, per=60, burst=3)
    other_process_view = SharedRateLimiter(client, "burst", 1, per=60, burst=3)
    assert await limiter.try_acquire(2)
    assert await other_process_view.try_acquire()
    assert not await limiter.try_acquire()
    assert not await other_process_view.try_acquire()
    with pytest.raises(ValueError, match="burst=3"):
        await limiter.acquire(4)
    with pytest.raises(ValueError, match="amount"):
        await limiter.acquire(0)
    assert limiter.statistics().acquired == 2


async def test_a_cancelled_waiter_takes_nothing(client: redis.asyncio.Redis) -> None:
    limiter = SharedRateLimiter(client, "cancel", 1, per=0.5, burst=1)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    async with asyncio.timeout(5):
        await limiter.acquire()  # the slot after the first one: still free
    assert limiter.statistics().acquired == 2


async def test_unreachable_redis_fails_closed_or_falls_back_locally(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # how long "unreachable" takes to decide is the client's retry policy: none here
    nowhere = redis.asyncio.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    closed = SharedRateLimiter(nowhere, "q", 10)
    with pytest.raises(RedisUnavailableError, match=r"unreachable.*nothing was granted"):
        await closed.acquire()
    assert closed.statistics().acquired == 0
    local = SharedRateLimiter(nowhere, "q", 100, burst=2, when_unavailable="local")
    async with asyncio.timeout(20):
        for _ in range(3):
            await local.acquire()
    assert local.statistics().local_grants == 3
    assert "limiting this process locally" in caplog.text
    await nowhere.aclose()


def test_options_are_checked() -> None:
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="rate"):
        SharedRateLimiter(client, "k", 0)
    with pytest.raises(ValueError, match="burst"):
        SharedRateLimiter(client, "k", 1, burst=0)
    with pytest.raises(ValueError, match="when_unavailable"):
        SharedRateLimiter(client, "k", 1, when_unavailable="open")  # type: ignore[arg-type]
    assert repr(SharedRateLimiter(client, "k", 5)).startswith("<SharedRateLimiter 'k' 5/1s burst=1")
