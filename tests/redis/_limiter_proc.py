"""A process sharing a rate limit: it acquires in a loop (bounded in count and time) and prints
the Redis time of each grant, in microseconds. Arguments: redis URL, key, rate, burst, seconds,
tasks."""

from __future__ import annotations

import asyncio
import sys
import time

import redis.asyncio

from loopwise.redis import SharedRateLimiter


async def main(url: str, key: str, rate: float, burst: int, seconds: float, tasks: int) -> None:
    client = redis.asyncio.Redis.from_url(url)
    limiter = SharedRateLimiter(client, key, rate, burst=burst)
    grants: list[int] = []
    deadline = time.monotonic() + seconds

    async def take() -> None:
        for _ in range(1000):
            if time.monotonic() >= deadline:
                return
            await limiter.acquire()
            granted_at = limiter.statistics().last_grant  # read before any other task runs
            assert granted_at is not None
            grants.append(round(granted_at * 1_000_000))

    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(take())
    await client.aclose()
    print(" ".join(map(str, grants)))


if __name__ == "__main__":
    url, key, rate, burst, seconds, tasks = sys.argv[1:]
    asyncio.run(main(url, key, float(rate), int(burst), float(seconds), int(tasks)))
