"""LW002: driving the loop by hand with `asyncio.get_event_loop()`.

Deprecated without a running loop (and an error from Python 3.14 when none was set); it also
skips what `asyncio.run()` does on exit: cancel leftover tasks, close async generators, shut
down the default executor and close the loop.
"""

import asyncio


async def job() -> str:
    await asyncio.sleep(0.01)
    return "done"


def main() -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())  # so this runs on every Python version
    loop = asyncio.get_event_loop()
    print(loop.run_until_complete(job()))
    loop.close()


if __name__ == "__main__":
    main()
