"""The bounded, closable channel between the stages of a Pipeline."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from loopwise._exceptions import ClosedError
from loopwise.patterns._parking import ParkingLot

__all__ = ["EMPTY", "_Channel", "_Drained"]


class _Drained(Exception):
    """A closed channel has no more items."""


EMPTY: Any = object()
"""What ``_Channel.try_get()`` returns when there is no item."""


class _Handoff:
    """A waiting ``put(handoff=True)``'s item, moved into the channel by the getter."""

    __slots__ = ("added", "item")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.added = False


class _Channel:
    """A bounded FIFO with close(): ``get()`` drains what is left and then raises _Drained.

    Cancellation-safe: a cancelled ``put()`` adds nothing (except a ``put(handoff=True)``
    whose item was moved in before the cancellation reached it: see :meth:`put`); a cancelled
    ``get()`` takes nothing; a wake-up delivered to a task cancelled before it resumed is
    passed to the next waiter while there is still an item (for getters) or room (for
    putters).

    Getters are woken one at a time: an item added wakes a waiting getter only when no getter
    is already woken and not yet resumed, and each take wakes the next one while items are
    left. So a getter that never suspends between its takes drains the channel alone (no task
    switch per item). When a getter woken that way still finds items left, the getters before
    it did suspend: it wakes one getter per item left at once, so a burst puts every worker to
    work within a few loop turns, not one turn per worker. Never is an item left in the channel
    with getters waiting and none of them woken.
    """

    __slots__ = (
        "_closed",
        "_getter_woken",
        "_items",
        "_maxsize",
        "_woken_by_take",
        "added",
        "blocked_puts",
        "getters",
        "on_blocked",
        "putters",
    )

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[Any] = collections.deque()
        self._maxsize = maxsize
        self.getters = ParkingLot(on_abandoned=self._getter_abandoned)
        self.putters = ParkingLot(on_abandoned=self._putter_abandoned)
        self._closed = False
        self._getter_woken = False  # a getter was woken and has not resumed yet
        self._woken_by_take = False  # ...by a take that left items behind (not by an add)
        self.added = 0
        """Items added so far (by ``put()`` or moved in for a waiting ``put(handoff=True)``)."""
        self.blocked_puts = 0
        """``put()`` calls waiting for room right now."""
        self.on_blocked: Callable[[], object] | None = None
        """Called when a ``put()`` starts waiting for room."""

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def full(self) -> bool:
        return len(self._items) >= self._maxsize

    def close(self) -> None:
        self._closed = True
        self.getters.unpark_all()
        self.putters.unpark_all()

    def try_put(self, item: Any) -> bool:
        """``put()`` without waiting: add ``item`` if there is room; ``False`` if it is full or
        closed (then ``await put()`` waits or raises). Same effect as a ``put()`` that did not
        wait, without a coroutine (a pipeline worker's fast path)."""
        if self._closed or len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        self.added += 1
        if not self._getter_woken and self.getters._parked:  # plain checks: once per item
            self._wake_getter()
        return True

    def try_get(self) -> Any:
        """``get()`` without waiting: an item, or ``EMPTY`` (then ``await get()`` waits or
        raises ``_Drained``). Same effect as a ``get()`` that did not wait. (The take itself is
        written here, not in a helper: it runs once per item and stage.)"""
        items = self._items
        if not items:
            return EMPTY
        item = items.popleft()
        if items and not self._getter_woken and self.getters._parked:
            self._wake_getter(by_take=True)  # items are left: the next getter to work
        putters = self.putters
        if putters._parked:
            box = putters.peek()
            if box.__class__ is _Handoff and not self._closed:
                items.append(box.item)
                self.added += 1
                box.added = True
                if not self._getter_woken and self.getters._parked:
                    self._wake_getter()  # as the put would: a waiting worker takes it at once
            putters.unpark()
        return item

    async def put(self, item: Any, *, handoff: bool = False) -> None:
        """Add ``item``, waiting while the channel is full. With ``handoff=True`` a waiting
        put's item is moved into the channel by the ``get()`` that makes room, before this task
        resumes: the getter finds it there without waiting for this task to run (a pipeline
        worker's put). The price: cancelled after that move, before it resumed, the put raises
        ``CancelledError`` although its item was added (fine for a worker, which is cancelled
        only when its pipeline stops; not for ``Pipeline.put()``)."""
        while len(self._items) >= self._maxsize and not self._closed:
            box = _Handoff(item) if handoff else None
            self.blocked_puts += 1
            try:
                if self.on_blocked is not None:
                    self.on_blocked()
                await self.putters.park(box)
            finally:
                self.blocked_puts -= 1
            if box is not None and box.added:
                return
        if self._closed:
            raise ClosedError("the pipeline channel is closed")
        self._items.append(item)
        self.added += 1
        if not self._getter_woken:
            self._wake_getter()

    async def get(self) -> Any:
        spread = False
        while not self._items:
            if self._closed:
                raise _Drained
            await self.getters.park()
            self._getter_woken = False  # resumed: it takes an item or parks again
            spread = self._woken_by_take
        item = self.try_get()
        if spread and self._items and self.getters._parked:
            # Items a take left behind are still there now that this getter runs: the getters
            # before it suspend in their work. One getter per item left, at once.
            self.getters.unpark(len(self._items))
        return item

    def _wake_getter(self, *, by_take: bool = False) -> None:
        self._getter_woken = self.getters.unpark() > 0
        self._woken_by_take = by_take

    def _getter_abandoned(self, _wakeup: int) -> None:
        self._getter_woken = False
        if self._items:
            self._wake_getter(by_take=self._woken_by_take)  # its item is still there

    def _putter_abandoned(self, _wakeup: int) -> None:
        if len(self._items) < self._maxsize:
            self.putters.unpark()
