"""Telling a real cancellation from a ``CancelledError`` that user code raised by itself.

A handler decides with ``this_task().cancelling()``: above 0, someone called ``cancel()`` on
the task (a real cancellation, to re-raise); 0, the ``CancelledError`` came from user code that
awaited something cancelled elsewhere (a stray one, to report with :func:`stray_error`). A
pattern's own worker task cancelled by someone other than the pattern (user code cancelling
"the current task", say) is reported with :func:`cancelled_by_outsider`: passed on as a
``CancelledError`` it would make the caller look cancelled, and a TaskGroup would forget it.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["StrayCancellationError", "cancelled_by_outsider", "stray_error", "this_task"]


class StrayCancellationError(RuntimeError):
    """A ``CancelledError`` that is not a cancellation of the pattern or of its caller.

    Either user code raised ``CancelledError`` although its task was not being cancelled (it
    usually awaited a future or task that something else cancelled), or something other than
    the pattern cancelled one of the pattern's own worker tasks (code run by ``amap`` or a
    ``Pipeline`` stage that cancels "the current task"). asyncio would treat that as a
    cancellation and the work would end silently; loopwise's patterns treat it as a failure of
    the item (``amap``, ``Pipeline``) or service (``Supervisor``), or of the whole ``amap`` or
    ``Pipeline`` when a worker was cancelled. The original ``CancelledError`` is the
    ``__cause__``.
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


def cancelled_by_outsider(
    exc: asyncio.CancelledError, what: str, owner: str
) -> StrayCancellationError:
    """The failure to report when ``what`` (a task ``owner`` runs) was cancelled by someone
    other than ``owner``, caused by ``exc``."""
    error = StrayCancellationError(
        f"{what} was cancelled by something other than {owner} (does code it runs cancel the "
        "current task?); treated as a failure"
    )
    error.__cause__ = exc
    return error
