"""LW007 fixed: the read and the write of the balance happen under one `asyncio.Lock`."""

import asyncio


class Account:
    def __init__(self) -> None:
        self.balance = 0
        self.journal: list[str] = []
        self._lock = asyncio.Lock()

    async def audit(self, entry: str) -> None:
        await asyncio.sleep(0.01)  # e.g. an INSERT into the audit table
        self.journal.append(entry)

    async def deposit(self, amount: int) -> None:
        async with self._lock:
            balance = self.balance
            await self.audit(f"deposit {amount}")
            self.balance = balance + amount

    async def withdraw(self, amount: int) -> None:
        await self.audit(f"withdraw {amount}")
        self.balance -= amount  # no await between the read and the write: no lock needed


async def main() -> None:
    account = Account()
    await asyncio.gather(*(account.deposit(10) for _ in range(10)), account.withdraw(5))
    print(f"{len(account.journal)} entries, balance {account.balance} (expected 95)")


if __name__ == "__main__":
    asyncio.run(main())
