"""An item slower than claim_idle, taken over by another worker while the first still works
on it, against a real redis-server: whichever delivery acknowledges it first, no error record
or dead letter is left behind for an item that is done."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from loopwise.redis import WorkQueue, _acks


async def pending(client: redis.asyncio.Redis, stream: str, group: str = "workers") -> int:
    info = await client.xpending(stream, group)
    return int(info["pending"])


async def test_an_error_recorded_by_another_workers_delivery_is_cleared_by_the_read_path(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item slower than claim_idle: another worker takes it over and its delivery fails
    (recorded), then the first delivery succeeds. The acknowledgement that the first worker's
    read carries must clear that error too, although its own delivery was the first one."""
    monkeypatch.setattr(_acks, "_ACK_GATHER", 30.0)  # only a read sends acknowledgements
    queue: WorkQueue[int] = WorkQueue(client, "slow-one")
    await queue.add(0)
    async with asyncio.timeout(10):
        async with queue.consume(consumer="slow", prefetch=4, claim_idle=60) as slow:
            first = await anext(slow)
            assert first.deliveries == 1
            await asyncio.sleep(0.1)  # longer than the other worker's claim_idle
            async with queue.consume(consumer="other", prefetch=4, claim_idle=0.05) as other:
                again = await anext(other)  # taken over
                assert (again.id, again.deliveries) == (first.id, 2)
                again.error = ValueError("failed over there")
                await other.ack(again)  # recorded, left pending
            assert await client.hlen(queue.errors_key) == 1
            await queue.add(1)
            await slow.ack(first)  # the first delivery succeeds after all
            assert (await anext(slow)).value == 1  # this read carries the acknowledgement
            assert await pending(client, "slow-one") == 1  # the item 0 is acknowledged...
            assert await client.hgetall(queue.errors_key) == {}  # ...and its error is gone


async def test_a_delivery_failing_after_another_one_acknowledged_the_item_records_nothing(
    client: redis.asyncio.Redis,
) -> None:
    """The other order: the first delivery's acknowledgement went out, then the delivery that
    took the item over fails. The item is done and no longer pending, so nothing will ever
    acknowledge or dead-letter it again: an error recorded for it now would stay for good."""
    queue: WorkQueue[int] = WorkQueue(client, "acked-first")
    await queue.add(0)
    async with asyncio.timeout(10):
        async with queue.consume(consumer="slow", prefetch=4, claim_idle=60) as slow:
            first = await anext(slow)
            await asyncio.sleep(0.1)  # longer than the other worker's claim_idle
            async with queue.consume(consumer="other", prefetch=4, claim_idle=0.05) as other:
                again = await anext(other)  # taken over
                assert (again.id, again.deliveries) == (first.id, 2)
                await slow.ack(first)
                await slow.release()  # sends the acknowledgement
                assert await pending(client, "acked-first") == 0
                again.error = ValueError("failed over there")
                await other.ack(again)
                assert other.statistics().failed == 1
    assert await client.hgetall(queue.errors_key) == {}
    assert await queue.dead_letters() == []


async def test_a_delivery_failing_its_last_try_after_the_item_was_acknowledged_is_no_dead_letter(
    client: redis.asyncio.Redis,
) -> None:
    """The same at max_deliveries: the item was done (acknowledged by its first delivery), so a
    dead letter for it would have someone replay work that succeeded."""
    queue: WorkQueue[int] = WorkQueue(client, "acked-then-last-try")
    await queue.add(0)
    async with asyncio.timeout(10):
        async with queue.consume(consumer="slow", prefetch=4, claim_idle=60) as slow:
            first = await anext(slow)
            await asyncio.sleep(0.1)
            options = {"prefetch": 4, "claim_idle": 0.05, "max_deliveries": 2}
            async with queue.consume(consumer="other", **options) as other:  # type: ignore[arg-type]
                again = await anext(other)
                assert (again.id, again.deliveries) == (first.id, 2)
                await slow.ack(first)
                await slow.release()
                assert await pending(client, "acked-then-last-try") == 0
                again.error = ValueError("failed over there")
                await other.ack(again)
    assert await queue.dead_letters() == []
    assert await client.hgetall(queue.errors_key) == {}
