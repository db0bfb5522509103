"""LW005 fixed: sleep with `await asyncio.sleep()`, read the file in a worker thread.

The heartbeat keeps beating every 10 ms while the report is loaded.
"""

import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def load_report(path: str) -> str:
    await asyncio.sleep(0.2)  # wait for the exporter to finish writing
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


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
