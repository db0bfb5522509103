"""LW101: a `# noqa` names only codes that exist."""

import asyncio


async def main() -> None:
    await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main())
