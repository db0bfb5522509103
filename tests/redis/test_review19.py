"""Review of issue 19's speed work on the work queue, against a real redis-server: what the
read that carries acknowledgements (a redis-py pipeline, not a script) leaves behind."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from loopwise.redis import WorkQueue, _worker


async def pending(client: redis.asyncio.Redis, stream: str, group: str = "workers") -> int:
    info = await client.xpending(stream, group)
    return int(info["pending"])


async def test_an_error_recorded_by_another_workers_delivery_is_cleared_by_the_read_path(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item slower than claim_idle: another worker takes it over and its delivery fails
    (recorded), then the first delivery succeeds. The acknowledgement that the first worker's
    read carries must clear that error too, although its own delivery was the first one."""
    monkeypatch.setattr(_worker, "_ACK_GATHER", 30.0)  # only a read sends acknowledgements
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
