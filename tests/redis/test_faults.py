"""Fault tests of the work queue: a worker process SIGKILLed mid-item, redis-server killed and
restarted mid-run, cancellation at every step of the worker loop, a BaseException from a stage."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from loopwise.patterns import Pipeline
from loopwise.redis import Delivery, WorkQueue
from tests.redis._server import RedisServer

WORKER = Path(__file__).with_name("_worker_proc.py")


async def drain(queue: WorkQueue[int], done: list[int], *, claim_idle: float = 0.1) -> None:
    """Process everything left (pending items of dead workers too) until the group is empty."""

    async def record(x: int) -> int:
        done.append(x)
        return x

    async with asyncio.timeout(30):
        async with queue.consume(claim_idle=claim_idle, stop_when_empty=True) as worker:
            await Pipeline(worker).stage(worker.step(record), workers=4).stage(worker.ack).run()


async def test_items_of_a_sigkilled_worker_process_are_finished_by_another(
    client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many(range(10))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), redis_server.url, "jobs"
    )
    try:
        async with asyncio.timeout(30):
            # the worker pushes to "started" as it takes each item: wait for three of them
            for _ in range(3):
                await client.blmove("started", "taken", 30)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    killed_held = sorted(int(x) for x in await client.lrange("taken", 0, -1))
    assert len(killed_held) == 3
    done: list[int] = []
    seen: list[Delivery[int]] = []

    async def record(x: int) -> int:
        done.append(x)
        return x

    async with asyncio.timeout(30):
        async with queue.consume(claim_idle=0.3, stop_when_empty=True) as worker:

            async def note(d: Delivery[int]) -> Delivery[int]:
                seen.append(d)
                return d

            pipe = Pipeline(worker).stage(note).stage(worker.step(record), workers=4)
            await pipe.stage(worker.ack).run()
    assert sorted(done) == list(range(10))  # nothing lost, nothing done twice here
    redelivered = sorted(d.value for d in seen if d.deliveries == 2)
    assert redelivered == killed_held
    assert worker.statistics().reclaimed == 3
    assert await queue.dead_letters() == []


async def test_redis_killed_and_restarted_mid_run_loses_no_item(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path, durable=True)
    server.start()
    connection = redis.asyncio.Redis.from_url(server.url)
    try:
        queue: WorkQueue[int] = WorkQueue(connection, "jobs")
        await queue.add_many(range(200))
        done: list[int] = []
        busy = asyncio.Event()

        async def slow(x: int) -> int:
            await asyncio.sleep(0.002)
            done.append(x)
            if len(done) == 50:
                busy.set()
            return x

        async def restart_when_busy() -> None:
            await busy.wait()
            server.kill()
            await asyncio.sleep(0.3)
            server.start()

        async with asyncio.timeout(60):
            async with queue.consume(prefetch=8, claim_idle=0.5, stop_when_empty=True) as worker:
                restarter = asyncio.create_task(restart_when_busy())
                pipe = Pipeline(worker).stage(worker.step(slow), workers=4)
                await pipe.stage(worker.ack).run()
                await restarter
        assert set(done) == set(range(200))
        stats = worker.statistics()
        assert stats.reconnects >= 1 and stats.last_error is not None
        assert "Redis unreachable" in caplog.text
        assert await queue.dead_letters() == []
        duplicates = len(done) - 200
        assert 0 <= duplicates <= 8 + 4  # at most what was held when the server died
    finally:
        await connection.aclose()
        server.stop()


def _cancel_after(iterations: int, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` after ``iterations`` turns of the event loop."""
    loop = asyncio.get_running_loop()
    left = [iterations]

    def tick() -> None:
        if task.done():
            return
        if left[0] == 0:
            task.cancel()
            return
        left[0] -= 1
        loop.call_soon(tick)

    loop.call_soon(tick)


async def _count_iterations(coro: Coroutine[Any, Any, None]) -> int:
    loop = asyncio.get_running_loop()
    count = [0]
    task = asyncio.create_task(coro)

    def tick() -> None:
        if not task.done():
            count[0] += 1
            loop.call_soon(tick)

    loop.call_soon(tick)
    await task
    return count[0]


