"""LW004 fixed: the background refresh belongs to a TaskGroup, so its failure is handled.

The task group awaits the refresh task; when it fails, the error comes out of the `async with`
block (as an ExceptionGroup, matched with `except*`) at the place that started the work, and
the program decides what to do: here, keep serving the cached prices and say so.
"""

import asyncio

PRICES = {"apple": 1.00}


async def refresh(source: str) -> None:
    await asyncio.sleep(0.01)  # ask the price source
    if source == "backup":
        raise ConnectionError(f"price source {source!r} is unreachable")
    PRICES["apple"] = 1.10


async def main() -> None:
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(refresh("backup"))
            await asyncio.sleep(0.05)  # serve requests meanwhile
    except* ConnectionError as group:
        print(f"refresh failed ({group.exceptions[0]}); serving cached prices {PRICES}")


if __name__ == "__main__":
    asyncio.run(main())
