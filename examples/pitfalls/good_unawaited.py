"""LW001 fixed: every coroutine is awaited (or handed to a task)."""

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
        if await is_allowed(record):
            await save(record)
    print(f"saved {saved}")


if __name__ == "__main__":
    asyncio.run(main())
