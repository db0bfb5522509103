"""LW017 fixed: the helper runs in a worker thread.

The heartbeat keeps beating every 10 ms while `load_rates()` waits.
"""

import asyncio
import itertools
import time


def fetch_rates() -> dict[str, float]:
    time.sleep(0.2)  # a sync HTTP call would wait the same way
    return {"EUR": 1.08}


def load_rates() -> dict[str, float]:
    return fetch_rates()


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def refresh() -> dict[str, float]:
    return await asyncio.to_thread(load_rates)


async def main() -> None:
    beats: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(heartbeat(beats, stop))
    await asyncio.sleep(0.05)
    rates = await refresh()
    await asyncio.sleep(0.05)
    stop.set()
    await ticker
    longest = max(b - a for a, b in itertools.pairwise(beats))
    print(f"rates {rates}; longest gap between heartbeats: {longest * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
