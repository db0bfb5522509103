"""An adversarial review of the Redis layer: entries no backplane wrote, a Redis that is down
when a server starts, a client whose connection pool is too small, and a rate-limit waiter
cancelled while its script is in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest
import redis.asyncio

from loopwise import UsageError
from loopwise.http.server import EventChannel, WebSocketHub
from loopwise.patterns import Pipeline
from loopwise.redis import Backplane, RedisUnavailableError, SharedRateLimiter, WorkQueue
from tests.redis._server import free_port


async def _until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 (polling a statistic, no event to wait on)
            await asyncio.sleep(0.02)


async def test_an_entry_no_backplane_wrote_is_skipped_and_the_tail_goes_on(
    client: redis.asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    hub, channel = WebSocketHub(), EventChannel(history=10)
    async with Backplane(client, "feed", hub=hub, channel=channel) as bp:
        # Someone else's entries: a text message that is not UTF-8, an event that is not UTF-8.
        await client.xadd("feed:hub", {"k": b"t", "d": b"\xff\xfe"})
        await client.xadd("feed:events", {"d": b"\xff\xfe"}, id="0-1")
        await bp.broadcast("after")
        assert await bp.publish("after") == 2
        await _until(lambda: bp.statistics().messages == 1 and bp.statistics().events == 1)
        stats = bp.statistics()
        assert stats.running and stats.skipped == 2
        assert channel.statistics().last_event_id == 2
    assert "skipped" in caplog.text


async def test_start_gives_up_after_start_timeout_when_redis_is_down() -> None:
    down = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    bp = Backplane(down, "feed", channel=EventChannel(history=10), start_timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(RedisUnavailableError, match="start_timeout"):
            async with asyncio.timeout(10):
                await bp.start()
    finally:
        await down.aclose()
    assert time.monotonic() - started < 8
    assert not bp.statistics().running


async def test_start_timeout_none_waits_until_redis_answers(redis_server: object) -> None:
    down = redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    bp = Backplane(down, "feed", channel=EventChannel(history=10), start_timeout=None)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await bp.start()  # still retrying after a second: it would wait for good
    finally:
        await down.aclose()


def test_start_timeout_is_checked(client: redis.asyncio.Redis) -> None:
    for bad in (0, -1, float("nan"), "5", True):
        with pytest.raises(ValueError, match="start_timeout"):
            Backplane(client, "feed", hub=WebSocketHub(), start_timeout=bad)  # type: ignore[arg-type]


def test_a_pool_too_small_for_a_worker_or_backplane_is_refused_at_once(
    redis_server: object,
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    one = redis.asyncio.Redis.from_url(url, max_connections=1)
    with pytest.raises(UsageError, match="max_connections=1"):
        WorkQueue(one, "jobs").consume()
    with pytest.raises(UsageError, match="max_connections=1"):
        Backplane(one, "feed", hub=WebSocketHub())


async def test_an_exhausted_connection_pool_is_named_not_reported_as_redis_down(
    redis_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    small = redis.asyncio.Redis.from_url(url, max_connections=2)
    try:
        queue: WorkQueue[int] = WorkQueue(small, "jobs")
        await queue.add_many(range(6))
        done: list[int] = []

        async def hold_a_connection(x: int) -> int:
            # The stage's own use of the client takes the connection the worker's acks need.
            await small.execute_command("BLPOP", "nothing", 0.3)  # type: ignore[no-untyped-call]
            done.append(x)
            return x

        with caplog.at_level(logging.WARNING, logger="loopwise.redis"):
            async with asyncio.timeout(60), queue.consume(stop_when_empty=True) as worker:
                await Pipeline(worker).stage(worker.step(hold_a_connection)).stage(worker.ack).run()
        assert sorted(done) == list(range(6))  # slower, but nothing lost
        assert "connection pool is exhausted" in caplog.text
        assert "Redis unreachable" not in caplog.text
    finally:
        await small.aclose()


async def test_a_waiter_cancelled_in_flight_is_never_counted_twice(
    client: redis.asyncio.Redis,
) -> None:
    """Cancel ``acquire()`` at every turn of the loop while its script may be in flight: Redis
    may have granted a slot the task never uses (counted there, not here), never the reverse,
    and the limiter keeps answering correctly (no reply read by the wrong call)."""
    interval = 100.0  # seconds per grant: nothing is refilled during the test
    burst = 40
    limiter = SharedRateLimiter(client, "inflight", 1, per=interval, burst=burst)
    cancelled = 0
    for turns in range(12):
        task = asyncio.create_task(limiter.acquire())
        for _ in range(turns):
            await asyncio.sleep(0)
        if task.cancel():
            cancelled += 1
        try:
            async with asyncio.timeout(5):
                await task
        except asyncio.CancelledError:
            pass
    ours = limiter.statistics().acquired
    tat_us = int(await client.get("inflight"))
    now_s, now_us = await client.time()
    granted_in_redis = round((tat_us - (now_s * 1_000_000 + now_us)) / (interval * 1e6))
    assert ours <= granted_in_redis <= ours + cancelled
    async with asyncio.timeout(5):
        assert await limiter.try_acquire() is (granted_in_redis < burst)


async def test_close_cancelled_while_it_waits_for_the_tail_stays_cancelled(
    client: redis.asyncio.Redis,
) -> None:
    bp = Backplane(client, "feed", hub=WebSocketHub())
    await bp.start()
    closer = asyncio.create_task(bp.close())
    await asyncio.sleep(0)  # the closer now waits for the cancelled tail to finish
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await closer
    assert not bp.statistics().running


async def test_close_ends_the_follower_even_while_messages_stream_in(
    client: redis.asyncio.Redis,
) -> None:
    """Closing while the follower reads a busy stream: redis-py can lose the cancellation of a
    command in flight (its own retry re-sends it), so close() must not rely on it alone."""
    sender = Backplane(client, "feed", hub=WebSocketHub())
    for _ in range(30):
        follower = Backplane(client, "feed", hub=WebSocketHub())
        await follower.start()
        sending = asyncio.create_task(_broadcast_many(sender, 200))
        await asyncio.sleep(0.005)
        async with asyncio.timeout(4):
            await follower.close()
        assert not follower.statistics().running
        await sending


async def _broadcast_many(backplane: Backplane, count: int) -> None:
    for n in range(count):
        await backplane.broadcast(f"message {n}")


async def test_a_pipeline_cancelled_while_items_stream_in_ends_and_loses_nothing(
    client: redis.asyncio.Redis,
) -> None:
    """The same race for a worker: cancelled while its reads and acknowledgements are in
    flight, the pipeline ends promptly, and every item is acknowledged or still pending."""
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    done: list[int] = []

    async def record(x: int) -> int:
        done.append(x)
        return x

    async def consume() -> None:
        async with queue.consume(prefetch=8, claim_idle=0.05) as worker:
            await Pipeline(worker).stage(worker.step(record), workers=2).stage(worker.ack).run()

    added = 0
    for _ in range(20):
        await queue.add_many(range(added, added + 50))
        added += 50
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        task.cancel()
        async with asyncio.timeout(4):
            await asyncio.wait([task])
        assert task.cancelled()
    async with asyncio.timeout(30), queue.consume(claim_idle=0.05, stop_when_empty=True) as w:
        await Pipeline(w).stage(w.step(record), workers=4).stage(w.ack).run()
    assert set(done) == set(range(added))
    assert await queue.dead_letters() == []
