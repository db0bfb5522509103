"""LW004: a background task whose failure nobody ever sees.

`schedule_refresh()` starts the price refresh as a task and drops it. The refresh fails, but
nobody awaits the task, so the error is reported only when the task object is destroyed — as
"Task exception was never retrieved", far from the cause and without the line that started
it — while the program carries on serving stale prices as if nothing had happened.
"""

import asyncio

PRICES = {"apple": 1.00}


async def refresh(source: str) -> None:
    await asyncio.sleep(0.01)  # ask the price source
    if source == "backup":
        raise ConnectionError(f"price source {source!r} is unreachable")
    PRICES["apple"] = 1.10


async def schedule_refresh(source: str) -> None:
    asyncio.create_task(refresh(source))  # fire and forget: its failure is lost


async def main() -> None:
    await schedule_refresh("backup")
    await asyncio.sleep(0.05)  # serve requests meanwhile
    print(f"serving prices {PRICES} (the refresh failed, and nobody noticed)")


if __name__ == "__main__":
    asyncio.run(main())
