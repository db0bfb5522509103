"""LW005 fixed: sleep with `await asyncio.sleep()`, run the exporter as an asyncio subprocess.

The heartbeat keeps beating every 10 ms while the report is loaded.
"""

import asyncio
import itertools
import sys
import time

EXPORTER = [sys.executable, "-c", "import time; time.sleep(0.1); print('42 orders')"]


async def heartbeat(beats: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        beats.append(time.monotonic())
        await asyncio.sleep(0.01)


async def load_report() -> str:
    await asyncio.sleep(0.2)  # give the exporter's input time to settle
    proc = await asyncio.create_subprocess_exec(*EXPORTER, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await proc.communicate()
    return stdout.decode().strip()


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
