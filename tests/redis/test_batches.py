"""A StreamWorker's items in lists (``batches()``, ``step_batch``, ``ack_many``), against a real
redis-server: the same items, guarantees and counts as one at a time."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from loopwise.patterns import Pipeline, amap
from loopwise.redis import Delivery, WorkQueue


async def pending(client: redis.asyncio.Redis, stream: str) -> int:
    return int((await client.xpending(stream, "workers"))["pending"])


async def take_the_rest(queue: WorkQueue[int]) -> list[int]:
    """What a second worker finds and acknowledges after the first one stopped."""
    rest: list[int] = []
    async with (
        asyncio.timeout(20),
        queue.consume(claim_idle=0.1, stop_when_empty=True) as second,
    ):
        async for batch in second.batches():
            rest.extend(d.value for d in await second.ack_many(batch))
    return rest


async def test_a_pipeline_over_batches_processes_and_acknowledges_every_item_once(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batched")
    await queue.add_many(range(500))
    sizes: list[int] = []
    seen: list[int] = []

    async def double_all(values: list[int]) -> list[int]:
        sizes.append(len(values))
        seen.extend(values)
        return [2 * v for v in values]

    async with (
        asyncio.timeout(20),
        queue.consume(prefetch=64, stop_when_empty=True) as worker,
    ):
        pipe = Pipeline(worker.batches(max_size=40), output=True)
        pipe = pipe.stage(worker.step_batch(double_all)).stage(worker.ack_many)
        async with pipe:
            results = [d.value async for batch in pipe for d in batch]
    assert sorted(seen) == list(range(500))
    assert sorted(results) == [2 * v for v in range(500)]
    assert max(sizes) <= 40 and len(sizes) < 500  # lists, not one item at a time
    stats = worker.statistics()
    assert (stats.delivered, stats.acked, stats.in_flight) == (500, 500, 0)
    assert await pending(client, "batched") == 0


async def test_prefetch_bounds_the_items_held_in_batches(client: redis.asyncio.Redis) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "held")
    await queue.add_many(range(50))
    gate = asyncio.Event()
    taken: list[int] = []

    async def hold(values: list[int]) -> list[int]:
        taken.extend(values)
        await gate.wait()
        return values

    async with asyncio.timeout(20), queue.consume(prefetch=8, stop_when_empty=True) as worker:
        pipe = Pipeline(worker.batches()).stage(worker.step_batch(hold), workers=4)
        task = asyncio.create_task(pipe.stage(worker.ack_many).run())
        await asyncio.sleep(0.3)  # time for the reads that prefetch should forbid
        assert len(taken) == 8 and worker.statistics().in_flight == 8
        gate.set()
        await task
    assert sorted(taken) == list(range(50))


async def test_a_batch_step_that_raises_fails_each_of_its_items_which_are_retried(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batch-retry")
    await queue.add_many(range(6))
    calls: list[list[int]] = []

    async def first_call_fails(values: list[int]) -> list[int]:
        calls.append(values)
        if len(calls) == 1:
            raise ConnectionError("database away")
        return values

    async with (
        asyncio.timeout(20),
        queue.consume(claim_idle=0.1, stop_when_empty=True) as worker,
    ):
        pipe = Pipeline(worker.batches()).stage(worker.step_batch(first_call_fails))
        await pipe.stage(worker.ack_many).run()
    failed_first = calls[0]
    retried = [v for values in calls[1:] for v in values]
    assert sorted(retried) == list(range(6))  # the failed ones again, with the rest
    stats = worker.statistics()
    assert (stats.failed, stats.acked, stats.reclaimed) == (
        len(failed_first),
        6,
        len(failed_first),
    )
    assert await pending(client, "batch-retry") == 0
    assert await client.hlen(queue.errors_key) == 0


async def test_a_batch_step_returning_the_wrong_number_of_values_fails_its_items(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batch-short")
    await queue.add_many(range(3))
    async with (
        asyncio.timeout(20),
        queue.consume(claim_idle=0.1, max_deliveries=1, stop_when_empty=True) as worker,
    ):

        async def drops_one(values: list[int]) -> list[int]:
            return values[1:]

        pipe = Pipeline(worker.batches()).stage(worker.step_batch(drops_one))
        await pipe.stage(worker.ack_many).run()
    letters = await queue.dead_letters()
    assert sorted(int(letter.data) for letter in letters) == [0, 1, 2]
    assert all("one value per item" in letter.error for letter in letters)


async def test_items_an_earlier_step_failed_skip_the_batch_step_and_are_recorded(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batch-skip")
    await queue.add_many(range(4))
    given: list[int] = []

    async def odd_fails(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    async def record(values: list[int]) -> list[int]:
        given.extend(values)
        return values

    async with (
        asyncio.timeout(20),
        queue.consume(max_deliveries=1, stop_when_empty=True) as worker,
    ):
        async for batch in worker.batches():
            for delivery in batch:
                await worker.step(odd_fails)(delivery)
            await worker.step_batch(record)(batch)
            await worker.ack_many(batch)
    assert sorted(given) == [0, 2]
    assert sorted(int(letter.data) for letter in await queue.dead_letters()) == [1, 3]
    assert worker.statistics().acked == 2


async def test_a_cancelled_pipeline_over_batches_loses_no_item(
    client: redis.asyncio.Redis,
) -> None:
    """Cancelled mid-run, every item is acknowledged or still there for the next worker."""
    queue: WorkQueue[int] = WorkQueue(client, "batch-cancel")
    await queue.add_many(range(200))
    acknowledged: list[int] = []
    forty = asyncio.Event()

    async def slow(values: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return values

    async with asyncio.timeout(20), queue.consume(prefetch=16) as worker:

        async def ack(batch: list[Delivery[int]]) -> None:
            await worker.ack_many(batch)
            acknowledged.extend(d.value for d in batch)
            if len(acknowledged) >= 40:
                forty.set()

        pipe = Pipeline(worker.batches(max_size=4)).stage(worker.step_batch(slow), workers=2)
        task = asyncio.create_task(pipe.stage(ack).run())
        await forty.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert worker.statistics().acked == len(acknowledged)
    rest = await take_the_rest(queue)
    assert not set(acknowledged) & set(rest)
    assert sorted(acknowledged + rest) == list(range(200))
    assert await pending(client, "batch-cancel") == 0


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5, 8, 13, 21, 34])
async def test_cancelled_at_any_step_a_pipeline_over_batches_loses_no_item(
    client: redis.asyncio.Redis, steps: int
) -> None:
    stream = f"batch-steps-{steps}"
    queue: WorkQueue[int] = WorkQueue(client, stream)
    await queue.add_many(range(60))
    acknowledged: list[int] = []

    async def same(values: list[int]) -> list[int]:
        return values

    async with asyncio.timeout(20), queue.consume(prefetch=8) as worker:

        async def ack(batch: list[Delivery[int]]) -> None:
            await worker.ack_many(batch)
            acknowledged.extend(d.value for d in batch)

        pipe = Pipeline(worker.batches(max_size=3)).stage(worker.step_batch(same), workers=2)
        task = asyncio.create_task(pipe.stage(ack).run())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    rest = await take_the_rest(queue)
    assert sorted(acknowledged + rest) == list(range(60))


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
async def test_a_base_exception_from_a_batch_step_fails_the_pipeline_and_leaves_its_items(
    client: redis.asyncio.Redis, error: type[BaseException]
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batch-base")
    await queue.add_many(range(10))

    async def interrupted(values: list[int]) -> list[int]:
        raise error("stop")

    async with asyncio.timeout(20), queue.consume(prefetch=4) as worker:
        pipe = Pipeline(worker.batches()).stage(worker.step_batch(interrupted))
        with pytest.raises(error):
            await pipe.stage(worker.ack_many).run()
        assert worker.statistics().acked == 0 and worker.statistics().failed == 0
    assert await client.hlen(queue.errors_key) == 0  # not recorded as a failure of the items
    assert await pending(client, "batch-base") == 4  # handed back, for any worker to take


async def test_amap_over_batches(client: redis.asyncio.Redis) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "batch-amap")
    await queue.add_many(range(100))

    async def total(values: list[int]) -> list[int]:
        return values

    async with asyncio.timeout(20), queue.consume(stop_when_empty=True) as worker:
        step = worker.step_batch(total)

        async def handle(batch: list) -> int:  # type: ignore[type-arg]
            return len(await worker.ack_many(await step(batch)))

        counts = [n async for n in amap(handle, worker.batches(max_size=10), concurrency=3)]
    assert sum(counts) == 100 and max(counts) <= 10
    assert await pending(client, "batch-amap") == 0


def test_max_size_is_checked() -> None:
    queue: WorkQueue[int] = WorkQueue(redis.asyncio.Redis(), "s")
    worker = queue.consume()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_size"):
            worker.batches(max_size=bad)  # type: ignore[arg-type]
