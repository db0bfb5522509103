"""LW009: `await asyncio.sleep(0)` used to wait for another task.

sleep(0) lets every ready task run one step, and nothing more. Whether the task you wait for
got far enough depends on how many awaits it passes, on its I/O and on the event loop: here
the cache loader has only just started when the caller reads the cache.
"""

import asyncio


class Cache:
    def __init__(self) -> None:
        self.entries: dict[str, int] = {}

    async def load(self) -> None:
        await asyncio.sleep(0.01)  # fetch the entries from a database
        self.entries = {"answer": 42}


async def main() -> None:
    cache = Cache()
    loader = asyncio.create_task(cache.load())
    await asyncio.sleep(0)  # "give the loader a chance to run"
    print("answer:", cache.entries.get("answer"))  # None: the loader is still fetching
    await loader


if __name__ == "__main__":
    asyncio.run(main())
