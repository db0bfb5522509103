"""RateLimiter: a FIFO token bucket (GCRA) driven by one timer."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from types import TracebackType

from loopwise.patterns._parking import ParkingLot

__all__ = ["RateLimiter", "RateLimiterStatistics"]


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """A snapshot of a :class:`RateLimiter`."""

    rate: float
    """Acquisitions allowed per ``per`` seconds."""
    per: float
    burst: int
    waiting: int
    """Tasks queued in ``acquire()`` right now."""
    acquired: int
    """Acquisitions granted so far (``acquire(n)`` counts n): slots of the schedule spent. A
    waiter cancelled after its grant, before it resumed, gives its slots back when nothing was
    granted after it (then they are not counted); otherwise they stay spent and counted."""
    delayed: int
    """Of those, how many had to wait."""
    available: float
    """Acquisitions that would be granted at once, now (0 to ``burst``)."""


class RateLimiter:
    """Limit how often something happens: at most ``rate`` acquisitions per ``per`` seconds.

    ``async with limiter:`` or ``await limiter.acquire()`` waits until the call is allowed.

    Guarantees:

    * **Window bound.** In *any* time window of length ``W`` seconds (not just aligned ones) at
      most ``burst + rate * W / per`` acquisitions are granted. With the default ``burst=1`` two
      acquisitions are never closer than ``per / rate`` seconds. The limiter starts with ``burst``
      acquisitions available (not a full second's worth: ``RateLimiter(100)`` grants 101 in the
      first second at most, never 200).
    * **FIFO.** Waiters are served in the order they called ``acquire()``; a newcomer never
      overtakes a queued waiter, even when a slot is free at the moment it arrives.
    * **Catch-up.** The schedule is kept on the loop's clock, not by adding up sleeps: when the
      loop ran late, every acquisition whose slot has passed is granted at once, up to ``burst``.
      (With ``burst=1`` the window bound itself forbids catching up; use ``burst=2`` or more to
      hold the target rate on a busy loop.)
    * **One timer.** However many tasks wait, the limiter keeps one timer handle and wakes each
      waiter exactly once, when it is granted.
    * **Cancellation.** A waiter cancelled while queued leaves the queue and consumes nothing. A
      waiter cancelled after being granted but before it resumed gives the slot back when no one
      was granted after it.

    The limiter is not thread-safe and must be used from one event loop at a time; it may be
    created outside a running loop.
    """

    __slots__ = (
        "_acquired",
        "_burst",
        "_delayed",
        "_interval",
        "_last_amount",
        "_last_grant",
        "_loop",
        "_per",
        "_rate",
        "_slack",
        "_tat",
        "_timer",
        "_timer_when",
        "_waiters",
    )

    def __init__(self, rate: float, *, per: float = 1.0, burst: int = 1) -> None:
        check_rate(rate, per, burst)
        self._rate = float(rate)
        self._per = float(per)
        self._burst = burst
        self._interval = self._per / self._rate
        # GCRA: an acquisition at time `now` is allowed when now >= tat - slack; it then moves the
        # theoretical arrival time to max(tat, now) + interval. Equivalent to a token bucket of
        # capacity `burst` refilled at rate/per, starting full.
        self._slack = (burst - 1) * self._interval
        self._tat = -math.inf
        self._waiters = ParkingLot(on_abandoned=self._give_back)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_grant = 0  # the wake-up number of the last grant to a waiter; 0: none since
        self._last_amount = 0
        self._acquired = 0
        self._delayed = 0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def per(self) -> float:
        return self._per

    @property
    def burst(self) -> int:
        return self._burst

    async def acquire(self, amount: int = 1) -> None:
        """Wait until ``amount`` acquisitions are allowed, then take them at once.

        ``amount`` (default 1, at most ``burst``) weighs the call: ``acquire(5)`` counts as five
        acquisitions against the rate (bytes, tokens, cost units). Waiters are served in FIFO
        order whatever their amount, so a large request at the head makes the ones behind it
        wait (no overtaking). Returns without suspending when the amount is available and
        nobody is queued. Cancelling a waiting call takes nothing from the limiter.
        """
        self._check_amount(amount)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters and self._allows(now, amount):
            self._take(now, amount)
            self._last_grant = 0
            return
        self._loop = loop
        if self._timer is None:
            self._schedule(amount)  # for the head: this call, when nobody is queued
        try:
            await self._waiters.park(amount)  # a grant after being woken goes to _give_back
        except BaseException:
            timer = self._timer
            if timer is not None:
                head = self._waiters.peek()
                if not isinstance(head, int):  # nobody waits any more
                    timer.cancel()
                    self._timer = None
                elif self._ready_at(head) != self._timer_when:
                    # the head changed (a smaller request can go sooner): re-arm; a waiter
                    # cancelled behind the head leaves the timer alone
                    timer.cancel()
                    self._timer = None
                    self._schedule()
            raise

    def try_acquire(self, amount: int = 1) -> bool:
        """Take ``amount`` acquisitions if they are allowed now and nobody waits; never waits.

        Returns whether they were taken. Must be called from the event loop's thread.
        """
        self._check_amount(amount)
        now = asyncio.get_running_loop().time()
        if self._waiters or not self._allows(now, amount):
            return False
        self._take(now, amount)
        self._last_grant = 0
        return True

    def _check_amount(self, amount: int) -> None:
        check_amount(amount, self._burst)

    def _ready_at(self, amount: int) -> float:
        """When ``amount`` acquisitions fit in the bucket (GCRA with weights)."""
        return self._tat - (self._burst - amount) * self._interval

    def _allows(self, now: float, amount: int) -> bool:
        # A rounding allowance: sums of intervals drift by a few ulps, which must not cost a
        # whole slot (the timer fires at the exact time; a caller may come a hair early).
        return now + 1e-9 * self._interval >= self._ready_at(amount)

    def _take(self, now: float, amount: int) -> None:
        self._tat = max(self._tat, now) + amount * self._interval
        self._acquired += amount

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def statistics(self) -> RateLimiterStatistics:
        """Return a snapshot of the limiter's state."""
        loop = self._loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is None or self._tat == -math.inf:
            available = float(self._burst)
        else:
            free = (loop.time() - (self._tat - self._slack)) / self._interval
            available = min(float(self._burst), max(0.0, free + 1.0))
        if self._waiters:
            available = 0.0
        return RateLimiterStatistics(
            rate=self._rate,
            per=self._per,
            burst=self._burst,
            waiting=len(self._waiters),
            acquired=self._acquired,
            delayed=self._delayed,
            available=available,
        )

    def __repr__(self) -> str:
        stats = self.statistics()
        per = f"{self._per:g}s"
        return (
            f"<RateLimiter {self._rate:g}/{per} burst={self._burst} waiting={stats.waiting} "
            f"acquired={stats.acquired} available={stats.available:.2f}>"
        )

    # -- internals ----------------------------------------------------------------------------

    def _schedule(self, newcomer: int = 1) -> None:
        """Arm the single timer for the moment the head waiter may go (``newcomer``: the amount
        of a call about to park, the head when nobody is parked yet)."""
        assert self._loop is not None
        amount = self._waiters.peek(newcomer)
        assert isinstance(amount, int)
        self._timer_when = self._ready_at(amount)
        self._timer = self._loop.call_at(self._timer_when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        # A timer may fire up to the loop's clock resolution early: treat it as on time.
        now = max(loop.time(), self._timer_when)
        self._grant_due(now)

    def _grant_due(self, now: float) -> None:
        waiters = self._waiters
        while True:
            amount = waiters.peek()
            if not isinstance(amount, int) or not self._allows(now, amount):
                break
            waiters.unpark()
            self._take(now, amount)
            self._delayed += amount
            self._last_grant = waiters.woken
            self._last_amount = amount
        if waiters and self._timer is None:
            self._schedule()

    def _give_back(self, grant: int) -> None:
        """A waiter was granted, then cancelled before it resumed."""
        # The slot is returned only if nothing was granted after it: rolling the schedule back
        # past a later grant could let two grants end up closer than the window bound allows.
        # The statistics count spent slots: a slot that could not be given back stays counted.
        if self._last_grant == grant:
            self._tat -= self._last_amount * self._interval
            self._last_grant = 0
            self._acquired -= self._last_amount
            self._delayed -= self._last_amount
        if self._waiters and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._waiters:
            assert self._loop is not None
            self._grant_due(self._loop.time())


def check_rate(rate: float, per: float, burst: int) -> None:
    """Raise ``TypeError``/``ValueError`` for a rate limit that cannot be kept as written."""
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TypeError(f"rate must be a number of acquisitions per `per` seconds, got {rate!r}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a finite number > 0, got {rate!r}")
    if not (isinstance(per, int | float) and math.isfinite(per) and per > 0):
        raise ValueError(f"per must be a finite number of seconds > 0, got {per!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst must be an int >= 1, got {burst!r}")


def check_amount(amount: int, burst: int) -> None:
    """Raise ``ValueError`` for an amount a limiter with ``burst`` can never grant."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise ValueError(f"amount must be an int >= 1, got {amount!r}")
    if amount > burst:
        raise ValueError(
            f"amount={amount} can never be granted by a limiter with burst={burst}: "
            f"raise burst to at least {amount}, or split the request"
        )
