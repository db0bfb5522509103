"""retry: an immutable policy, used as a decorator, through ``call()``, or as an attempt loop."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import math
import random as _random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from loopwise.patterns import _retry_support
from loopwise.patterns._retry_support import (
    GiveUpReason,
    RetryStatistics,
    _cancel_requests,
    _check_filter,
    _Counters,
    _name,
    _never_retry,
    _refuse_in_loop,
    retry_after_attribute,
    retry_testing,
    set_retry_testing,
)

__all__ = [
    "Attempt",
    "AttemptLoop",
    "GiveUpReason",
    "Retry",
    "RetryStatistics",
    "retry",
    "retry_after_attribute",
    "retry_testing",
    "set_retry_testing",
]

P = ParamSpec("P")
T = TypeVar("T")

ExceptionFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)

_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True, repr=False)
class Retry:
    """An immutable retry policy. Build it with :func:`retry`; see that function for the options.

    A policy holds no per-call state: one instance can serve any number of concurrent calls. Each
    call (decorated call, :meth:`call`, or ``async for attempt in policy``) gets its own attempt
    counter and clock.
    """

    attempts: int | None = 3
    on: ExceptionFilter = Exception
    on_result: Callable[[Any], bool] | None = None
    backoff: float = 0.1
    max_backoff: float = 10.0
    jitter: bool = True
    max_time: float | None = None
    delay_hint: Callable[[object], float | None] | None = retry_after_attribute
    max_hint: float = 60.0
    on_retry: Callable[[Attempt], None] | None = None
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    random: Callable[[], float] = _random.random
    min_backoff: float = 0.0
    sync_sleep: Callable[[float], object] = time.sleep
    _counters: _Counters = field(
        default_factory=_Counters, init=False, compare=False, repr=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or self.attempts < 1
        ):
            raise ValueError(
                f"attempts must be an int >= 1 or None (no limit), got {self.attempts!r}"
            )
        for name in ("backoff", "max_backoff", "max_hint", "min_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        if self.min_backoff > self.max_backoff:
            raise ValueError(
                f"min_backoff={self.min_backoff!r} is above max_backoff={self.max_backoff!r}: "
                "lower min_backoff or raise max_backoff"
            )
        if self.max_time is not None and not (
            isinstance(self.max_time, int | float) and self.max_time > 0
        ):
            raise ValueError(
                f"max_time must be a number of seconds > 0 or None, got {self.max_time!r}"
            )
        _check_filter(self.on)

    # -- the schedule ---------------------------------------------------------------------------

    def compute_backoff(self, failed_attempts: int) -> float:
        """The delay after the ``failed_attempts``-th failure when no hint is given.

        The ceiling ``min(max_backoff, backoff * 2 ** (failed_attempts - 1))`` (but at least
        ``min_backoff``); with ``jitter`` on, a uniform random point between ``min_backoff`` and
        the ceiling ("full jitter", which can give 0 s unless ``min_backoff`` is set).
        """
        exponent = min(max(failed_attempts - 1, 0), _MAX_EXPONENT)
        ceiling = max(self.min_backoff, min(self.max_backoff, self.backoff * 2.0**exponent))
        if not self.jitter:
            return ceiling
        return self.min_backoff + (ceiling - self.min_backoff) * self.random()

    def next_delay(
        self, failed_attempts: int, elapsed: float, hint: float | None = None
    ) -> float | GiveUpReason:
        """The delay before the attempt after failed attempt ``failed_attempts`` (1 for the first),
        ``elapsed`` seconds after the first attempt started; or why the policy gives up.

        ``"attempts"`` when they are used up; the ``hint`` (e.g. HTTP ``Retry-After``) instead of
        the backoff when there is one, but ``"max_hint"`` when it is above ``max_hint``;
        ``"max_time"`` when waiting would end past ``max_time``. This is the schedule the attempt
        loop follows; callers that drive their own loop use it directly.
        """
        if self.attempts is not None and failed_attempts >= self.attempts:
            return "attempts"
        if hint is not None and math.isfinite(hint):
            if hint > self.max_hint:
                return "max_hint"
            delay = max(0.0, float(hint))
        else:
            delay = self.compute_backoff(failed_attempts)
        if self.max_time is not None and elapsed + delay > self.max_time:
            return "max_time"
        return delay

    def retries(self, exc: BaseException) -> bool:
        """Whether this policy would retry ``exc`` (ignoring attempts and time left)."""
        return self._retries(exc, 0)

    def _retries(self, exc: BaseException, cancel_requests: int) -> bool:
        if _never_retry(exc, cancel_requests):
            return False
        on = self.on
        if isinstance(on, type | tuple):
            return isinstance(exc, on)
        return bool(on(exc))

    # -- the three ways to use it ---------------------------------------------------------------

    def __aiter__(self) -> AttemptLoop:
        """Start a new attempt loop: ``async for attempt in policy: with attempt: ...``."""
        return AttemptLoop(self)

    def __iter__(self) -> AttemptLoop:
        """Start a new attempt loop in sync code: ``for attempt in policy: with attempt: ...``;
        it sleeps with ``sync_sleep`` (``time.sleep``). Refused inside a running event loop
        (the sleep would block it): :class:`~loopwise.UsageError`."""
        _refuse_in_loop("for attempt in policy")
        return AttemptLoop(self)

    def statistics(self) -> RetryStatistics:
        """What this policy did over all its calls so far (a copy made with :meth:`replace`
        starts from zero)."""
        c = self._counters
        return RetryStatistics(
            calls=c.calls,
            attempts=c.attempts,
            retries=c.retries,
            gave_up=c.gave_up,
            total_delay=c.total_delay,
        )

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``await fn(*args, **kwargs)`` under this policy and return its result.

        On giving up, the last exception is raised (with a note saying why the policy gave up),
        or, when ``on_result`` asked for the retries, the last result is returned as it is.
        """
        async for attempt in self:
            with attempt:
                result = await fn(*args, **kwargs)
                if self._retries_result(attempt, result):
                    continue
                return result
        raise AssertionError("unreachable: an attempt ended without result or retry")

    def call_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call the sync ``fn(*args, **kwargs)`` under this policy, sleeping with ``sync_sleep``
        (``time.sleep``) between attempts; as :meth:`call` otherwise.

        Refused inside a running event loop (the sleep would block every task on it):
        :class:`~loopwise.UsageError`; run it in a thread (``await asyncio.to_thread(...)``) or
        make ``fn`` async.
        """
        _refuse_in_loop(f"retrying the sync function {_name(fn)}")
        for attempt in AttemptLoop(self):
            with attempt:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise TypeError(
                        f"{_name(fn)} returned an awaitable: declare it `async def` so the "
                        "decorator awaits it, or use `await policy.call(fn)`"
                    )
                if self._retries_result(attempt, result):
                    continue
                return result
        raise AssertionError("unreachable: an attempt ended without result or retry")

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function: every call runs under this policy. An ``async def`` function
        (see :meth:`call`) sleeps with ``sleep``; a sync one (see :meth:`call_sync`) with
        ``sync_sleep`` and is refused inside a running event loop."""
        if not callable(fn):
            raise TypeError(f"retry(...) decorates a function, got {fn!r}")
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError(
                f"retry(...) cannot retry the generator function {_name(fn)}: its errors come "
                "while it is iterated, after the call returned. Retry the call that produces "
                "each item, or wrap the loop that consumes it in `async for attempt in policy:` "
                "(`for attempt in policy:` in sync code)"
            )
        # type(fn).__call__: an object whose __call__ is `async def` is an async function too
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):

            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call(fn, *args, **kwargs)

            return wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call_sync(fn, *args, **kwargs)

        return sync_wrapper

    def _retries_result(self, attempt: Attempt, result: object) -> bool:
        """Whether ``on_result`` asks to retry ``result`` and the policy grants another attempt."""
        return (
            self.on_result is not None
            and self.on_result(result)
            and attempt.request_retry(delay=self._hint(result), result=result)
        )

    def _hint(self, outcome: object) -> float | None:
        if self.delay_hint is None:
            return None
        return self.delay_hint(outcome)

    def replace(self, **changes: Any) -> Retry:
        """A copy of this policy with some options changed."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        parts = [f"attempts={self.attempts}"]
        if self.max_time is not None:
            parts.append(f"max_time={self.max_time:g}")
        parts.append(f"backoff={self.backoff:g}..{self.max_backoff:g}")
        parts.append("full-jitter" if self.jitter else "no-jitter")
        on = self.on
        if isinstance(on, type):
            parts.append(f"on={on.__name__}")
        elif isinstance(on, tuple):
            parts.append("on=(" + ", ".join(t.__name__ for t in on) + ")")
        else:
            parts.append(f"on={getattr(on, '__name__', repr(on))}")
        if self.min_backoff:
            parts.append(f"min_backoff={self.min_backoff:g}")
        if self.on_result is not None:
            parts.append("on_result=...")
        parts.append(f"max_hint={self.max_hint:g}")
        return "<Retry " + " ".join(parts) + ">"


def retry(
    *,
    attempts: int | None = 3,
    on: ExceptionFilter = Exception,
    on_result: Callable[[Any], bool] | None = None,
    backoff: float = 0.1,
    max_backoff: float = 10.0,
    jitter: bool = True,
    max_time: float | None = None,
    delay_hint: Callable[[object], float | None] | None = retry_after_attribute,
    max_hint: float = 60.0,
    on_retry: Callable[[Attempt], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    random: Callable[[], float] = _random.random,
    min_backoff: float = 0.0,
    sync_sleep: Callable[[float], object] = time.sleep,
) -> Retry:
    """Build a retry policy: exponential backoff with full jitter, a cap, a limit on attempts and
    on total time, and which exceptions (or results) retry.

    Use it as a decorator (``@retry(attempts=5)``, on an async or a sync function), through
    ``await policy.call(fn, *args)`` (``policy.call_sync(fn, *args)`` for a sync function), or
    drive the attempts yourself (``for attempt in policy`` in sync code)::

        async for attempt in policy:
            with attempt:                     # a retryable exception in here is retried
                resp = await fetch()
                if resp.status == 503 and attempt.request_retry(delay=retry_after(resp)):
                    continue                  # a result asked for another attempt
                return resp

    Options:

    * ``attempts``: most attempts in all, the first included (``None``: no limit).
    * ``on``: what retries: an exception class, a tuple of classes, or a predicate taking the
      exception. Never retried, whatever ``on`` says: anything that is not an ``Exception``
      (``CancelledError``, ``KeyboardInterrupt``, ``SystemExit``) and any exception raised while
      the task is being cancelled.
    * ``on_result``: for the decorator and :meth:`Retry.call`: a predicate on the result; true
      means "retry". When the policy gives up, the last result is returned as it is.
    * ``backoff``, ``max_backoff``, ``jitter``: the delay after the n-th failure is
      ``min(max_backoff, backoff * 2 ** (n - 1))``, times a uniform random factor in [0, 1) when
      ``jitter`` is true (full jitter: concurrent clients spread out instead of retrying in step).
    * ``min_backoff``: the shortest backoff delay (full jitter alone can give 0 s): the delay is
      drawn between ``min_backoff`` and the ceiling above (never below ``min_backoff``). Hints
      are not affected.
    * ``max_time``: seconds from the first attempt after which no new attempt starts; a delay
      that would end past it makes the policy give up at once instead of sleeping. A running
      attempt is not interrupted (wrap it in ``asyncio.timeout()`` for that).
    * ``delay_hint``: reads a delay to wait *instead of* the backoff from the exception or result
      (HTTP ``Retry-After``); the default reads a ``retry_after`` attribute (seconds or
      ``timedelta``). ``None``: no hint.
    * ``max_hint``: the longest hint honoured. A longer one makes the policy give up rather than
      retry earlier than the other side asked.
    * ``on_retry``: called with the failed :class:`Attempt` (its ``exception``/``result`` and the
      chosen ``delay`` filled in) just before sleeping.
    * ``sleep``, ``clock``, ``random``: injectable for tests (``clock`` must be monotonic);
      ``sync_sleep`` is the sleep of sync calls (``time.sleep``). :func:`set_retry_testing`
      turns every sleep off process-wide.
    """
    return Retry(
        attempts=attempts,
        on=on,
        on_result=on_result,
        backoff=backoff,
        max_backoff=max_backoff,
        jitter=jitter,
        max_time=max_time,
        delay_hint=delay_hint,
        max_hint=max_hint,
        on_retry=on_retry,
        sleep=sleep,
        clock=clock,
        random=random,
        min_backoff=min_backoff,
        sync_sleep=sync_sleep,
    )


class Attempt:
    """One attempt of an attempt loop.

    ``with attempt:`` suppresses an exception the policy retries (when attempts and time are
    left) and lets every other exception through; the loop then sleeps and yields the next
    attempt. Without an exception and without :meth:`request_retry`, the loop ends after this
    attempt.
    """

    __slots__ = ("_loop", "delay", "exception", "gave_up", "number", "result")

    def __init__(self, loop: AttemptLoop, number: int) -> None:
        self._loop = loop
        self.number = number
        """1 for the first attempt."""
        self.exception: BaseException | None = None
        """The exception that failed this attempt, once it is retried."""
        self.result: object = None
        """The result passed to :meth:`request_retry`, if any."""
        self.delay: float | None = None
        """The delay before the next attempt, once a retry is decided."""
        self.gave_up: GiveUpReason | None = None
        """Why the policy refused a retry: ``"attempts"``, ``"max_time"``, ``"max_hint"``."""

    @property
    def last(self) -> bool:
        """True when no further attempt can follow this one (attempts used up or ``max_time``
        reached). A delay that would cross ``max_time`` can still end the loop when this is
        false."""
        return self._loop._is_last(self.number)

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return self._loop._elapsed()

    def request_retry(self, *, delay: float | None = None, result: object = None) -> bool:
        """Ask for another attempt after this one, e.g. because the result is an HTTP 503.

        ``delay`` is a hint to wait instead of the backoff (HTTP ``Retry-After``, in seconds).
        Returns True when another attempt will follow (leave the ``with`` block, e.g. with
        ``continue``, and the loop sleeps then yields it); False when the policy gives up
        (attempts or time used up, or the hint is above ``max_hint``): use the result you have.
        """
        if self.delay is not None:
            return True
        decided = self._loop._decide(self, delay)
        if decided is None:
            return False
        self.result = result
        self.delay = decided
        self._loop._notify(self)
        return True

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        policy = self._loop.policy
        if not policy._retries(exc, self._loop._cancel_requests):
            return False
        self.delay = None
        decided = self._loop._decide(self, policy._hint(exc))
        if decided is None:
            exc.add_note(self._loop._give_up_note(self))
            return False
        self.exception = exc
        self.delay = decided
        self._loop._notify(self)
        return True

    def __repr__(self) -> str:
        state = "retrying" if self.delay is not None else ("gave up" if self.gave_up else "running")
        return f"<Attempt {self.number} {state}>"


class AttemptLoop:
    """The per-call state of a :class:`Retry` policy: an async iterator of :class:`Attempt`.

    It keeps plain numbers, not the attempts themselves, so no reference cycle outlives a call.
    """

    __slots__ = ("_cancel_requests", "_delay", "_number", "_start", "policy")

    def __init__(self, policy: Retry) -> None:
        self.policy = policy
        self._cancel_requests = 0  # the task's cancelling() when the loop started
        self._number = 0  # the attempt last handed out
        self._delay: float | None = None  # decided by that attempt: None ends the loop
        self._start = 0.0

    def __aiter__(self) -> AttemptLoop:
        return self

    async def __anext__(self) -> Attempt:
        delay = self._advance()
        if delay is None:
            raise StopAsyncIteration
        if delay > 0:
            await self.policy.sleep(delay)
        elif self._number:
            # A retry without delay (backoff=0, the testing switch, a jitter draw of 0) is still
            # a checkpoint: a call failing without awaiting, retried without limit, must not
            # keep the event loop from running anything else.
            await _yield_to_the_loop()
        return self._next_attempt()

    def __iter__(self) -> AttemptLoop:
        return self

    def __next__(self) -> Attempt:
        delay = self._advance()
        if delay is None:
            raise StopIteration
        if delay > 0:
            self.policy.sync_sleep(delay)
        return self._next_attempt()

    def _advance(self) -> float | None:
        """The delay to sleep before the next attempt (0: none), or None: the loop is over."""
        if self._number == 0:
            self._start = self.policy.clock()
            self._cancel_requests = _cancel_requests()
            self.policy._counters.calls += 1
            return 0.0
        if self._delay is None:
            return None
        return 0.0 if _retry_support._testing else self._delay

    def _next_attempt(self) -> Attempt:
        self._number += 1
        self._delay = None
        self.policy._counters.attempts += 1
        return Attempt(self, self._number)

    def _elapsed(self) -> float:
        return self.policy.clock() - self._start

    def _is_last(self, number: int) -> bool:
        policy = self.policy
        if policy.attempts is not None and number >= policy.attempts:
            return True
        return policy.max_time is not None and self._elapsed() >= policy.max_time

    def _decide(self, attempt: Attempt, hint: float | None) -> float | None:
        decided = self.policy.next_delay(attempt.number, self._elapsed(), hint)
        counters = self.policy._counters
        if isinstance(decided, str):
            attempt.gave_up = decided
            counters.gave_up += 1
            return None
        if attempt.number == self._number:
            self._delay = decided
        counters.retries += 1
        counters.total_delay += decided
        return decided

    def _notify(self, attempt: Attempt) -> None:
        if self.policy.on_retry is not None:
            self.policy.on_retry(attempt)

    def _give_up_note(self, attempt: Attempt) -> str:
        policy = self.policy
        if attempt.gave_up == "attempts":
            why = f"attempts={policy.attempts} used up"
        elif attempt.gave_up == "max_time":
            why = f"max_time={policy.max_time}s would be exceeded"
        else:
            why = f"the delay hint is above max_hint={policy.max_hint:g}s"
        return (
            f"loopwise.retry gave up after attempt {attempt.number} ({self._elapsed():.3g}s): {why}"
        )


async def _yield_to_the_loop() -> None:
    """Let every other ready task run one step (a checkpoint)."""
    await asyncio.sleep(0)
