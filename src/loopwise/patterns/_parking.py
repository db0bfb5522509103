"""ParkingLot: the one waiting primitive of loopwise's patterns (after trio's ``ParkingLot``)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ParkingLot", "ParkingLotStatistics"]


@dataclass(frozen=True, slots=True)
class ParkingLotStatistics:
    """A snapshot of a :class:`ParkingLot`."""

    waiting: int
    """Tasks parked right now. Woken ones that have not resumed yet are not counted; one whose
    cancellation was requested is, until it resumes and leaves (asyncio cancels at the task's
    next step, not at once)."""
    woken: int
    """Wake-ups handed out so far."""


class ParkingLot:
    """A FIFO of parked tasks, woken explicitly: the waiting part of a lock, a channel or a
    limiter, with the state (what is being waited for) kept by its owner.

    Guarantees:

    * **FIFO.** :meth:`unpark` wakes the tasks that parked first.
    * **A waiter cancelled while parked leaves no trace**: it is removed at once (no stale
      entry is left to skip or to be woken in its place) and the wake-up count is untouched.
    * **A waiter cancelled after being woken**, before it resumed (asyncio lets a cancellation
      land there), still raises ``CancelledError``; its wake-up is reported to ``on_abandoned``
      (given to the constructor) with the wake-up's number, so the owner can hand the wake-up
      on to the next waiter or give back what the wake-up granted. Without ``on_abandoned``
      the wake-up is dropped.
    * :meth:`park` always suspends (a checkpoint), even when the owner would have let it pass.

    Not thread-safe; for one event loop at a time.
    """

    __slots__ = ("_on_abandoned", "_parked", "_woken")

    def __init__(self, *, on_abandoned: Callable[[int], object] | None = None) -> None:
        # future -> [the lot it is parked in (repark() moves it), the waiter's tag]
        self._parked: collections.OrderedDict[asyncio.Future[int], list[Any]] = (
            collections.OrderedDict()
        )
        self._woken = 0
        self._on_abandoned = on_abandoned

    def __len__(self) -> int:
        """The number of tasks parked (not yet woken)."""
        return len(self._parked)

    def __bool__(self) -> bool:
        return bool(self._parked)

    @property
    def woken(self) -> int:
        """Wake-ups handed out so far; also the number of the last one."""
        return self._woken

    async def park(self, tag: object = None) -> int:
        """Wait until :meth:`unpark` wakes this task; return the wake-up's number (1, 2, ...).

        ``tag`` is what the owner wants to know about this waiter before waking it (see
        :meth:`peek`), e.g. how much it asks for. Cancelled while parked: leaves the lot,
        consumes nothing. Cancelled after being woken: the wake-up goes to ``on_abandoned``,
        then ``CancelledError`` propagates.
        """
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        home: list[Any] = [self, tag]
        self._parked[fut] = home
        try:
            return await fut
        except BaseException:
            lot: ParkingLot = home[0]  # the lot that woke it, or the one it is parked in
            if fut.done() and not fut.cancelled():
                if lot._on_abandoned is not None:
                    lot._on_abandoned(fut.result())
            else:
                lot._parked.pop(fut, None)
            raise

    def peek(self, default: object = None) -> object:
        """The tag of the task that :meth:`unpark` would wake next, or ``default``."""
        for fut, home in self._parked.items():
            if not fut.done():
                return home[1]
        return default

    def unpark(self, n: int = 1) -> int:
        """Wake up to ``n`` of the tasks parked first; return how many were woken."""
        parked = self._parked
        woken = 0
        while woken < n and parked:
            fut, _ = parked.popitem(last=False)
            if fut.done():  # cancelled, its task not resumed yet to remove it
                continue
            self._woken += 1
            fut.set_result(self._woken)
            woken += 1
        return woken

    def unpark_all(self) -> int:
        """Wake every parked task; return how many were woken."""
        return self.unpark(len(self._parked))

    def repark(self, other: ParkingLot, n: int = 1) -> int:
        """Move up to ``n`` of the tasks parked first to the end of ``other`` without waking
        them (a condition variable's notify moving waiters to its lock, say). Return how many
        moved. A task moved keeps its place relative to the others moved."""
        if other is self:
            return 0
        moved = 0
        while moved < n and self._parked:
            fut, home = self._parked.popitem(last=False)
            home[0] = other
            other._parked[fut] = home
            moved += 1
        return moved

    def repark_all(self, other: ParkingLot) -> int:
        """Move every parked task to ``other``; see :meth:`repark`."""
        return self.repark(other, len(self._parked))

    def statistics(self) -> ParkingLotStatistics:
        return ParkingLotStatistics(waiting=len(self._parked), woken=self._woken)

    def __repr__(self) -> str:
        return f"<ParkingLot waiting={len(self._parked)} woken={self._woken}>"
