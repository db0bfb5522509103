"""Supervisor: a TaskGroup that also runs long-lived background tasks and restartable services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack

from loopwise._exceptions import ClosedError, UsageError
from loopwise.patterns._cancel import StrayCancellationError, stray_error, this_task
from loopwise.patterns._retry import Retry, retry

__all__ = ["Supervisor", "SupervisorStatistics"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

State = Literal["new", "running", "stopping", "closed"]

_DEFAULT_RESTART = retry(attempts=None, backoff=0.1, max_backoff=30.0)


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """A snapshot of a :class:`Supervisor`."""

    state: State
    tasks: int
    """Tasks the scope waits for on exit, still running."""
    background: int
    """Background tasks and services still running (cancelled on exit)."""
    services: int
    """Of those, services started with :meth:`Supervisor.supervise`."""
    restarts: int
    """Service restarts so far (each one logged)."""


class Supervisor:
    """An ``async with`` scope like :class:`asyncio.TaskGroup` that also owns long-lived tasks::

        async with loopwise.Supervisor(name="app") as sup:
            sup.supervise(heartbeat, interval)          # restarted with backoff when it fails
            sup.create_task(refresh_cache(), background=True)
            await serve()                               # the scope's own work
        # exit: waits for create_task() tasks, cancels background ones, awaits everything

    Guarantees:

    * **A reference to every task** is kept until it ends (no task vanishes to the garbage
      collector mid-flight).
    * **Every exception is raised or logged**, none is "never retrieved": an exception in a task
      started with :meth:`create_task`, or in a service that gave up, cancels everything in the
      scope and is raised on exit in a :class:`BaseExceptionGroup`, exactly like a TaskGroup (use
      ``except*``). A service failure that is restarted is logged (with its traceback) at
      ``ERROR`` on ``logger`` (default ``logging.getLogger("loopwise.patterns")``).
    * **Exit** (normal): waits for the :meth:`create_task` tasks (``background=False``), then
      cancels background tasks and services and awaits them. Exit by an exception or by
      cancellation: cancels and awaits everything. Nothing outlives the ``async with`` block.
    * After exit starts, :meth:`create_task` and :meth:`supervise` raise
      :class:`~loopwise.ClosedError` (the coroutine is closed, not left un-awaited).
    """

    def __init__(self, *, name: str | None = None, logger: logging.Logger | None = None) -> None:
        self.name = name or "supervisor"
        self._log = logger or logging.getLogger("loopwise.patterns")
        self._tg: asyncio.TaskGroup | None = None
        self._state: State = "new"
        self._foreground: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._services: set[asyncio.Task[Any]] = set()
        self._restarts = 0
        self._strays: list[StrayCancellationError] = []

    async def __aenter__(self) -> Supervisor:
        if self._state != "new":
            raise UsageError("a Supervisor is entered once: create a new one for each scope")
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._state = "running"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        try:
            if exc is None:
                while pending := [t for t in self._foreground if not t.done()]:
                    await asyncio.wait(pending)
        except asyncio.CancelledError as cancelled:
            # A child failed (the TaskGroup cancels its parent to stop the body) or we are being
            # cancelled: hand it to the TaskGroup, which tells the two apart.
            exc_type, exc, tb = type(cancelled), cancelled, cancelled.__traceback__
        finally:
            self._state = "stopping"
            for task in list(self._background):
                task.cancel()
        try:
            await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            if self._strays:
                raise BaseExceptionGroup(
                    group.message, [*group.exceptions, *self._strays]
                ) from None
            raise
        finally:
            self._state = "closed"
        if self._strays and not isinstance(exc, asyncio.CancelledError):
            errors: list[BaseException] = [exc] if exc is not None else []
            raise BaseExceptionGroup(f"unhandled errors in {self.name}", [*errors, *self._strays])

    def create_task(
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        background: bool = False,
    ) -> asyncio.Task[T]:
        """Start ``coro`` as a task of this scope and return it.

        ``background=False``: the scope waits for it on exit. ``background=True``: a long-lived
        task, cancelled on exit. Either way an exception in it cancels the scope and is raised.
        """
        tg = self._check_running(coro)
        task = tg.create_task(coro, name=name)
        group = self._background if background else self._foreground
        group.add(task)
        task.add_done_callback(group.discard)
        task.add_done_callback(self._check_stray)
        return task

    def _check_stray(self, task: asyncio.Task[Any]) -> None:
        # A task that raised CancelledError without anyone calling cancel() on it: a TaskGroup
        # would count it as cancelled and forget it. Log it now, raise it on exit.
        if not task.cancelled() or task.cancelling() > 0:
            return
        error = StrayCancellationError(
            f"task {task.get_name()!r} of {self.name} raised CancelledError without being "
            "cancelled (did it await a future or task cancelled elsewhere?)"
        )
        try:
            task.result()
        except asyncio.CancelledError as cancelled:
            error.__cause__ = cancelled
        self._log.error("%s: %s; it is raised when the scope exits", self.name, error)
        self._strays.append(error)

    def supervise(
        self,
        fn: Callable[[Unpack[Ts]], Awaitable[object]],
        *args: *Ts,
        name: str | None = None,
        restart: bool | Retry = True,
        reset_after: float = 60.0,
    ) -> asyncio.Task[None]:
        """Run ``await fn(*args)`` as a background service, restarted when it fails.

        * ``restart=True``: restart after every ``Exception`` with exponential backoff and full
          jitter (0.1 s doubling up to 30 s), without limit. ``restart=Retry(...)`` (from
          :func:`loopwise.retry`): that policy's backoff, ``on`` filter, ``attempts`` and
          ``max_time``; when it gives up the last exception is raised out of the scope.
          ``restart=False``: a failure is raised out of the scope at once.
        * Each restart is logged at ``ERROR`` with the traceback.
        * A service that ran ``reset_after`` seconds (> 0) before failing is restarted at once,
          with its backoff, attempt count and ``max_time`` budget reset (a healthy run never
          counts against the policy).
        * Returning normally ends the service (it is not restarted). It is cancelled on exit.
        * A ``CancelledError`` the service raises without being cancelled is a failure (a
          :class:`~loopwise.patterns.StrayCancellationError`), restarted like any other. A
          ``BaseException`` that is not an ``Exception`` is never restarted: it is raised out of
          the scope.
        """
        if isinstance(reset_after, bool) or not isinstance(reset_after, int | float):
            raise TypeError(f"reset_after must be a number of seconds, got {reset_after!r}")
        if not reset_after > 0:  # also NaN
            # 0 would count every failure as a healthy run: restarted at once, forever
            raise ValueError(
                f"reset_after must be > 0 seconds (float('inf'): never reset), got {reset_after!r}"
            )
        label = name or getattr(fn, "__qualname__", None) or repr(fn)
        policy = None if restart is False else (_DEFAULT_RESTART if restart is True else restart)
        if policy is not None and not isinstance(policy, Retry):
            raise TypeError(f"restart must be a bool or a loopwise.Retry, got {restart!r}")
        coro = self._service(fn, args, label, policy, reset_after)
        task = self.create_task(coro, name=label, background=True)
        self._services.add(task)
        task.add_done_callback(self._services.discard)
        return task

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            state=self._state,
            tasks=len(self._foreground),
            background=len(self._background),
            services=len(self._services),
            restarts=self._restarts,
        )

    def __repr__(self) -> str:
        st = self.statistics()
        return (
            f"<Supervisor {self.name} {st.state} tasks={st.tasks} background={st.background} "
            f"services={st.services} restarts={st.restarts}>"
        )

    # -- internals ------------------------------------------------------------------------------

    def _check_running(self, coro: Coroutine[Any, Any, Any]) -> asyncio.TaskGroup:
        if self._state == "running" and self._tg is not None:
            return self._tg
        coro.close()  # never leave it "never awaited"
        if self._state == "new":
            raise UsageError("enter the Supervisor first: `async with Supervisor() as sup:`")
        raise ClosedError(
            f"the Supervisor {self.name!r} is {self._state}: the task was not started"
        )

    async def _service(
        self,
        fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
        label: str,
        policy: Retry | None,
        reset_after: float,
    ) -> None:
        if policy is None:
            await _run_once(fn, args, label)
            return
        loop = asyncio.get_running_loop()
        try:
            while True:  # one attempt loop per run of failures; a healthy run starts a new one
                async for attempt in policy:
                    began = loop.time()
                    try:
                        await _run_once(fn, args, label)
                        return
                    except Exception as exc:
                        failure = exc
                        ran = loop.time() - began
                    if ran >= reset_after and policy.retries(failure):
                        # Decided before the policy sees the failure: a healthy run must not
                        # use up the attempts or the time budget of the failures before it.
                        self._restarts += 1
                        self._log.error(
                            "%s: service %r failed after running %.3gs; restarting now",
                            self.name,
                            label,
                            ran,
                            exc_info=failure,
                        )
                        break
                    with attempt:
                        raise failure  # the policy retries it (then we sleep) or gives up
                    self._restarts += 1
                    self._log.error(
                        "%s: service %r failed (failure %d); restarting in %.3gs",
                        self.name,
                        label,
                        attempt.number,
                        attempt.delay,
                        exc_info=attempt.exception,
                    )
                else:
                    return
        except Exception as exc:
            exc.add_note(f"service {label!r} of {self.name} gave up")
            raise


async def _run_once(
    fn: Callable[..., Awaitable[object]], args: tuple[Any, ...], label: str
) -> None:
    try:
        await fn(*args)
    except asyncio.CancelledError as exc:
        # A service that raises CancelledError without being cancelled would end as a
        # "cancelled" task, which a TaskGroup ignores: it would vanish. Make it a failure.
        if this_task().cancelling():
            raise
        raise stray_error(exc, f"service {label!r}") from exc
