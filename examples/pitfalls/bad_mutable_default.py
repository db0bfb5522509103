"""LW010: a mutable default argument, shared by every call and every concurrent coroutine.

The default list is created once, when `def` runs. Two requests served at the same time both
append into it across their awaits: each response carries the other one's rows.
"""

import asyncio


async def fetch_rows(user: str, count: int, rows: list[str] = []) -> list[str]:
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
