"""LW013 fixed: the coroutine is awaited, so the prices are loaded before the cache changes."""

import asyncio

cache: dict[str, float] = {"tea": 1.0}


async def load_prices() -> dict[str, float]:
    await asyncio.sleep(0.01)
    return {"tea": 1.5, "coffee": 2.0}


async def refresh() -> None:
    fresh = await load_prices()
    cache.clear()
    cache.update(fresh)


async def main() -> None:
    await refresh()
    print(f"cache after refresh: {cache}")


if __name__ == "__main__":
    asyncio.run(main())
