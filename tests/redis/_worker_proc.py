"""A worker process for the fault tests: it takes items and hangs on each, recording in Redis that
it started them, until the test SIGKILLs it. Arguments: redis URL, stream."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio

from loopwise.patterns import Pipeline
from loopwise.redis import WorkQueue


async def main(url: str, stream: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    queue: WorkQueue[int] = WorkQueue(client, stream)

    async def hang(item: int) -> int:
        await client.rpush("started", item)
        await asyncio.sleep(60)
        return item

    async with queue.consume(prefetch=3, claim_idle=60) as worker:
        await Pipeline(worker).stage(worker.step(hang), workers=3).stage(worker.ack).run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
