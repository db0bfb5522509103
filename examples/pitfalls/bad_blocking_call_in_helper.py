"""LW017: a coroutine calls a sync helper that sleeps: the whole event loop waits with it.

`refresh()` looks harmless: it calls `load_rates()`, a plain function. But that helper waits
0.2 s for a "remote" answer with `time.sleep()` (standing in for `requests.get()`), so the
heartbeat task misses its beats for as long.
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
    return load_rates()


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
