"""The parts of a Pipeline its users see: statistics snapshots and the iterator over results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from loopwise.patterns._channel import _Drained

if TYPE_CHECKING:
    from loopwise.patterns._pipeline import Pipeline

__all__ = ["PipelineStatistics", "StageStatistics", "State", "_Results"]

State = Literal["new", "running", "closing", "finished", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class StageStatistics:
    """A snapshot of one stage of a :class:`Pipeline`."""

    name: str
    workers: int
    """Worker tasks alive."""
    busy: int
    """Workers running the stage function right now."""
    queued: int
    """Items waiting in the stage's input channel."""
    processed: int
    """Items the stage finished."""


@dataclass(frozen=True, slots=True)
class PipelineStatistics:
    """A snapshot of a :class:`Pipeline`."""

    state: State
    accepted: int
    """Items taken from the source or by ``put()``."""
    completed: int
    """Items that went through every stage (and, with ``output=True``, were queued for the
    consumer)."""
    dropped: int
    """Items accepted but abandoned by ``cancel()`` or a failure."""
    stages: tuple[StageStatistics, ...]


class _Results(AsyncIterator[Any]):
    """An ``async for`` over a pipeline's results. Counted while alive, so a close can tell
    "nobody reads" from "a reader is busy with a result"; dropped before the end (``break``), it
    marks the pipeline as left early."""

    __slots__ = ("_finished", "_pipe")

    def __init__(self, pipe: Pipeline[Any]) -> None:
        self._pipe = pipe
        self._finished = False
        pipe._readers += 1

    async def __anext__(self) -> Any:
        pipe = self._pipe
        if self._finished:
            raise StopAsyncIteration
        try:
            pipe._raise_failure()
            return await pipe._channels[-1].get()
        except _Drained:
            self._finish(early=False)
            pipe._raise_failure()
            raise StopAsyncIteration from None
        except BaseException:
            self._finish(early=False)
            raise

    def _finish(self, *, early: bool) -> None:
        if not self._finished:
            self._finished = True
            self._pipe._reader_gone(early=early)

    def __del__(self) -> None:
        self._finish(early=True)
