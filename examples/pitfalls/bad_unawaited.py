"""LW001: a coroutine called without `await` never runs.

`save()` below is called like a function: Python creates a coroutine object, nobody awaits it,
and the record is silently never saved ("RuntimeWarning: coroutine 'save' was never awaited"
appears only when the object is garbage-collected). `if is_allowed(...)` is always true.
"""

import asyncio

saved: list[str] = []


async def save(record: str) -> None:
    await asyncio.sleep(0.01)
    saved.append(record)


async def is_allowed(record: str) -> bool:
    await asyncio.sleep(0.01)
    return not record.startswith("secret")


async def main() -> None:
    for record in ["a", "secret-b"]:
        if is_allowed(record):  # always true: a coroutine object is truthy
            save(record)  # never runs
    print(f"saved {saved} (expected ['a'])")


if __name__ == "__main__":
    asyncio.run(main())
