"""amap: map an async function over a (possibly infinite) iterable with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, NoReturn, TypeVar, overload

from loopwise.patterns._limit import RateLimiter
from loopwise.patterns._map_workers import _MISSING, Failure, _State

__all__ = ["AMap", "AMapStatistics", "Failure", "amap"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class AMapStatistics:
    """A snapshot of an :class:`AMap`."""

    concurrency: int
    workers: int
    """Worker tasks alive (started lazily, up to ``concurrency``)."""
    running: int
    """Calls of ``fn`` in progress."""
    started: int
    """Items pulled from the input so far."""
    yielded: int
    """Results handed to the consumer so far."""
    buffered: int
    """Finished results waiting to be yielded."""
    failed: int
    """Calls that raised (with ``errors="collect"``: failures yielded or waiting)."""
    exhausted: bool
    """The input has no more items."""


class AMap(AsyncIterator[R]):
    """The async iterator returned by :func:`amap`; also an async context manager that cancels
    and awaits all its work on exit. Work starts at the first ``__anext__`` (or ``async with``)."""

    __slots__ = ("_fn_name", "_s")

    def __init__(self, state: _State[Any, R], fn_name: str) -> None:
        self._s = state
        self._fn_name = fn_name

    def __aiter__(self) -> AMap[R]:
        return self

    async def __anext__(self) -> R:
        s = self._s
        if s.loop is None:
            if s.closed:
                raise StopAsyncIteration
            s.start()
        while True:
            if s.error is not None:
                await self._raise_error()
            if s.ordered:
                result = s.reorder.pop(s.yielded, _MISSING)
                if result is not _MISSING:
                    s.yielded += 1
                    if s.space_parked:
                        s.space.unpark()
                    return result  # type: ignore[no-any-return]
            elif s.unordered:
                s.yielded += 1
                if s.space_parked:
                    s.space.unpark()
                return s.unordered.popleft()  # type: ignore[no-any-return]
            if s.alive == 0 or s.closed:
                s.closed = True
                raise StopAsyncIteration
            assert s.loop is not None
            waiter = s.loop.create_future()
            s.waiter = waiter
            try:
                await waiter
            finally:
                if s.waiter is waiter:
                    s.waiter = None

    async def _raise_error(self) -> NoReturn:
        s = self._s
        error = s.error
        assert error is not None
        await s.shutdown(pull=True)
        s.reorder.clear()
        s.unordered.clear()
        if s.secondary_errors:
            error.add_note(
                f"amap: {s.secondary_errors} other call(s) also failed while the rest was cancelled"
            )
            s.secondary_errors = 0
        s.error = None  # raised once; the iterator is finished afterwards
        raise error

    async def aclose(self) -> None:
        """Cancel all work still running and wait for it to finish. Idempotent.

        Failures of the cancelled work are dropped, except a ``BaseException`` that is not an
        ``Exception`` (``KeyboardInterrupt``...), which is raised here rather than lost. A pull
        of the input in progress is waited for (see :func:`amap`)."""
        await self._close(pull=False)

    async def _close(self, *, pull: bool) -> None:
        s = self._s
        if s.loop is None:
            s.closed = True
            return
        await s.shutdown(pull=pull)
        s.reorder.clear()
        s.unordered.clear()
        error = s.error
        if error is not None and not isinstance(error, Exception | asyncio.CancelledError):
            s.error = None
            raise error

    async def __aenter__(self) -> AMap[R]:
        s = self._s
        if s.loop is None and not s.closed:
            s.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An exception leaving the block must not wait for the input's next item.
        await self._close(pull=exc is not None)

    def __del__(self) -> None:
        # Leaving `async for` early drops the iterator: cancel whatever still runs.
        s = self._s
        if s.loop is None or not s.workers or s.loop.is_closed():
            return
        s.closed = True
        s.abandoned = True
        if threading.get_ident() == s.thread_id:
            s.cancel_all()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                s.loop.call_soon_threadsafe(s.cancel_all)

    def statistics(self) -> AMapStatistics:
        s = self._s
        return AMapStatistics(
            concurrency=s.concurrency,
            workers=s.alive,
            running=s.busy,
            started=s.started,
            yielded=s.yielded,
            buffered=len(s.reorder) + len(s.unordered),
            failed=s.failed,
            exhausted=s.exhausted,
        )

    def __repr__(self) -> str:
        st = self.statistics()
        s = self._s
        mode = "ordered" if s.ordered else "unordered"
        state = "closed" if s.closed else ("new" if s.loop is None else "running")
        return (
            f"<amap {self._fn_name} {state} {mode} concurrency={st.concurrency} "
            f"workers={st.workers} running={st.running} started={st.started} "
            f"yielded={st.yielded} buffered={st.buffered} failed={st.failed}>"
        )


@overload
def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    concurrency: int,
    ordered: bool = ...,
    rate: float | None = ...,
    burst: int = ...,
    errors: Literal["raise"] = ...,
    buffer: int | None = ...,
) -> AMap[R]: ...


@overload
def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    concurrency: int,
    ordered: bool = ...,
    rate: float | None = ...,
    burst: int = ...,
    errors: Literal["collect"],
    buffer: int | None = ...,
) -> AMap[R | Failure[T]]: ...


def amap(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T] | AsyncIterable[T],
    *,
    concurrency: int,
    ordered: bool = True,
    rate: float | None = None,
    burst: int = 1,
    errors: Literal["raise", "collect"] = "raise",
    buffer: int | None = None,
) -> AMap[R] | AMap[R | Failure[T]]:
    """Map ``fn`` over ``items`` with at most ``concurrency`` calls running, as an async iterator.

    ``items`` may be a sync iterable, an async iterable, or infinite: it is pulled lazily, one
    item when a worker is ready for it, so memory stays O(concurrency + buffer) whatever the
    length. ``amap`` itself does no work until iterated.

    * ``ordered=True``: results come in input order. A slow item does not stop new work: items
      after it keep starting and finishing while their results wait in a reorder buffer, until
      ``concurrency + buffer`` items are started but not yet yielded; only then do new starts
      wait for the slow one. ``ordered=False``: results come as they complete, under the same
      bound (which also applies backpressure to a slow consumer).
    * ``buffer``: how far work may run ahead of the consumer (default ``2 * concurrency``).
    * ``rate``: at most this many calls start per second, with ``burst`` allowed at once
      (a :class:`RateLimiter`; see its window bound).
    * ``errors="raise"``: the first exception from ``fn`` (or from the input iterator) cancels all
      calls in flight, waits for them, and is raised by the ``async for``; results not yet
      yielded are discarded. ``errors="collect"``: every item is processed; a call that raised
      is yielded as a :class:`Failure` (its item, exception and index) in the result's place.
      Only ``Exception`` subclasses are collected; an input iterator that raises still raises.
    * A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, a test
      framework's failure) from ``fn`` or the input stops everything as in ``"raise"`` mode, in
      both modes, and is raised by the ``async for``. A ``CancelledError`` that ``fn`` raises
      while its worker is not being cancelled is a failure of that item, reported as a
      :class:`~loopwise.patterns.StrayCancellationError`.
    * Leaving the ``async for`` early (``break``, an exception, the iterator dropped) cancels
      every call still running. ``async with amap(...) as results:`` also *waits* for them to
      finish, which makes the cleanup deterministic; use it when the iterator is stored in a
      variable (a stored iterator is not dropped by ``break``).

    ``fn`` runs in worker tasks (started lazily, at most ``concurrency``) inside a copy of the
    context of the task that started iterating; a worker handles many items in turn, so a
    context variable set by ``fn`` can be seen by later items on the same worker. An async input
    is pulled by one worker at a time. The input iterator is not closed by ``amap``. When the
    consumer stops normally (``aclose()``, ``async with`` left without an exception) a pull in
    progress is not cancelled (that would finish an async generator): it is waited for and its
    item dropped, so the caller can keep iterating the input afterwards. On an error (raised by
    the ``async for``, or an exception leaving ``async with``), or when the task stopping it is
    being cancelled (a timeout fired, even before an ``aclose()`` in a ``finally``), a pull in
    progress is cancelled instead, so nothing waits for the input's next item; an async
    generator input is then finished.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if errors not in ("raise", "collect"):
        raise ValueError(f'errors must be "raise" or "collect", got {errors!r}')
    if buffer is None:
        buffer = 2 * concurrency
    elif isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0:
        raise ValueError(f"buffer must be an int >= 0 or None, got {buffer!r}")
    if not isinstance(items, Iterable | AsyncIterable):
        raise TypeError(f"amap() items must be an iterable or async iterable, got {items!r}")
    limiter = RateLimiter(rate, burst=burst) if rate is not None else None
    state: _State[T, Any] = _State(
        fn, items, concurrency, concurrency + buffer, ordered, errors == "collect", limiter
    )
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return AMap(state, name)
