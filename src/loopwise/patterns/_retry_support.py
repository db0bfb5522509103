"""The parts of retry that are not the policy itself: the delay hint reader, what is never
retried, give-up reasons, the process-wide testing switch, statistics counters."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from loopwise._exceptions import UsageError

__all__ = [
    "GiveUpReason",
    "RetryStatistics",
    "retry_after_attribute",
    "retry_testing",
    "set_retry_testing",
]


def retry_after_attribute(outcome: object) -> float | None:
    """The default delay hint: the ``retry_after`` attribute of the exception or result.

    A number of seconds or a :class:`datetime.timedelta`; anything else (missing, ``None``,
    negative, NaN) means "no hint".
    """
    value = getattr(outcome, "retry_after", None)
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _never_retry(exc: BaseException, cancel_requests: int = 0) -> bool:
    # Only Exception subclasses are ever retried: CancelledError, KeyboardInterrupt, SystemExit
    # and GeneratorExit derive from BaseException alone.
    if not isinstance(exc, Exception):
        return True
    task = _current_task()
    # A regular exception raised while our task is being cancelled (code that turned the
    # CancelledError into something else): retrying would swallow the cancellation. Compared
    # with the count when the call started (``cancel_requests``), not with 0: on Python 3.11
    # and 3.12 a TaskGroup whose child fails after its body ended cancels the task running it
    # and never uncancels it, so the count can stay above 0 with no cancellation under way.
    return task is not None and task.cancelling() > cancel_requests


def _cancel_requests() -> int:
    """The running task's ``cancelling()`` (0 outside a task)."""
    task = _current_task()
    return 0 if task is None else task.cancelling()


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


GiveUpReason = Literal["attempts", "max_time", "max_hint"]
"""Why a policy refused another attempt: attempts used up, ``max_time`` would be exceeded, or
the delay hint is above ``max_hint``."""

_testing = False


def set_retry_testing(enabled: bool) -> None:
    """Turn every retry policy's sleeps off (``True``) or back on, process-wide: for test suites
    that exercise retried code without waiting for its backoff.

    Delays are still computed, reported to ``on_retry`` and counted; attempts, ``max_time``
    (measured on the policy's clock) and ``max_hint`` still apply; only the sleeping is
    skipped. Covers the decorator, ``call()``, ``call_sync()`` and both attempt loops (so
    :class:`~loopwise.Supervisor` restarts too), and code that asks :func:`retry_testing`.
    """
    global _testing
    _testing = bool(enabled)


def retry_testing() -> bool:
    """Whether :func:`set_retry_testing` turned sleeps off."""
    return _testing


@dataclass(frozen=True, slots=True)
class RetryStatistics:
    """A snapshot of what a :class:`Retry` policy did, over all its calls so far."""

    calls: int
    """Attempt loops started (decorated calls, ``call()``, ``call_sync()``, ``async for``,
    ``for``)."""
    attempts: int
    """Attempts made, the first ones included."""
    retries: int
    """Retries decided (each followed by a delay, then another attempt)."""
    gave_up: int
    """Times the policy refused a retry that was asked for (attempts, time or hint)."""
    total_delay: float
    """Seconds of delay decided in all (slept, unless testing mode is on)."""


class _Counters:
    __slots__ = ("attempts", "calls", "gave_up", "retries", "total_delay")

    def __init__(self) -> None:
        self.calls = 0
        self.attempts = 0
        self.retries = 0
        self.gave_up = 0
        self.total_delay = 0.0


def _check_filter(on: object) -> None:
    if isinstance(on, type):
        if not issubclass(on, BaseException):
            raise TypeError(f"on= takes exception classes or a predicate, got {on!r}")
        return
    if isinstance(on, tuple):
        for item in on:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"on= tuple must hold exception classes only, got {item!r}")
        return
    if not callable(on):
        raise TypeError(f"on= takes exception classes or a predicate, got {on!r}")


def _refuse_in_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(
        f"{what} sleeps with time.sleep between attempts, which would block this running event "
        "loop: make the function async (`async def`, then await it), or run the sync code in a "
        "thread with `await asyncio.to_thread(...)`"
    )


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
