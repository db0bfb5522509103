"""LW003 fixed: await the coroutine; keep `asyncio.run()` for the program's entry point."""

import asyncio


async def fetch_settings() -> dict[str, int]:
    await asyncio.sleep(0.01)
    return {"workers": 4}


async def main() -> None:
    settings = await fetch_settings()
    print(settings)


if __name__ == "__main__":
    asyncio.run(main())
