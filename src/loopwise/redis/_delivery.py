"""Delivery: one stream entry handed to a worker, and what happened to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DeadLetter", "Delivery", "WorkerStatistics", "idempotency_key"]

T = TypeVar("T")


def idempotency_key(stream: str, entry_id: str) -> str:
    """A key that names one item for good: the same on every redelivery of the entry, different
    for every entry of the stream (an item added twice is two items). Hand it to the system your
    side effect goes to (a unique column, an ``Idempotency-Key`` header) to make a redelivered
    item's second effect a no-op."""
    return f"{stream}/{entry_id}"


class Delivery(Generic[T]):
    """One stream entry delivered to this worker: ``value`` (the decoded item, replaced by each
    :meth:`StreamWorker.step` with what its function returned), ``id`` (the entry id),
    ``deliveries`` (1 the first time, counted by Redis across all workers) and ``error`` (the
    exception a step raised, after which later steps are skipped)."""

    __slots__ = ("_data", "deliveries", "error", "id", "stream", "value")

    def __init__(self, stream: str, entry_id: str, value: T, deliveries: int, data: bytes) -> None:
        self._data = data
        self.stream = stream
        self.id = entry_id
        self.value = value
        self.deliveries = deliveries
        self.error: Exception | None = None

    @property
    def idempotency_key(self) -> str:
        """See :func:`idempotency_key`."""
        return idempotency_key(self.stream, self.id)

    def __repr__(self) -> str:
        state = f" error={self.error!r}" if self.error is not None else ""
        return f"<Delivery {self.stream}/{self.id} deliveries={self.deliveries}{state}>"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry moved to the dead-letter stream: never dropped silently."""

    id: str
    """The dead letter's own id (in the dead-letter stream)."""
    entry_id: str
    """The id the item had in its work stream."""
    data: bytes
    """The item's bytes as they were added (decode them with the queue's codec)."""
    error: str
    """Why: the last error a stage raised, a decoding error, or that no worker acknowledged it."""
    deliveries: int
    """How many times it was delivered."""


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of a :class:`StreamWorker`."""

    consumer: str
    prefetch: int
    in_flight: int
    """Items handed out (or read and waiting to be) and not acknowledged or released yet."""
    delivered: int
    """Items handed out so far, reclaimed ones included."""
    reclaimed: int
    """Of those, items taken over from a consumer that held them longer than ``claim_idle``."""
    acked: int
    """Items acknowledged after their last stage."""
    failed: int
    """Items a stage raised on (left pending to be retried, or dead-lettered)."""
    dead_lettered: int
    """Items this worker moved to the dead-letter stream."""
    reconnects: int
    """Calls to Redis retried because it was unreachable."""
    last_error: str | None
    """The last connection error, if any."""
    stopping: bool
