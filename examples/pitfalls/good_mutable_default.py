"""LW010, fixed: default to `None` and create the container in the body.

Every call (and every concurrent coroutine) now gets its own list.
"""

import asyncio


async def fetch_rows(user: str, count: int, rows: list[str] | None = None) -> list[str]:
    if rows is None:
        rows = []
    for n in range(count):
        await asyncio.sleep(0.001)  # one query per row
        rows.append(f"{user}-row{n}")
    return rows


async def main() -> None:
    alice, bob = await asyncio.gather(fetch_rows("alice", 2), fetch_rows("bob", 2))
    print("alice sees:", alice)
    print("bob sees:  ", bob)


if __name__ == "__main__":
    asyncio.run(main())
