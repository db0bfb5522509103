"""LW012: reading or writing a whole file inside a coroutine stalls every other task.

`save_attachment()` writes a 64 MB upload with `Path.write_bytes()` and reads it back with
`open()`: while the disk works, the event loop cannot run anything else, so the heartbeat task
misses its beats. The bigger the file, the longer the stall.
"""

import asyncio
import itertools
import tempfile
import time
from pathlib import Path

SIZE = 64 * 1024 * 1024


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def save_attachment(target: Path, data: bytes) -> int:
    target.write_bytes(data)
    with open(target, "rb") as file:  # check what landed on disk
        return len(file.read())


async def main(directory: str) -> None:
    beats: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(heartbeat(beats, stop))
    await asyncio.sleep(0.05)
    saved = await save_attachment(Path(directory) / "upload.bin", bytes(SIZE))
    await asyncio.sleep(0.05)
    stop.set()
    await ticker
    longest = max(b - a for a, b in itertools.pairwise(beats))
    print(f"saved {saved >> 20} MB; longest gap between heartbeats: {longest * 1000:.0f} ms")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(main(directory))
