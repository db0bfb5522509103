"""LW005: a blocking call inside a coroutine stalls every other task.

`load_report()` waits with `time.sleep()` and reads its file with `open()`: while it does,
the event loop cannot run anything else, so the heartbeat task misses its beats.
"""

import asyncio
import itertools
import os
import tempfile
import time


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def load_report(path: str) -> str:
    time.sleep(0.2)  # wait for the exporter to finish writing
    with open(path, encoding="utf-8") as file:
        return file.read()


async def main(path: str) -> None:
    beats: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(heartbeat(beats, stop))
    await asyncio.sleep(0.05)
    report = await load_report(path)
    await asyncio.sleep(0.05)
    stop.set()
    await ticker
    longest = max(b - a for a, b in itertools.pairwise(beats))
    print(f"report: {report!r}; longest gap between heartbeats: {longest * 1000:.0f} ms")


def write_report(directory: str) -> str:
    path = os.path.join(directory, "report.txt")
    with open(path, "w", encoding="utf-8") as file:
        file.write("42 orders")
    return path


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(write_report(directory)))
