"""ParkingLot, and the same waiting contract checked on every primitive built on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import CapacityLimiter, RateLimiter, amap
from loopwise._exceptions import ClosedError
from loopwise.patterns._channel import _Channel, _Drained
from loopwise.patterns._parking import ParkingLot
from tests.patterns._virtual import virtual, vloop


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


# -- the primitive ------------------------------------------------------------------------------


@virtual
async def test_unpark_wakes_in_fifo_order_and_numbers_the_wakeups() -> None:
    lot = ParkingLot()
    order: list[tuple[int, int]] = []

    async def waiter(i: int) -> None:
        order.append((i, await lot.park()))

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await settle()
    assert len(lot) == 5 and lot.statistics().waiting == 5
    assert lot.unpark(2) == 2
    await settle()
    assert order == [(0, 1), (1, 2)]
    assert lot.unpark_all() == 3 and lot.unpark() == 0
    await asyncio.gather(*tasks)
    assert order == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert "waiting=0 woken=5" in repr(lot)


@virtual
async def test_a_waiter_cancelled_while_parked_leaves_no_trace() -> None:
    lot = ParkingLot(on_abandoned=lambda n: pytest.fail("not woken, nothing to hand on"))
    a = asyncio.create_task(lot.park())
    b = asyncio.create_task(lot.park())
    await settle()
    a.cancel()
    assert lot.unpark() == 1  # cancelled but not yet resumed: skipped, b is woken
    assert await b == 1 and lot.woken == 1
    with pytest.raises(asyncio.CancelledError):
        await a
    assert len(lot) == 0 and not lot


@virtual
async def test_a_waiter_cancelled_after_being_woken_reports_its_wakeup() -> None:
    abandoned: list[int] = []
    lot = ParkingLot(on_abandoned=abandoned.append)
    a = asyncio.create_task(lot.park())
    await settle()
    lot.unpark()
    a.cancel()  # woken, not resumed yet
    with pytest.raises(asyncio.CancelledError):
        await a
    assert abandoned == [1]


@virtual
async def test_repark_moves_waiters_without_waking_them() -> None:
    first, second = ParkingLot(), ParkingLot()
    woken: list[str] = []

    async def waiter(name: str) -> None:
        await first.park()
        woken.append(name)

    tasks = {n: asyncio.create_task(waiter(n)) for n in "abc"}
    await settle()
    assert first.repark(second, 2) == 2 and first.repark(first) == 0
    assert (len(first), len(second)) == (1, 2)
    tasks["b"].cancel()  # cancelled in the lot it was moved to
    await settle()
    assert len(second) == 1
    assert second.unpark_all() == 1 and first.repark_all(second) == 1
    assert second.unpark_all() == 1
    await settle()
    assert woken == ["a", "c"] and tasks["b"].cancelled()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["park", "cancel", "unpark", "wake_cancel"]), max_size=40))
def test_property_fifo_no_lost_or_double_wakeups(ops: list[str]) -> None:
    @virtual
    async def run() -> None:
        lot = ParkingLot(on_abandoned=lambda n: lot.unpark())  # hand the wake-up on
        parked: list[asyncio.Task[int]] = []
        handed = 0
        for op in ops:
            live = [t for t in parked if not t.done() and not t.cancelling()]
            if op == "park":
                parked.append(asyncio.create_task(lot.park()))
            elif op == "cancel" and live:
                live[-1].cancel()
            elif op == "unpark":
                handed += lot.unpark()
            elif op == "wake_cancel" and live:
                woke = lot.unpark()
                handed += woke
                if woke:
                    live[0].cancel()  # the woken one (FIFO) is cancelled before it resumes
            await settle()
        lot.unpark_all()
        await settle()
        results = [t.result() for t in parked if not t.cancelled()]
        assert results == sorted(results)  # FIFO: earlier parkers got earlier wake-ups
        assert len(set(results)) == len(results)
        assert all(t.done() for t in parked) and len(lot) == 0

    run()


# -- the contract, on every user ----------------------------------------------------------------


class Harness:
    """One primitive built on ParkingLot. ``waiter()`` starts a task that parks; ``wake_one()``
    makes the event that wakes one waiter happen and returns before that waiter resumed;
    ``close`` (when the primitive can be closed) must finish every waiter."""

    lot: ParkingLot
    close: Callable[[], Awaitable[None]] | None = None

    async def setup(self) -> None:
        raise NotImplementedError

    def waiter(self) -> asyncio.Task[Any]:
        raise NotImplementedError

    async def wake_one(self) -> None:
        raise NotImplementedError


class ChannelGetters(Harness):
    async def setup(self) -> None:
        self.channel = _Channel(2)
        self.lot = self.channel.getters
        self.close = self._close

    async def _close(self) -> None:
        self.channel.close()

    def waiter(self) -> asyncio.Task[Any]:
        return asyncio.create_task(self.channel.get())

    async def wake_one(self) -> None:
        await self.channel.put("item")  # room: returns without suspending


class ChannelPutters(Harness):
    async def setup(self) -> None:
        self.channel = _Channel(1)
        await self.channel.put("full")
        self.lot = self.channel.putters
        self.close = self._close

    async def _close(self) -> None:
        self.channel.close()

    def waiter(self) -> asyncio.Task[Any]:
        return asyncio.create_task(self.channel.put("more"))

    async def wake_one(self) -> None:
        await self.channel.get()  # an item is there: returns without suspending


class Limiter(Harness):
    async def setup(self) -> None:
        self.limiter = RateLimiter(10)
        await self.limiter.acquire()  # the next slot is 0.1 s away
        self.lot = self.limiter._waiters

    def waiter(self) -> asyncio.Task[Any]:
        return asyncio.create_task(self.limiter.acquire())

    async def wake_one(self) -> None:
        vloop().stall(0.1)  # the head waiter's slot is due...
        await asyncio.sleep(0)  # ...the limiter's timer runs after this task's step...
        await asyncio.sleep(0)  # ...and this step comes before the granted waiter resumes


class Capacity(Harness):
    async def setup(self) -> None:
        self.limiter = CapacityLimiter(1)
        await self.limiter.acquire()
        self.lot = self.limiter._lot

    def waiter(self) -> asyncio.Task[Any]:
        return asyncio.create_task(self.limiter.acquire())

    async def wake_one(self) -> None:
        self.limiter.release()  # handed to the head waiter without suspending


class AmapWindow(Harness):
    """Workers of amap waiting for the consumer to make room in the window."""

    async def setup(self) -> None:
        async def fn(x: int) -> int:
            return x

        self.results = amap(fn, range(100), concurrency=2, buffer=0)
        await self.results.__aenter__()
        await settle()  # both workers ran ahead and now wait for room
        self.lot = self.results._s.space
        self.ahead = len(self.lot)
        assert self.ahead == 2
        self.close = self.results.aclose

    def waiter(self) -> asyncio.Task[Any]:
        return asyncio.create_task(self.lot.park())

    async def wake_one(self) -> None:
        self.lot.unpark(1 + self.ahead)  # the workers parked first, then ours
        self.ahead = 0


HARNESSES = [ChannelGetters, ChannelPutters, Limiter, Capacity, AmapWindow]


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda h: h.__name__)
@virtual
async def test_contract_cancel_while_waiting_leaves_no_trace(harness: type[Harness]) -> None:
    h = harness()
    await h.setup()
    before = len(h.lot)
    a, b = h.waiter(), h.waiter()
    await settle()
    assert len(h.lot) == before + 2
    a.cancel()
    await settle()
    assert a.cancelled() and len(h.lot) == before + 1
    await h.wake_one()
    async with asyncio.timeout(1):
        await b  # the one wake-up went to b, not to the cancelled a
    if h.close is not None:
        await h.close()


@pytest.mark.parametrize("harness", HARNESSES, ids=lambda h: h.__name__)
@virtual
async def test_contract_cancel_after_being_woken_hands_the_wakeup_on(
    harness: type[Harness],
) -> None:
    h = harness()
    await h.setup()
    a, b = h.waiter(), h.waiter()
    await settle()
    await h.wake_one()
    a.cancel()  # woken, not resumed yet
    await settle()
    assert a.cancelled()
    async with asyncio.timeout(1):
        await b  # no second event needed
    if h.close is not None:
        await h.close()


@pytest.mark.parametrize(
    "harness", [h for h in HARNESSES if h not in (Limiter, Capacity)], ids=lambda h: h.__name__
)
@virtual
async def test_contract_close_wakes_every_waiter(harness: type[Harness]) -> None:
    h = harness()
    await h.setup()
    waiters = [h.waiter() for _ in range(5)]
    await settle()
    assert h.close is not None
    await h.close()
    async with asyncio.timeout(1):
        done = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(r is None or isinstance(r, int | ClosedError | _Drained) for r in done), done
    assert len(h.lot) == 0
