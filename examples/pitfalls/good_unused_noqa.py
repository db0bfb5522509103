"""LW100: the fixed call no longer carries a `# noqa`."""

import asyncio


async def save() -> None:
    await asyncio.sleep(0.01)


async def main() -> None:
    await save()


if __name__ == "__main__":
    asyncio.run(main())
