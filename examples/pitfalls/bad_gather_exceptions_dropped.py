"""LW006: `gather(..., return_exceptions=True)` whose result nobody looks at.

With `return_exceptions=True`, gather() never raises: each failure is returned in the result
list instead. Throw the list away and every failure vanishes: here one mail is never sent
and the program happily reports success.
"""

import asyncio

SENT: list[str] = []


async def send_mail(address: str) -> None:
    await asyncio.sleep(0.01)
    if "@" not in address:
        raise ValueError(f"invalid address {address!r}")
    SENT.append(address)


async def notify_all(addresses: list[str]) -> None:
    await asyncio.gather(*(send_mail(a) for a in addresses), return_exceptions=True)


async def main() -> None:
    addresses = ["ada@example.org", "grace.example.org", "linus@example.org"]
    await notify_all(addresses)
    print(f"notified everyone (actually {len(SENT)} of {len(addresses)})")


if __name__ == "__main__":
    asyncio.run(main())
