"""LW101: a `# noqa` comment naming a code that is no loopwise rule.

`LW01` is a typo for `LW001`: it suppresses nothing, and a reader believes the line is covered.
"""

import asyncio


async def main() -> None:
    await asyncio.sleep(0.01)  # noqa: LW01


if __name__ == "__main__":
    asyncio.run(main())
