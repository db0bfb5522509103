"""LW018 fixed: the stat() calls run in a worker thread.

The heartbeat keeps beating while the 20 000 sizes are read.
"""

import asyncio
import itertools
import os
import os.path
import tempfile
import time

FILES = 200
ROUNDS = 100


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.005)


async def inventory(paths: list[str]) -> int:
    return await asyncio.to_thread(lambda: sum(os.path.getsize(path) for path in paths))


async def main(directory: str) -> None:
    paths = []
    for n in range(FILES):
        path = os.path.join(directory, f"{n}.txt")
        with open(path, "w") as file:
            file.write("x" * n)
        paths.append(path)
    beats: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(heartbeat(beats, stop))
    await asyncio.sleep(0.02)
    total = await inventory(paths * ROUNDS)
    await asyncio.sleep(0.02)
    stop.set()
    await ticker
    longest = max(b - a for a, b in itertools.pairwise(beats))
    print(f"{total} bytes; longest gap between heartbeats: {longest * 1000:.0f} ms")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(directory))
