"""LW011: a handler that swallows the task's cancellation.

`fetch_with_retry()` retries "on any failure" with `except BaseException`. When the
`asyncio.timeout()` around it expires, the `CancelledError` it throws in is caught and
retried like any error: the timeout is silently ignored and the call takes as long as it likes.
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
        except BaseException as exc:
            print(f"attempt {attempt} failed ({type(exc).__name__}): retrying")
    return "gave up"


async def main() -> None:
    started = time.monotonic()
    try:
        async with asyncio.timeout(0.03):
            result = await fetch_with_retry(attempts=3)
    except TimeoutError:
        print("timed out, as asked")
    else:
        elapsed = time.monotonic() - started
        print(f"the 30 ms timeout was ignored: got {result!r} after {elapsed * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
