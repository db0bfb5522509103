"""LW006, fixed: look at what `gather(..., return_exceptions=True)` returns.

Each result is either a value or the exception its awaitable raised: report the failures
(or drop `return_exceptions=True` and let the first failure propagate).
"""

import asyncio

SENT: list[str] = []


async def send_mail(address: str) -> None:
    await asyncio.sleep(0.01)
    if "@" not in address:
        raise ValueError(f"invalid address {address!r}")
    SENT.append(address)


async def notify_all(addresses: list[str]) -> list[str]:
    """Send every mail; return the addresses that failed."""
    results = await asyncio.gather(*(send_mail(a) for a in addresses), return_exceptions=True)
    failed = []
    for address, result in zip(addresses, results, strict=True):
        if isinstance(result, Exception):
            print(f"mail to {address} failed: {result}")
            failed.append(address)
    return failed


async def main() -> None:
    addresses = ["ada@example.org", "grace.example.org", "linus@example.org"]
    failed = await notify_all(addresses)
    print(f"notified {len(SENT)} of {len(addresses)}; {len(failed)} to retry")


if __name__ == "__main__":
    asyncio.run(main())
