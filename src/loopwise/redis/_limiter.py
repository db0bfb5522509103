"""SharedRateLimiter: one rate limit for every process, kept in Redis (GCRA in one Lua script)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from redis.asyncio import Redis

from loopwise.patterns import RateLimiter
from loopwise.patterns._limit import check_amount, check_rate
from loopwise.redis import _scripts
from loopwise.redis._connection import (
    CONNECTION_ERRORS,
    RedisUnavailableError,
    check_client,
    describe,
)

__all__ = ["SharedRateLimiter", "SharedRateLimiterStatistics"]

logger = logging.getLogger("loopwise.redis")


@dataclass(frozen=True, slots=True)
class SharedRateLimiterStatistics:
    """A snapshot of a :class:`SharedRateLimiter` (this process's view)."""

    rate: float
    per: float
    burst: int
    waiting: int
    """Tasks of this process queued in ``acquire()`` right now."""
    acquired: int
    """Acquisitions granted to this process (``acquire(n)`` counts n)."""
    delayed: int
    """Of those, how many had to wait."""
    round_trips: int
    """Calls of the script (one per grant, plus one per wait that ended)."""
    unavailable: int
    """Calls that found Redis unreachable."""
    local_grants: int
    """Acquisitions granted by the local fallback (``when_unavailable="local"``)."""
    last_grant: float | None
    """Redis' time (seconds since the epoch) of the last grant to this process, if any."""


class SharedRateLimiter:
    """At most ``rate`` acquisitions per ``per`` seconds across every process that uses the same
    Redis ``key``::

        limiter = SharedRateLimiter(client, "quota:github", 100, burst=10)
        async with limiter:          # or: await limiter.acquire()
            await call_the_api()

    Guarantees:

    * **Window bound across processes.** In any window of ``W`` seconds of Redis' clock, all
      processes together are granted at most ``burst + rate * W / per`` acquisitions. The
      schedule (GCRA: one key holding the theoretical arrival time) is updated by one Lua
      script that reads Redis' ``TIME``, so clock skew between machines does not matter. A
      grant is one round trip; a waiter sleeps exactly until its amount fits, then asks again.
    * **FIFO within a process.** Tasks of one process are served in the order they called
      ``acquire()`` (only the head of the queue talks to Redis). Between processes, whoever
      asks first when a slot is free gets it.
    * **Cancellation.** A task cancelled while it waits takes nothing. One cancelled during the
      script's round trip may have been granted a slot it never uses (the bound still holds:
      the error is on the side of fewer grants).
    * **Redis unreachable.** ``when_unavailable="raise"`` (the default, fail closed) raises
      :class:`RedisUnavailableError` and grants nothing; ``"local"`` logs a warning and falls
      back to a local :class:`~loopwise.patterns.RateLimiter` with the same rate and burst
      (each process then has the whole quota: fail open, bounded). How long it takes to
      decide that Redis is unreachable is the client's retry policy (redis-py retries a failed
      connection with backoff, seconds by default: pass ``retry=`` to the client to change it).

    Same interface as :class:`~loopwise.patterns.RateLimiter`, except that :meth:`try_acquire`
    is a coroutine (it needs a round trip). One event loop; not thread-safe.
    """

    def __init__(
        self,
        client: Redis,
        key: str,
        rate: float,
        *,
        per: float = 1.0,
        burst: int = 1,
        when_unavailable: Literal["raise", "local"] = "raise",
    ) -> None:
        self._client = check_client(client)
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty str, got {key!r}")
        check_rate(rate, per, burst)
        if when_unavailable not in ("raise", "local"):
            raise ValueError(
                f'when_unavailable must be "raise" or "local", got {when_unavailable!r}'
            )
        interval_us = float(per) / float(rate) * 1_000_000
        if interval_us < 1:
            raise ValueError(f"rate {rate!r} per {per!r} s is over one per microsecond")
        self.key = key
        self._rate = float(rate)
        self._per = float(per)
        self._burst = burst
        self._interval_us = interval_us
        self._when_unavailable = when_unavailable
        self._script = client.register_script(_scripts.GCRA)
        self._queue = asyncio.Lock()  # FIFO: only its holder talks to Redis
        self._waiting = 0
        self._acquired = 0
        self._delayed = 0
        self._round_trips = 0
        self._unavailable = 0
        self._local_grants = 0
        self._fallback: RateLimiter | None = None
        self._last_grant_us: int | None = None

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
        """Wait until ``amount`` acquisitions (at most ``burst``) fit in the shared schedule,
        then take them at once. See the class for FIFO, cancellation and unreachable Redis."""
        self._check_amount(amount)
        self._waiting += 1
        try:
            async with self._queue:
                waited = False
                while True:
                    granted, wait_us = await self._ask(amount)
                    if granted:
                        break
                    waited = True
                    await asyncio.sleep(wait_us / 1_000_000)
        finally:
            self._waiting -= 1
        self._acquired += amount
        if waited:
            self._delayed += amount

    async def try_acquire(self, amount: int = 1) -> bool:
        """Take ``amount`` acquisitions if they fit now and no task of this process waits;
        never waits (one round trip). Returns whether they were taken."""
        self._check_amount(amount)
        if self._queue.locked():
            return False
        async with self._queue:
            granted, _ = await self._ask(amount)
        if granted:
            self._acquired += amount
        return granted

    async def _ask(self, amount: int) -> tuple[bool, float]:
        self._round_trips += 1
        try:
            reply = await self._script(
                keys=[self.key], args=[repr(self._interval_us), self._burst, amount]
            )
        except CONNECTION_ERRORS as exc:
            self._unavailable += 1
            if self._when_unavailable == "raise":
                raise RedisUnavailableError(
                    f"rate limiter {self.key!r}: {describe(exc)}; nothing was granted. "
                    "Retry later, or create the limiter with "
                    'when_unavailable="local" to fall back to a per-process limit'
                ) from exc
            if self._fallback is None:
                self._fallback = RateLimiter(self._rate, per=self._per, burst=self._burst)
                logger.warning(
                    "rate limiter %r: %s; limiting this process locally", self.key, describe(exc)
                )
            await self._fallback.acquire(amount)
            self._local_grants += amount
            return True, 0.0
        granted, value = bool(int(reply[0])), int(reply[1])
        if granted:
            self._last_grant_us = value
        return granted, float(value)

    def _check_amount(self, amount: int) -> None:
        check_amount(amount, self._burst)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def statistics(self) -> SharedRateLimiterStatistics:
        return SharedRateLimiterStatistics(
            rate=self._rate,
            per=self._per,
            burst=self._burst,
            waiting=self._waiting,
            acquired=self._acquired,
            delayed=self._delayed,
            round_trips=self._round_trips,
            unavailable=self._unavailable,
            local_grants=self._local_grants,
            last_grant=None if self._last_grant_us is None else self._last_grant_us / 1e6,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        return (
            f"<SharedRateLimiter {self.key!r} {s.rate:g}/{s.per:g}s burst={s.burst} "
            f"waiting={s.waiting} acquired={s.acquired} round_trips={s.round_trips}>"
        )
