"""HTTPRetry: which HTTP failures are safe to retry, on :class:`loopwise.Retry`'s schedule."""

from __future__ import annotations

import asyncio
import math
import random as _random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime, parsedate_tz
from typing import Any

import aiohttp

from loopwise.patterns._retry import GiveUpReason, Retry

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "AttemptRecord",
    "HTTPRetry",
    "parse_retry_after",
]

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
"""The methods retried by default (urllib3's ``DEFAULT_ALLOWED_METHODS``)."""

RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
"""The statuses retried by default: too many requests, bad gateway, unavailable, gateway timeout."""

_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What happened to one attempt of a request (see :attr:`RetryExhausted.attempts`)."""

    number: int
    """1 for the first attempt."""
    status: int | None = None
    """The HTTP status the attempt got, or None when it got no answer."""
    error: BaseException | None = None
    """The error that failed the attempt, when it got no (complete) answer."""
    delay: float | None = None
    """Seconds waited before the next attempt; None for the last one."""

    def __str__(self) -> str:
        outcome = str(self.status) if self.status is not None else type(self.error).__name__
        wait = "" if self.delay is None else f", waited {self.delay:.3g}s"
        return f"attempt {self.number}: {outcome}{wait}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None when it is absent or invalid.

    Both forms of RFC 9110 are read: a number of seconds (``"120"``) and an HTTP date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), the latter relative to ``now`` (a Unix time; default
    :func:`time.time`). A date in the past gives 0. A number of seconds too large for a float,
    or a date past the year 9999, gives :data:`math.inf`: a server asking to wait for ever,
    which a retry policy must refuse (give up), not ignore. Never raises.
    """
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)  # digits only: finite, or inf when too large
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        fields = parsedate_tz(value)
        # A well-formed date in a year past 9999 is for ever too, not an invalid header.
        return math.inf if fields is not None and fields[0] > 9999 else None
    if when.tzinfo is None:  # "-0000" or no zone: RFC 9110 dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _upper_methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        raise TypeError(f"methods takes a collection of method names, got the string {methods!r}")
    result = []
    for m in methods:
        if not isinstance(m, str) or not _TOKEN.fullmatch(m):
            raise ValueError(f"methods must hold HTTP method names such as 'GET', got {m!r}")
        result.append(m.upper())
    return frozenset(result)


def _checked_statuses(statuses: Iterable[int]) -> frozenset[int]:
    result = frozenset(statuses)
    for s in result:
        if isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599:
            raise ValueError(f"statuses must hold HTTP status codes (100-599), got {s!r}")
    return result


