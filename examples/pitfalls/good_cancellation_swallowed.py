"""LW011 fixed: retry on errors (`except Exception`), let cancellation through.

The timeout now stops the call after 30 ms. Stopping a background task with `task.cancel()`
and then awaiting it under `except asyncio.CancelledError: pass` is the standard idiom, and is
fine.
"""

import asyncio
import time


async def slow_upstream() -> str:
    await asyncio.sleep(0.1)
    return "data"


async def fetch_with_retry(attempts: int) -> str:
    for attempt in range(1, attempts + 1):
        try:
            return await slow_upstream()
        except Exception as exc:
            print(f"attempt {attempt} failed ({type(exc).__name__}): retrying")
    return "gave up"


async def tick(ticks: list[float]) -> None:
    while True:
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


async def main() -> None:
    ticks: list[float] = []
    ticker = asyncio.create_task(tick(ticks))
    started = time.monotonic()
    try:
        async with asyncio.timeout(0.03):
            result = await fetch_with_retry(attempts=3)
    except TimeoutError:
        elapsed = time.monotonic() - started
        print(f"timed out after {elapsed * 1000:.0f} ms, as asked")
    else:
        print(f"got {result!r}")
    ticker.cancel()
    try:
        await ticker
    except asyncio.CancelledError:
        pass
    print(f"the ticker ticked {len(ticks)} times and was stopped")


if __name__ == "__main__":
    asyncio.run(main())
