"""LW005: a blocking call inside a coroutine stalls every other task.

`load_report()` waits with `time.sleep()` and runs the exporter with `subprocess.run()`: while
it does, the event loop cannot run anything else, so the heartbeat task misses its beats.
"""

import asyncio
import itertools
import subprocess
import sys
import time

EXPORTER = [sys.executable, "-c", "import time; time.sleep(0.1); print('42 orders')"]


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def load_report() -> str:
    time.sleep(0.2)  # give the exporter's input time to settle
    done = subprocess.run(EXPORTER, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def main() -> None:
    beats: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(heartbeat(beats, stop))
    await asyncio.sleep(0.05)
    report = await load_report()
    await asyncio.sleep(0.05)
    stop.set()
    await ticker
    longest = max(b - a for a, b in itertools.pairwise(beats))
    print(f"report: {report!r}; longest gap between heartbeats: {longest * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