@dataclass(frozen=True, slots=True, repr=False)
class HTTPRetry:
    """An immutable HTTP retry policy: idempotent methods (urllib3's list), busy statuses.

    Which failures retry:

    * an answer whose status is in ``statuses`` (default 429, 502, 503, 504: the statuses that
      mean "try again later"; urllib3 retries no status unless told), for a method in
      ``methods`` (default the idempotent ones: GET, HEAD, PUT, DELETE, OPTIONS, TRACE);
    * an error where the request never reached the server (connection refused, DNS failure,
      connect timeout), for **any** method: the server saw nothing, so nothing can happen twice;
    * any other transport error (connection reset or dropped, read timeout, body cut short), for
      a method in ``methods`` only: the server may have acted on the request.

    Never retried: TLS/certificate errors, invalid URLs, ``CancelledError``, errors raised while
    the task is being cancelled, and requests whose body cannot be sent twice (a stream, a file,
    ``FormData``).

    When: the ``Retry-After`` header of a retried answer is honoured (seconds or an HTTP date)
    when ``retry_after`` is on; a value above ``max_retry_after`` makes the policy give up rather
    than retry earlier than the server asked. Without it, the delay after the n-th failure is
    ``min(max_backoff, backoff * 2 ** (n - 1))`` (never below ``min_backoff``), drawn uniformly
    between ``min_backoff`` and that ceiling when ``jitter`` is on. ``attempts`` counts every
    attempt, the first included; ``max_time`` (seconds from the first attempt) stops starting
    new attempts. The failed response is released before the policy sleeps, so a retry never
    waits for a connection its own failure holds.

    ``sleep``, ``clock`` (monotonic), ``wall_clock`` (Unix time, for HTTP dates) and ``random``
    are injectable for tests, and :func:`loopwise.patterns.set_retry_testing` turns the sleeps
    off process-wide (delays are still computed and reported). ``on_retry`` is called with the
    failed attempt's :class:`AttemptRecord` (its ``delay`` filled in) just before sleeping.
    """

    attempts: int | None = 3
    methods: frozenset[str] | None = IDEMPOTENT_METHODS
    statuses: frozenset[int] = RETRY_STATUSES
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: bool = True
    min_backoff: float = 0.0
    max_time: float | None = None
    retry_after: bool = True
    max_retry_after: float = 120.0
    on_retry: Callable[[AttemptRecord], None] | None = None
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    random: Callable[[], float] = _random.random
    policy: Retry = field(init=False, compare=False)
    """The :class:`loopwise.Retry` built from the fields: its ``compute_backoff`` and limits make
    the schedule (see :meth:`next_delay`)."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "methods", _upper_methods(self.methods))
        set_(self, "statuses", _checked_statuses(self.statuses))
        # Retry validates attempts, backoff, max_backoff, max_time and max_hint with clear messages.
        set_(
            self,
            "policy",
            Retry(
                attempts=self.attempts,
                on=Exception,
                backoff=self.backoff,
                max_backoff=self.max_backoff,
                jitter=self.jitter,
                min_backoff=self.min_backoff,
                max_time=self.max_time,
                delay_hint=None,
                max_hint=self.max_retry_after,
                sleep=self.sleep,
                clock=self.clock,
                random=self.random,
            ),
        )

    @classmethod
    def from_retry(
        cls,
        policy: Retry,
        *,
        methods: Iterable[str] | None = IDEMPOTENT_METHODS,
        statuses: Iterable[int] = RETRY_STATUSES,
        retry_after: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> HTTPRetry:
        """The HTTP rules with the timing of a :func:`loopwise.retry` policy: its ``attempts``,
        backoff, jitter, ``min_backoff``, ``max_time``, ``max_hint`` (as ``max_retry_after``),
        ``sleep``, ``clock`` and ``random``. Its ``on``, ``on_result``, ``delay_hint`` and
        ``on_retry`` do not apply: the HTTP rules decide what retries."""
        return cls(
            attempts=policy.attempts,
            methods=frozenset(methods) if methods is not None else None,
            statuses=frozenset(statuses),
            backoff=policy.backoff,
            max_backoff=policy.max_backoff,
            jitter=policy.jitter,
            min_backoff=policy.min_backoff,
            max_time=policy.max_time,
            retry_after=retry_after,
            max_retry_after=policy.max_hint,
            sleep=policy.sleep,
            clock=policy.clock,
            wall_clock=wall_clock,
            random=policy.random,
        )

    def replace(self, **changes: Any) -> HTTPRetry:
        """A copy of this policy with some options changed."""
        values = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "policy"
        }
        values.update(changes)
        return HTTPRetry(**values)

    # -- the rules ------------------------------------------------------------------------------

    def allows_method(self, method: str) -> bool:
        """Whether answers and ambiguous errors of ``method`` requests may be retried."""
        return self.methods is None or method in self.methods

    def retries_status(self, method: str, status: int) -> bool:
        """Whether an answer with ``status`` to a ``method`` request is retried."""
        return status in self.statuses and self.allows_method(method)

    def retries_error(self, method: str, exc: BaseException) -> bool:
        """Whether aiohttp error ``exc`` on a ``method`` request is retried (attempts aside)."""
        if not isinstance(exc, Exception) or _cancelling():
            return False
        if isinstance(exc, _NEVER_RETRIED):
            return False
        if never_reached_server(exc):
            return True
        return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError) and self.allows_method(
            method
        )

    def delay_hint(self, headers: Mapping[str, str]) -> float | None:
        """The ``Retry-After`` delay of an answer, when the policy honours it."""
        if not self.retry_after:
            return None
        return parse_retry_after(headers.get("Retry-After"), now=self.wall_clock())

    def next_delay(self, number: int, elapsed: float, hint: float | None) -> float | GiveUpReason:
        """After failed attempt ``number`` (1 for the first), ``elapsed`` seconds after the first
        attempt started: the delay before the next attempt, or why the policy gives up.

        The same schedule as :class:`loopwise.Retry`'s attempt loop: ``"attempts"`` when they are
        used up; the ``hint`` (``Retry-After``) instead of the backoff when there is one, but
        ``"max_hint"`` when it is above ``max_retry_after`` (an infinite hint included: the
        server asked never to come back); ``"max_time"`` when the delay would end past
        ``max_time``.
        """
        if hint is not None and hint > self.max_retry_after:
            if self.attempts is not None and number >= self.attempts:
                return "attempts"
            return "max_hint"
        return self.policy.next_delay(number, elapsed, hint)

    def __repr__(self) -> str:
        methods = "any" if self.methods is None else ",".join(sorted(self.methods))
        statuses = ",".join(str(s) for s in sorted(self.statuses))
        parts = [
            f"attempts={self.attempts}",
            f"methods={methods}",
            f"statuses={statuses}",
            f"backoff={self.backoff:g}..{self.max_backoff:g}",
            "full-jitter" if self.jitter else "no-jitter",
        ]
        if self.max_time is not None:
            parts.append(f"max_time={self.max_time:g}")
        parts.append(
            f"retry_after<={self.max_retry_after:g}" if self.retry_after else "retry_after=off"
        )
        return "<HTTPRetry " + " ".join(parts) + ">"


_NEVER_RETRIED = (
    aiohttp.ClientSSLError,  # certificate and handshake failures do not fix themselves
    aiohttp.ServerFingerprintMismatch,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
    aiohttp.RedirectClientError,
    aiohttp.ClientResponseError,  # too many redirects, a bad content type: answers, not failures
)


def never_reached_server(exc: BaseException) -> bool:
    """Whether aiohttp error ``exc`` proves the request never reached the server."""
    if isinstance(exc, _NEVER_RETRIED):
        return False
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _cancelling() -> bool:
    # A regular exception raised while our task is being cancelled: retrying would swallow the
    # cancellation.
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return False
    return task is not None and task.cancelling() > 0
