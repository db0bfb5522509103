"""Telling a real cancellation from a ``CancelledError`` that user code raised by itself.

A handler decides with ``this_task().cancelling()``: above 0, someone called ``cancel()`` on
the task (a real cancellation, to re-raise); 0, the ``CancelledError`` came from user code that
awaited something cancelled elsewhere (a stray one, to report with :func:`stray_error`).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["StrayCancellationError", "stray_error", "this_task"]


class StrayCancellationError(RuntimeError):
    """User code raised ``CancelledError`` although its task was not being cancelled.

    It usually awaited a future or task that something else cancelled. asyncio would treat that
    as a cancellation of the task and the work would end silently; loopwise's patterns treat it
    as a failure of the item (``amap``, ``Pipeline``) or service (``Supervisor``) instead. The
    original ``CancelledError`` is the ``__cause__``.
    """


def this_task() -> asyncio.Task[Any]:
    """The running task (the patterns' workers always run in one)."""
    task = asyncio.current_task()
    assert task is not None, "called outside a task"
    return task


def stray_error(exc: asyncio.CancelledError, what: str) -> StrayCancellationError:
    """The failure to report instead of a stray ``exc``, caused by it."""
    error = StrayCancellationError(
        f"{what} raised CancelledError without being cancelled (did it await a future or task "
        "that was cancelled elsewhere?); treated as a failure"
    )
    error.__cause__ = exc
    return error
