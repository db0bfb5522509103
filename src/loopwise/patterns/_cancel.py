"""Telling a real cancellation from a ``CancelledError`` that user code raised by itself."""

from __future__ import annotations

import asyncio

__all__ = ["StrayCancellationError", "stray_cancellation"]


class StrayCancellationError(RuntimeError):
    """User code raised ``CancelledError`` although its task was not being cancelled.

    It usually awaited a future or task that something else cancelled. asyncio would treat that
    as a cancellation of the task and the work would end silently; loopwise's patterns treat it
    as a failure of the item (``amap``, ``Pipeline``) or service (``Supervisor``) instead. The
    original ``CancelledError`` is the ``__cause__``.
    """


def stray_cancellation(exc: asyncio.CancelledError, what: str) -> StrayCancellationError | None:
    """The error to raise instead of ``exc`` when the current task is not being cancelled, else
    None (a real cancellation: let it propagate)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling() > 0:
        return None
    error = StrayCancellationError(
        f"{what} raised CancelledError without being cancelled (did it await a future or task "
        "that was cancelled elsewhere?); treated as a failure"
    )
    error.__cause__ = exc
    return error