async def test_cancellation_at_every_step_leaves_every_item_acked_or_pending(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    items = list(range(4))

    async def scenario(done: list[int]) -> None:
        async def record(x: int) -> int:
            await asyncio.sleep(0)
            done.append(x)
            return x

        async with queue.consume(prefetch=2, claim_idle=0.05, stop_when_empty=True) as worker:
            pipe = Pipeline(worker).stage(worker.step(record), workers=2)
            await pipe.stage(worker.ack).run()

    await queue.add_many(items)
    clean: list[int] = []
    iterations = await _count_iterations(scenario(clean))
    assert sorted(clean) == items and iterations > 10
    # The loop spins while the sweep's ticker runs, so iterations measure time as much as
    # awaits: every one of the first 30 (group creation, first claim, first read), then 40 more
    # spread over the whole run.
    points = sorted({*range(30), *range(0, iterations + 1, max(1, iterations // 40))})
    for k in points:
        await client.flushall()
        await queue.add_many(items)
        done: list[int] = []
        task = asyncio.create_task(scenario(done))
        _cancel_after(k, task)
        async with asyncio.timeout(20):
            # The scenario task was cancelled on purpose; this test task is never cancelled.
            with contextlib.suppress(asyncio.CancelledError):  # noqa: LW011
                await task
        await drain(queue, done, claim_idle=0.05)
        assert set(done) == set(items), f"cancelled after {k} iterations: {done}"
        assert await queue.dead_letters() == []


class Fatal(BaseException):
    pass


async def test_a_base_exception_from_a_stage_fails_the_pipeline_and_keeps_the_item(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many(range(5))
    done: list[int] = []

    async def fatal_on_three(x: int) -> int:
        if x == 3:
            raise Fatal("stop the process")
        done.append(x)
        return x

    with pytest.raises(Fatal):
        async with asyncio.timeout(20), queue.consume(prefetch=1, claim_idle=0.1) as worker:
            await Pipeline(worker).stage(worker.step(fatal_on_three)).stage(worker.ack).run()
    assert 3 not in done
    assert worker.statistics().failed == 0  # not an item failure: the process is stopping
    rest: list[int] = []
    await drain(queue, rest)
    assert set(done) | set(rest) == set(range(5))
    assert 3 in rest
    assert await queue.dead_letters() == []


async def test_an_item_slower_than_claim_idle_is_done_twice_and_lost_never(
    client: redis.asyncio.Redis,
) -> None:
    """The documented duplicate: a slow item is taken over by a second worker."""
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many(range(4))
    done: list[tuple[str, int]] = []
    slow_started = asyncio.Event()

    def work(name: str) -> Any:
        async def run(x: int) -> int:
            if x == 0 and name == "slow":
                slow_started.set()
                await asyncio.sleep(0.8)  # well past claim_idle
            done.append((name, x))
            return x

        return run

    async def consume(name: str, *, wait_for: asyncio.Event | None = None) -> None:
        if wait_for is not None:
            await wait_for.wait()
        options = {"prefetch": 1, "claim_idle": 0.2, "stop_when_empty": True}
        async with queue.consume(consumer=name, **options) as worker:  # type: ignore[arg-type]
            await Pipeline(worker).stage(worker.step(work(name))).stage(worker.ack).run()

    async with asyncio.timeout(30), asyncio.TaskGroup() as group:
        group.create_task(consume("slow"))
        group.create_task(consume("fast", wait_for=slow_started))
    assert sorted(x for _, x in done) == [0, 0, 1, 2, 3]
    assert ("slow", 0) in done and ("fast", 0) in done
    assert await queue.dead_letters() == []


async def test_the_backplane_follows_a_restarted_redis_and_keeps_its_ids(tmp_path: Path) -> None:
    from loopwise.http.server import EventChannel
    from loopwise.redis import Backplane

    server = RedisServer(tmp_path, durable=True)
    server.start()
    connection = redis.asyncio.Redis.from_url(server.url)
    channel = EventChannel(history=10)
    try:
        async with asyncio.timeout(60), Backplane(connection, "feed", channel=channel) as bp:
            assert [await bp.publish("one"), await bp.publish("two")] == [1, 2]
            server.kill()
            restart = asyncio.get_running_loop().call_later(0.5, server.start)
            assert await bp.publish("three") == 3  # retried until Redis is back
            while channel.statistics().last_event_id < 3:  # noqa: ASYNC110 (no event to wait on)
                await asyncio.sleep(0.02)
            restart.cancel()
            stats = bp.statistics()
            assert stats.events == 3 and stats.reconnects >= 1
    finally:
        await connection.aclose()
        server.stop()
