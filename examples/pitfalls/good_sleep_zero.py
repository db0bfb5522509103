"""LW009, fixed: wait for the event you need, not for one turn of the event loop.

The loader sets an `asyncio.Event` once the entries are in; readers wait for it. (Awaiting
the task itself, a future or `queue.join()` work as well.) `sleep(0)` remains fine as a
cooperative yield inside a long loop.
"""

import asyncio


class Cache:
    def __init__(self) -> None:
        self.entries: dict[str, int] = {}
        self.loaded = asyncio.Event()

    async def load(self) -> None:
        await asyncio.sleep(0.01)  # fetch the entries from a database
        self.entries = {"answer": 42}
        self.loaded.set()


def checksum(data: bytes) -> int:
    return sum(data) % 65521


async def checksum_all(chunks: list[bytes]) -> int:
    total = 0
    for chunk in chunks:
        total += checksum(chunk)
        await asyncio.sleep(0)  # fine: a cooperative yield, once per chunk
    return total


async def main() -> None:
    cache = Cache()
    loader = asyncio.create_task(cache.load())
    await cache.loaded.wait()
    print("answer:", cache.entries.get("answer"))
    print("checksum:", await checksum_all([b"abc"] * 100))
    await loader


if __name__ == "__main__":
    asyncio.run(main())
