"""amap's worker tasks and the state they share with the consumer."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from loopwise.patterns._cancel import cancelled_by_outsider, stray_error, this_task
from loopwise.patterns._limit import RateLimiter
from loopwise.patterns._parking import ParkingLot

__all__ = ["_MISSING", "Failure", "_State"]

T = TypeVar("T")
R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)

_MISSING: Any = object()
_FULL: Any = object()


@dataclass(frozen=True, slots=True)
class Failure(Generic[T_co]):
    """An item whose call failed, yielded by ``amap(..., errors="collect")`` in place of a result.

    It is not an exception, so a function that *returns* exceptions cannot be confused with one
    that raised; test with ``isinstance(x, loopwise.Failure)``.
    """

    item: T_co
    """The input item."""
    exception: Exception
    """What ``fn(item)`` raised."""
    index: int
    """The item's position in the input, from 0."""

    def unwrap(self) -> NoReturn:
        """Raise the exception."""
        raise self.exception


class _State(Generic[T, R]):
    """Everything the worker tasks share. The public :class:`AMap` owns it; workers never hold a
    reference to the AMap itself, so dropping the AMap (leaving ``async for`` early) frees it."""

    # Slots: over 30 attributes, an instance dict stops sharing keys and every attribute
    # access on the per-item path gets slower (measured +6 % CPU per item).
    __slots__ = (
        "abandoned",
        "ait",
        "alive",
        "busy",
        "cap",
        "closed",
        "collect",
        "concurrency",
        "context",
        "error",
        "exhausted",
        "failed",
        "fn",
        "it",
        "items",
        "limiter",
        "loop",
        "ordered",
        "pull_lock",
        "puller",
        "reorder",
        "secondary_errors",
        "space",
        "space_parked",
        "spawning",
        "started",
        "thread_id",
        "unordered",
        "waiter",
        "workers",
        "yielded",
    )

    def __init__(
        self,
        fn: Callable[[T], Awaitable[R]],
        items: Iterable[T] | AsyncIterable[T],
        concurrency: int,
        cap: int,
        ordered: bool,
        collect: bool,
        limiter: RateLimiter | None,
    ) -> None:
        self.fn = fn
        self.items = items
        self.it: Iterator[T] | None = None
        self.ait: AsyncIterator[T] | None = None
        self.pull_lock: asyncio.Lock | None = None
        self.puller: asyncio.Task[None] | None = None  # the worker inside anext(), if any
        self.concurrency = concurrency
        self.cap = cap
        self.ordered = ordered
        self.collect = collect
        self.limiter = limiter
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id = 0
        self.context: contextvars.Context | None = None
        self.workers: set[asyncio.Task[None]] = set()
        self.alive = 0
        self.busy = 0
        self.started = 0
        self.yielded = 0
        self.failed = 0
        self.unordered: collections.deque[Any] = collections.deque()
        self.reorder: dict[int, Any] = {}
        self.waiter: asyncio.Future[None] | None = None
        # Workers waiting for the consumer to make room in the window; a woken worker that is
        # cancelled before it resumes passes its wake-up on.
        self.space = ParkingLot(on_abandoned=lambda _wakeup: self.space.unpark())
        # The lot's own table, for a C-level "anyone parked?" test on every yielded item.
        self.space_parked = self.space._parked
        self.exhausted = False
        self.error: BaseException | None = None
        self.secondary_errors = 0
        self.closed = False
        self.abandoned = False  # the AMap was dropped: nobody will raise self.error
        self.spawning = False  # inside create_task() of a worker (eager task factories)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.context = contextvars.copy_context()
        items = self.items
        if isinstance(items, AsyncIterable):
            self.ait = aiter(items)
            self.pull_lock = asyncio.Lock()
        elif isinstance(items, Iterable):
            self.it = iter(items)
        else:
            raise TypeError(f"amap() items must be an iterable or async iterable, got {items!r}")
        del self.items
        self.spawn()

    def spawn(self) -> None:
        assert self.loop is not None and self.context is not None
        if self.spawning:
            # An eager task factory is running a new worker inside create_task() and that
            # worker wants a spare too: start it from the loop, not nested in this one (with a
            # large concurrency the nesting would reach the recursion limit).
            self.loop.call_soon(self.spawn_if_needed)
            return
        self.alive += 1
        self.spawning = True
        try:
            task = self.loop.create_task(self.work(), context=self.context.copy())
        finally:
            self.spawning = False
        self.workers.add(task)
        task.add_done_callback(self.workers.discard)

    def spawn_if_needed(self) -> None:
        """Start a spare worker if every worker is busy and the concurrency allows one."""
        if (
            self.error is None
            and not self.exhausted
            and not self.closed
            and self.alive == self.busy
            and self.alive < self.concurrency
        ):
            self.spawn()

    def cancel_all(self, *, pull: bool = False) -> None:
        """Request cancellation of every worker (does not wait). A worker inside ``anext()`` of
        an async input is spared unless ``pull``: cancelling it would raise CancelledError
        inside the caller's async generator and finish it; it stops after its pull instead."""
        me = None
        if self.thread_id == threading.get_ident():
            try:
                me = asyncio.current_task()
            except RuntimeError:  # no running loop (garbage collection at teardown)
                me = None
        spared = None if pull else self.puller
        for task in list(self.workers):
            if task is not me and task is not spared:
                task.cancel()
        self.wake_consumer()
        self.space.unpark_all()

    async def shutdown(self, *, pull: bool = False) -> None:
        """Cancel every worker and wait until all have finished. A pull in progress is waited
        for, unless ``pull`` (amap is failing: an error must not wait for the input's next
        item) or the task waiting is being cancelled (now, or already: an ``aclose()`` in a
        ``finally`` after a timeout fired): then the pull is cancelled too."""
        self.closed = True
        me = asyncio.current_task()
        if me is not None and me.cancelling():
            pull = True
        self.cancel_all(pull=pull)
        pending = [t for t in self.workers if t is not asyncio.current_task()]
        if pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                self.cancel_all(pull=True)
                await asyncio.wait(pending)  # cancelled workers end within a step or two
                raise

    # -- signalling -----------------------------------------------------------------------------

    def wake_consumer(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self.cancel_all()
        elif exc is not self.error:
            self.secondary_errors += 1

    def exhaust(self) -> None:
        self.exhausted = True
        self.space.unpark_all()

    # -- the worker -----------------------------------------------------------------------------

    async def pull_async(self) -> Any:
        """Next item of an async input, _MISSING at the end, _FULL when out of window."""
        assert self.pull_lock is not None and self.ait is not None
        async with self.pull_lock:
            if self.exhausted or self.error is not None or self.closed:
                return _MISSING
            if self.started - self.yielded >= self.cap:
                return _FULL
            self.puller = asyncio.current_task()
            try:
                item = await anext(self.ait)
            except StopAsyncIteration:
                self.exhaust()
                return _MISSING
            finally:
                self.puller = None
            if self.error is not None or self.closed:
                return _MISSING  # amap stopped during the pull: the item is dropped
            return item

    async def work(self) -> None:
        fn = self.fn
        collect = self.collect
        ordered = self.ordered
        limiter = self.limiter
        it = self.it
        try:
            while True:
                if self.error is not None or self.exhausted or self.closed:
                    return
                if self.started - self.yielded >= self.cap:
                    await self.space.park()
                    continue
                if it is not None:
                    try:
                        item = next(it)
                    except StopIteration:
                        self.exhaust()
                        return
                else:
                    item = await self.pull_async()
                    if item is _FULL:
                        continue
                    if item is _MISSING:
                        return
                index = self.started
                self.started = index + 1
                # Keep one spare worker ready to pull while this one is busy, up to concurrency.
                # Counted busy first: an eager task factory runs the new worker inside spawn(),
                # and it must not take this one for the idle spare.
                self.busy += 1
                if self.alive == self.busy and self.alive < self.concurrency:
                    self.spawn()
                try:
                    if limiter is not None:
                        self.busy -= 1  # waiting for the rate limit is not running fn
                        try:
                            await limiter.acquire()
                        finally:
                            self.busy += 1
                    result: Any = await fn(item)
                except Exception as exc:
                    self.failed += 1
                    if not collect:
                        self.fail(exc)
                        return
                    result = Failure(item, exc, index)
                except asyncio.CancelledError as exc:
                    if this_task().cancelling():
                        raise  # a real cancellation of this worker
                    stray = stray_error(exc, f"amap's fn (item {index})")
                    self.failed += 1
                    if not collect:
                        self.fail(stray)
                        return
                    result = Failure(item, stray, index)
                finally:
                    self.busy -= 1
                if ordered:
                    self.reorder[index] = result
                    if index == self.yielded:
                        self.wake_consumer()
                else:
                    self.unordered.append(result)
                    if self.waiter is not None:
                        self.wake_consumer()
        except asyncio.CancelledError as exc:
            if self.error is None and not self.closed:
                # The worker was cancelled by someone other than amap (asyncio.run's cleanup,
                # say), or the input raised CancelledError by itself: report it rather than
                # hang the consumer.
                if not this_task().cancelling():
                    self.fail(stray_error(exc, "amap's input"))
                    return
                self.fail(cancelled_by_outsider(exc, "an amap worker", "amap"))
            raise
        except GeneratorExit:
            raise  # the coroutine is being closed (its loop is gone)
        except BaseException as exc:
            # The input iterator failed, or fn raised a BaseException that is not an Exception
            # (KeyboardInterrupt, a test framework's failure): the consumer raises it. Not
            # re-raised here, so no "Task exception was never retrieved".
            self.fail(exc)
            if self.abandoned and not isinstance(exc, Exception):
                raise  # nobody will raise it (the iterator was dropped): let asyncio report it
        finally:
            self.alive -= 1
            if self.alive == 0:
                self.wake_consumer()
