"""CapacityLimiter: at most N holders at once, FIFO, with statistics."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from loopwise._exceptions import UsageError
from loopwise.patterns._parking import ParkingLot

__all__ = ["CapacityLimiter", "CapacityLimiterStatistics"]


@dataclass(frozen=True, slots=True)
class CapacityLimiterStatistics:
    """A snapshot of a :class:`CapacityLimiter`."""

    total_tokens: int
    """How many holders are allowed at once."""
    borrowed_tokens: int
    """Holders right now (may exceed ``total_tokens`` for a while after it was lowered)."""
    waiting: int
    """Tasks queued in ``acquire()``."""
    acquired: int
    """Acquisitions granted so far."""


class CapacityLimiter:
    """Limit how many things happen at once: at most ``total_tokens`` holders.

    ``async with limiter:`` (or ``acquire()`` ... ``release()``) holds one token for the block.
    Unlike :class:`asyncio.Semaphore`:

    * **FIFO, no barging.** A released token goes straight to the task that has waited longest;
      a newcomer never takes it first, even when it arrives between the release and the
      waiter's resumption.
    * **Cancellation.** A waiter cancelled while queued leaves no trace. One cancelled after a
      token was handed to it, before it resumed, passes the token on (or returns it).
    * ``total_tokens`` can be changed while in use: raising it wakes waiters at once; lowering it
      lets current holders finish (new ones wait until the count is below the new total).
    * ``release()`` with no token borrowed raises :class:`~loopwise.UsageError` instead of
      silently raising the capacity. Tokens are counted, not tied to tasks: a release by a
      task that holds none, while others hold tokens, is not detected.
    * ``statistics()`` and a live ``repr()``.

    Not thread-safe; for one event loop at a time. May be created outside a running loop.
    """

    __slots__ = ("_acquired", "_borrowed", "_lot", "_total")

    def __init__(self, total_tokens: int) -> None:
        self._total = _check_total(total_tokens)
        self._borrowed = 0
        self._acquired = 0
        self._lot = ParkingLot(on_abandoned=self._abandoned)

    @property
    def total_tokens(self) -> int:
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: int) -> None:
        self._total = _check_total(value)
        while self._borrowed < self._total and self._lot.unpark():
            self._borrowed += 1
            self._acquired += 1

    @property
    def borrowed_tokens(self) -> int:
        return self._borrowed

    @property
    def available_tokens(self) -> int:
        return max(0, self._total - self._borrowed)

    async def acquire(self) -> None:
        """Wait for a token and take it. Returns without suspending when one is free and nobody
        waits. Cancelling a waiting call takes nothing."""
        if self.try_acquire():
            return
        await self._lot.park()  # woken = the token was handed over (counted by release())

    def try_acquire(self) -> bool:
        """Take a token if one is free and nobody waits; never waits. Returns whether it did."""
        if self._borrowed < self._total and not self._lot:
            self._borrowed += 1
            self._acquired += 1
            return True
        return False

    def release(self) -> None:
        """Give a token back: to the longest waiter if there is one and room, else to the pool."""
        if self._borrowed <= 0:
            raise UsageError(
                "CapacityLimiter.release() without a matching acquire(): use `async with "
                "limiter:` to pair them"
            )
        if self._borrowed <= self._total and self._lot.unpark():
            self._acquired += 1  # handed straight to the waiter: still borrowed
            return
        self._borrowed -= 1

    def _abandoned(self, _wakeup: int) -> None:
        # a token was handed to a waiter cancelled before it resumed: pass it on
        self._acquired -= 1
        self.release()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def statistics(self) -> CapacityLimiterStatistics:
        return CapacityLimiterStatistics(
            total_tokens=self._total,
            borrowed_tokens=self._borrowed,
            waiting=len(self._lot),
            acquired=self._acquired,
        )

    def __repr__(self) -> str:
        return (
            f"<CapacityLimiter borrowed={self._borrowed}/{self._total} "
            f"waiting={len(self._lot)} acquired={self._acquired}>"
        )


def _check_total(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"total_tokens must be an int >= 1, got {value!r}")
    return value
