"""LW007: a balance written back after an `await` loses concurrent updates.

`deposit()` reads the balance, awaits the audit log, then writes back `balance + amount`.
Ten deposits run at once: while one is suspended in `audit()`, the others read the same old
balance, so every deposit but the last is silently lost.
"""

import asyncio


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.journal: list[str] = []

    async def audit(self, entry: str) -> None:
        await asyncio.sleep(0.01)  # e.g. an INSERT into the audit table
        self.journal.append(entry)

    async def deposit(self, amount: int) -> None:
        balance = self.balance
        await self.audit(f"deposit {amount}")
        self.balance = balance + amount


async def main() -> None:
    account = Account()
    await asyncio.gather(*(account.deposit(10) for _ in range(10)))
    print(f"{len(account.journal)} deposits of 10, balance {account.balance} (expected 100)")


if __name__ == "__main__":
    asyncio.run(main())
