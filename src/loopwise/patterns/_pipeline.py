"""Pipeline: stages of workers connected by bounded, closable channels."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from loopwise._exceptions import ClosedError, UsageError
from loopwise.patterns._cancel import cancelled_by_outsider, stray_error, this_task
from loopwise.patterns._channel import EMPTY, _Channel, _Drained
from loopwise.patterns._pipeline_parts import (
    PipelineStatistics,
    StageStatistics,
    State,
    _Results,
)

__all__ = ["Pipeline", "PipelineStatistics", "StageStatistics"]

T = TypeVar("T")
R = TypeVar("R")


class _Stage:
    __slots__ = ("alive", "buffer", "busy", "fn", "name", "processed", "workers")

    def __init__(
        self, fn: Callable[[Any], Awaitable[Any]], workers: int, buffer: int, name: str
    ) -> None:
        self.fn = fn
        self.workers = workers
        self.buffer = buffer
        self.name = name
        self.alive = 0
        self.busy = 0
        self.processed = 0


class Pipeline(Generic[T]):
    """Stages of worker tasks connected by bounded channels (backpressure)::

        pipe = Pipeline(urls).stage(fetch, workers=10).stage(save, workers=2)
        await pipe.run()                    # until the source is exhausted and everything is done

        async with Pipeline().stage(save, workers=4) as pipe:   # feed it by hand
            for row in rows:
                await pipe.put(row)         # waits while the first stage's channel is full
        # leaving the block closes it gracefully: everything accepted is processed

        async with Pipeline(urls, output=True).stage(fetch, workers=10) as pipe:
            async for page in pipe:         # the last stage's results, in completion order
                ...

    ``source`` is a sync or async iterable (optional: use :meth:`put` to feed it); when it is
    exhausted the pipeline closes itself. Each stage runs ``workers`` tasks calling
    ``await fn(item)``; what a stage returns goes to the next one. With ``output=False`` the last
    stage's return values are discarded.

    Guarantees:

    * **Graceful close** (:meth:`close`, leaving ``async with`` normally, source exhausted): no new
      item is accepted (``put()`` raises :class:`~loopwise.ClosedError`; a ``put()`` already
      waiting completes and its item is processed), every accepted item goes through every
      stage exactly once, then all workers exit. No sentinels: each channel is closed when the
      last worker feeding it has exited, and workers stop when their channel is closed and empty.
    * **Cancel** (:meth:`cancel`, an exception leaving ``async with``, the consumer cancelled):
      every worker is cancelled and awaited at once; items in flight or queued are dropped (and
      counted in ``statistics().dropped``).
    * **Failure**: the first exception raised by a stage function (or the source) cancels the
      pipeline like :meth:`cancel` and is raised by :meth:`run`, :meth:`close`, ``async with``
      and ``async for``; ``put()`` then raises :class:`~loopwise.ClosedError` caused by it. It is
      the original exception, with a note naming the stage. Later failures are counted in a
      note. Nothing waits forever on a crashed stage. A ``BaseException`` that is not an
      ``Exception`` is a failure too (and raised as it is); a ``CancelledError`` that a stage
      function or the source raises without being cancelled fails the pipeline as a
      :class:`~loopwise.patterns.StrayCancellationError`.
    * An async source is cancelled while it waits for its next item on a graceful close.
    * ``output=True``: a normal ``async with`` exit is a graceful close (results are read by an
      ``async for`` in another task, or stay queued for one after the block); after an
      ``async for`` over the results was left early it cancels instead. A close that cannot
      finish because nobody reads and the output buffer is full fails with
      :class:`~loopwise.UsageError` rather than hang.

    Requires no ``asyncio.Queue.shutdown`` (works on Python 3.11).
    """

    def __init__(
        self,
        source: Iterable[T] | AsyncIterable[T] | None = None,
        *,
        output: bool = False,
        buffer: int | None = None,
        name: str | None = None,
    ) -> None:
        if source is not None and not isinstance(source, Iterable | AsyncIterable):
            raise TypeError(
                f"Pipeline source must be an iterable or async iterable, got {source!r}"
            )
        if buffer is not None and (
            isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1
        ):
            raise ValueError(f"buffer must be an int >= 1 or None, got {buffer!r}")
        self._source = source
        self._output = output
        self._out_buffer = buffer
        self.name = name or "pipeline"
        self._stages: list[_Stage] = []
        self._channels: list[_Channel] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._feeder: asyncio.Task[None] | None = None
        self._feeder_pulling = False
        self._state: State = "new"
        self._putting = 0
        self._completed = 0
        self._failure: BaseException | None = None
        self._more_failures = 0
        self._done: asyncio.Future[None] | None = None
        self._readers = 0  # result iterators alive and not finished
        self._left_early = False  # a result iterator was dropped before the end
        self._close_requested = False  # close() or a normal `async with` exit
        self._exiting = False  # the close is the `async with` exit's

    # -- building -------------------------------------------------------------------------------

    def stage(
        self,
        fn: Callable[[T], Awaitable[R]],
        *,
        workers: int = 1,
        buffer: int | None = None,
        name: str | None = None,
    ) -> Pipeline[R]:
        """Add a stage: ``workers`` tasks each running ``await fn(item)`` on the items of the
        previous stage. ``buffer`` is the size of the stage's input channel; by default the
        larger of ``workers`` and the previous stage's workers, so that many workers handing
        their results to fewer do not each wait for a taker after every item. Returns the
        pipeline (typed by the new stage's result). Only before the pipeline starts.
        """
        if self._state != "new":
            raise UsageError("add every stage before the pipeline starts")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, got {workers!r}")
        if buffer is None:
            buffer = max(workers, self._stages[-1].workers if self._stages else 1)
        elif isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be an int >= 1 or None, got {buffer!r}")
        label = name or getattr(fn, "__qualname__", None) or f"stage {len(self._stages)}"
        self._stages.append(_Stage(fn, workers, buffer, label))
        return cast("Pipeline[R]", self)

    # -- lifecycle ------------------------------------------------------------------------------

    def _start(self) -> None:
        if self._state != "new":
            return
        if not self._stages:
            raise UsageError("a Pipeline needs at least one stage: call .stage(fn) first")
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._channels = [_Channel(s.buffer) for s in self._stages]
        if self._output:
            last = self._stages[-1]
            out = _Channel(self._out_buffer or max(last.workers, 1))
            out.on_blocked = lambda: loop.call_soon(self._check_stall)
            self._channels.append(out)
        self._state = "running"
        for index, stage in enumerate(self._stages):
            for _ in range(stage.workers):
                stage.alive += 1
                self._spawn(self._work(index, stage))
        if self._source is not None:
            self._feeder = self._spawn(self._feed(self._source))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # BaseException escaped
            self._fail(task.exception(), "worker")  # type: ignore[arg-type]
        if not self._tasks and self._done is not None and not self._done.done():
            if self._state in ("running", "closing"):
                self._state = "finished"
            self._done.set_result(None)

    async def __aenter__(self) -> Pipeline[T]:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            await self.cancel()
            if isinstance(exc, ClosedError) and exc.__cause__ is not None:
                # put() refused because a stage failed: the stage's failure is the real error
                self._raise_failure()
            return
        if (
            self._output
            and self._left_early
            and self._readers == 0
            and self._state in ("running", "closing")
        ):
            # The `async for` over the results was left early (break): nobody will read the
            # rest, so stop rather than process it.
            await self.cancel()
            self._raise_failure()
            return
        self._exiting = True
        await self.close()  # cancelled while draining, it cancels the pipeline

    async def run(self) -> None:
        """Start (if needed), wait until the source is exhausted and every item is processed, and
        raise the first failure if any. With ``output=True`` the results are read and dropped."""
        if self._source is None:
            raise UsageError(
                "run() needs a source: Pipeline(items); to feed it by hand, "
                "use `async with pipeline:` with put()"
            )
        self._start()
        try:
            if self._output:
                async for _ in self:
                    pass
            await self.wait()
        except BaseException:
            await self.cancel()
            raise

    async def put(self, item: Any) -> None:
        """Feed one item to the first stage, waiting while its channel is full.

        Raises :class:`~loopwise.ClosedError` once the pipeline is closing, finished, failed or
        cancelled (the item was not accepted). Cancelling a waiting ``put()`` accepts nothing.
        """
        if self._state == "new":
            raise UsageError("start the pipeline first: `async with pipeline:` then put()")
        self._check_open()
        self._putting += 1
        try:
            await self._channels[0].put(item)
        except ClosedError:
            raise self._closed_error() from self._failure
        finally:
            self._putting -= 1
            self._maybe_close_input()

    async def close(self) -> None:
        """Stop accepting items, let everything accepted go through every stage, wait for all
        workers to exit, and raise the first failure if any. Idempotent. If the task awaiting it
        is cancelled (a timeout around it, say), the pipeline is cancelled. Awaited from a stage
        function or the source (it would wait for itself) it raises
        :class:`~loopwise.UsageError`."""
        self._refuse_own_task("close()")
        if self._state == "new":
            self._state = "finished"
            return
        self._close_requested = True
        if self._state == "running":
            self._state = "closing"
            feeder = self._feeder
            if feeder is not None and self._feeder_pulling and not feeder.done():
                feeder.cancel()  # it holds no item while pulling
            self._maybe_close_input()
        # Not at once: a reader task created just before this close has not run its first step
        # (its `async for`) yet; the check runs after the tasks that are ready now.
        asyncio.get_running_loop().call_soon(self._check_stall)
        try:
            await self.wait()
        except asyncio.CancelledError:
            await self.cancel()  # cancelled while draining (a timeout, say): stop everything
            raise

    async def cancel(self) -> None:
        """Stop at once: cancel every worker, wait for them, drop queued items. Does not raise
        stage failures (:meth:`wait` still does)."""
        if self._state == "new":
            self._state = "cancelled"
            return
        if self._state in ("running", "closing"):
            self._state = "cancelled"
        self._abort()
        await self._wait_tasks()

    async def wait(self) -> None:
        """Wait until every worker has exited; raise the first failure if any."""
        self._refuse_own_task("wait()")
        if self._done is not None and not self._done.done():
            await asyncio.shield(self._done)
        self._raise_failure()

    # -- consuming ------------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[T]:
        if not self._output:
            raise UsageError("iterate a Pipeline created with output=True")
        if self._state == "new":
            raise UsageError("start the pipeline first: `async with pipeline:` around `async for`")
        return _Results(self)

    # -- statistics -----------------------------------------------------------------------------

    def statistics(self) -> PipelineStatistics:
        stages = tuple(
            StageStatistics(
                name=s.name,
                workers=s.alive,
                busy=s.busy,
                queued=len(self._channels[i]) if self._channels else 0,
                processed=s.processed,
            )
            for i, s in enumerate(self._stages)
        )
        dropped = 0
        if self._state in ("failed", "cancelled"):
            dropped = self._accepted - self._completed
        return PipelineStatistics(
            state=self._state,
            accepted=self._accepted,
            completed=self._completed,
            dropped=dropped,
            stages=stages,
        )

    @property
    def _accepted(self) -> int:
        # Counted by the first channel as items go in: a feeder's put that hands its item over
        # (handoff) and is cancelled before it resumes has still added it.
        return self._channels[0].added if self._channels else 0

    def __repr__(self) -> str:
        st = self.statistics()
        stages = ", ".join(f"{s.name}[{s.busy}/{s.workers} q={s.queued}]" for s in st.stages)
        return (
            f"<Pipeline {self.name} {st.state} accepted={st.accepted} completed={st.completed} "
            f"dropped={st.dropped} stages: {stages}>"
        )

    # -- internals ------------------------------------------------------------------------------

    async def _feed(self, source: Iterable[Any] | AsyncIterable[Any]) -> None:
        first = self._channels[0]
        try:
            if isinstance(source, AsyncIterable):
                ait = aiter(source)
                while self._state == "running":
                    self._feeder_pulling = True
                    try:
                        item = await anext(ait)
                    except StopAsyncIteration:
                        break
                    finally:
                        self._feeder_pulling = False
                    if not first.try_put(item):
                        await first.put(item, handoff=True)
            else:
                it = iter(source)
                while self._state == "running":
                    try:
                        item = next(it)
                    except StopIteration:
                        break
                    if not first.try_put(item):
                        await first.put(item, handoff=True)
        except asyncio.CancelledError as exc:
            if not this_task().cancelling():
                self._fail(stray_error(exc, "the source"), "source")
            elif self._state == "running":  # not cancelled by the pipeline
                self._fail(
                    cancelled_by_outsider(exc, "the source's task", "the pipeline"), "source"
                )
            elif self._state != "closing":
                raise
            # else a graceful close interrupted the wait for the next item: nothing was taken
        except ClosedError:
            pass  # the pipeline failed or was cancelled
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._fail(exc, "source")
        finally:
            self._feeder = None
            if self._state == "running":
                self._state = "closing"  # the source is exhausted
            self._maybe_close_input()

    async def _work(self, index: int, stage: _Stage) -> None:
        inbox = self._channels[index]
        outbox = self._channels[index + 1] if index + 1 < len(self._channels) else None
        last = index == len(self._stages) - 1
        # A worker's put into the next stage's channel may be completed by the getter that
        # makes room (see _Channel.put): the next stage then takes it without a wait. Not into
        # the output channel: a result counts as completed only once this worker resumes.
        handoff = not last
        fn = stage.fn
        try:
            while True:
                item = inbox.try_get()  # no coroutine when an item is there (most of the time)
                if item is EMPTY:
                    try:
                        item = await inbox.get()
                    except _Drained:
                        break
                stage.busy += 1
                try:
                    result = await fn(item)
                except asyncio.CancelledError as exc:
                    if this_task().cancelling():
                        raise  # a real cancellation of this worker
                    self._fail(stray_error(exc, f"stage {stage.name!r}"), f"stage {stage.name!r}")
                    return
                except GeneratorExit:
                    raise
                except BaseException as exc:  # KeyboardInterrupt etc. too: run() raises them
                    self._fail(exc, f"stage {stage.name!r}")
                    return
                finally:
                    stage.busy -= 1
                if outbox is not None and not outbox.try_put(result):
                    try:
                        await outbox.put(result, handoff=handoff)
                    except ClosedError:
                        return
                stage.processed += 1
                if last:
                    self._completed += 1
        except asyncio.CancelledError as exc:
            if self._state not in ("running", "closing"):
                raise  # the pipeline cancelled it (cancel() or a failure)
            what = f"a worker of stage {stage.name!r}"
            self._fail(cancelled_by_outsider(exc, what, "the pipeline"), f"stage {stage.name!r}")
        finally:
            stage.alive -= 1
            if stage.alive == 0 and outbox is not None:
                outbox.close()  # the last worker feeding it has exited: no sentinel needed

    def _maybe_close_input(self) -> None:
        if (
            self._state == "closing"
            and self._feeder is None
            and self._putting == 0
            and self._channels
            and not self._channels[0].closed
        ):
            self._channels[0].close()

    def _reader_gone(self, *, early: bool) -> None:
        self._readers -= 1
        if early:
            self._left_early = True
        if self._readers == 0 and self._close_requested:
            with contextlib.suppress(RuntimeError):  # the loop is gone (garbage collection)
                asyncio.get_running_loop().call_soon(self._check_stall)

    def _check_stall(self) -> None:
        """A close was asked for, the results fill the output channel and nobody iterates the
        pipeline: it can never finish. Fail with an error that says so instead of hanging (or,
        when the ``async with`` exit is closing it and the reader left early, cancel it as that
        exit does when the reader left before it)."""
        if (
            self._close_requested
            and self._output
            and self._readers == 0
            and self._state in ("running", "closing")
            and self._channels
            and self._channels[-1].full
            and self._channels[-1].blocked_puts > 0
        ):
            if self._exiting and self._left_early:
                self._state = "cancelled"
                self._abort()  # the exit's close() waits for the workers
                return
            self._fail(
                UsageError(
                    f"{self.name} (output=True) is closing but nobody reads its results and "
                    "they fill its output buffer: iterate it with `async for` while it drains "
                    "(from another task if you close it from this one), raise its buffer=, "
                    "or use output=False"
                ),
                "output",
            )

    def _refuse_own_task(self, what: str) -> None:
        if asyncio.current_task() in self._tasks:
            raise UsageError(
                f"{self.name}.{what} awaited from one of its own stages (or its source) would "
                "wait for itself: stop feeding it instead (let the source end), or close it "
                "from the task that owns the pipeline"
            )

    def _check_open(self) -> None:
        if self._state != "running":
            raise self._closed_error() from self._failure

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"the pipeline is {self._state}: the item was not accepted")

    def _fail(self, exc: BaseException, where: str) -> None:
        if self._failure is None:
            exc.add_note(f"raised in {self.name} {where}")
            self._failure = exc
            self._state = "failed"
            self._abort()
        elif exc is not self._failure:
            self._more_failures += 1

    def _abort(self) -> None:
        me = asyncio.current_task()
        for task in list(self._tasks):
            if task is not me:
                task.cancel()
        for channel in self._channels:
            channel.close()

    async def _wait_tasks(self) -> None:
        me = asyncio.current_task()
        pending = [t for t in self._tasks if t is not me]
        if pending:
            await asyncio.wait(pending)
        if self._done is not None and not self._tasks and not self._done.done():
            self._done.set_result(None)

    def _raise_failure(self) -> None:
        failure = self._failure
        if failure is None:
            return
        if self._more_failures:
            failure.add_note(f"{self._more_failures} other failure(s) happened while stopping")
            self._more_failures = 0
        raise failure
