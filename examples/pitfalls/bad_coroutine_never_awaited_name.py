"""LW013: a coroutine kept in a name that nobody awaits never runs.

`refresh()` meant to load the new prices, but `load_prices()` without `await` only creates a
coroutine object: the cache is cleared and never filled again. Python warns "coroutine
'load_prices' was never awaited" only when the object is garbage-collected.
"""

import asyncio

cache: dict[str, float] = {"tea": 1.0}


async def load_prices() -> dict[str, float]:
    await asyncio.sleep(0.01)
    return {"tea": 1.5, "coffee": 2.0}


async def refresh() -> None:
    fresh = load_prices()
    cache.clear()


async def main() -> None:
    await refresh()
    print(f"cache after refresh: {cache} (expected two prices)")


if __name__ == "__main__":
    asyncio.run(main())
