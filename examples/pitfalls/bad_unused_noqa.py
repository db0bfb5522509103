"""LW100: a `# noqa` code that suppresses nothing.

The call below was fixed long ago (it is awaited now), but its `# noqa: LW001` stayed: the next
real problem on this line would be hidden without anyone deciding it should be.
"""

import asyncio


async def save() -> None:
    await asyncio.sleep(0.01)


async def main() -> None:
    await save()  # noqa: LW001


if __name__ == "__main__":
    asyncio.run(main())
