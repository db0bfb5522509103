"""LW012 fixed: the whole-file write and read run in a worker thread.

The heartbeat keeps beating every 10 ms while the 64 MB upload is written and read back.
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
    await asyncio.to_thread(target.write_bytes, data)
    written = await asyncio.to_thread(target.read_bytes)  # check what landed on disk
    return len(written)


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
