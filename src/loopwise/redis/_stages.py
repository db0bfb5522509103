"""The stages a StreamWorker gives a Pipeline or amap: per item, and per batch of items."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from loopwise.redis._delivery import Delivery

if TYPE_CHECKING:
    from loopwise.redis._worker import StreamWorker

__all__ = ["Batches", "handler", "step", "step_batch"]

T = TypeVar("T")


def _named(wrapper: Any, fn: Any, default: str) -> Any:
    wrapper.__qualname__ = getattr(fn, "__qualname__", default)
    return wrapper


def step(fn: Callable[[Any], Awaitable[Any]]) -> Callable[[Delivery[Any]], Awaitable[Any]]:
    async def run_step(delivery: Delivery[Any]) -> Delivery[Any]:
        if delivery.error is None:
            try:
                delivery.value = await fn(delivery.value)
            except Exception as exc:
                delivery.error = exc
        return delivery

    return _named(run_step, fn, "step")  # type: ignore[no-any-return]


def handler(
    worker: StreamWorker[Any], fn: Callable[[Any], Awaitable[Any]]
) -> Callable[[Delivery[Any]], Awaitable[Any]]:
    async def handle(delivery: Delivery[Any]) -> Delivery[Any]:
        if delivery.error is None:
            try:
                delivery.value = await fn(delivery.value)
            except Exception as exc:
                delivery.error = exc
        if delivery.error is None:
            worker._queue_ack(delivery)
            return delivery
        return await worker._settle_failure(delivery)

    return _named(handle, fn, "handler")  # type: ignore[no-any-return]


def step_batch(
    fn: Callable[[list[Any]], Awaitable[Sequence[Any]]],
) -> Callable[[list[Delivery[Any]]], Awaitable[list[Delivery[Any]]]]:
    async def run_step(batch: list[Delivery[Any]]) -> list[Delivery[Any]]:
        live = [d for d in batch if d.error is None]
        if not live:
            return batch
        try:
            values = await fn([d.value for d in live])
            if len(values) != len(live):
                raise ValueError(
                    f"a batch step must return one value per item: got {len(values)} "
                    f"for {len(live)} items"
                )
        except Exception as exc:
            for delivery in live:
                delivery.error = exc
        else:
            for delivery, value in zip(live, values, strict=True):
                delivery.value = value
        return batch

    return _named(run_step, fn, "step_batch")  # type: ignore[no-any-return]


class Batches(AsyncIterator[list[Delivery[T]]], Generic[T]):
    """What :meth:`StreamWorker.batches` returns: an async iterator of lists of deliveries."""

    __slots__ = ("_max_size", "_worker")

    def __init__(self, worker: StreamWorker[T], max_size: int | None) -> None:
        self._worker = worker
        self._max_size = max_size

    def __aiter__(self) -> Batches[T]:
        return self

    async def __anext__(self) -> list[Delivery[T]]:
        worker = self._worker
        batch = [await worker.__anext__()]  # waits, reads, reclaims, stops: as one item would
        ready = worker._ready
        room = len(ready) if self._max_size is None else min(len(ready), self._max_size - 1)
        if room > 0:
            batch += [ready.popleft() for _ in range(room)]
            worker._delivered += room
        return batch

    def __repr__(self) -> str:
        return f"<Batches of {self._worker!r} max_size={self._max_size}>"
