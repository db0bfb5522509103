"""LW002 fixed: `asyncio.run()` creates, runs and cleanly closes the loop."""

import asyncio


async def job() -> str:
    await asyncio.sleep(0.01)
    return "done"


def main() -> None:
    print(asyncio.run(job()))


if __name__ == "__main__":
    main()
