"""LoopThread and run_sync: call async code from sync code without deadlocks."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack

from loopwise._exceptions import ClosedError, UsageError

__all__ = ["LoopThread", "LoopThreadStatistics", "run_sync"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

# The loop that "owns" the current context: set by loopwise.run() and by LoopThread calls. Worker
# threads started with asyncio.to_thread() inherit it, which is how run_sync() finds its loop.
home_loop: contextvars.ContextVar[asyncio.AbstractEventLoop] = contextvars.ContextVar(
    "loopwise_home_loop"
)

_ON_LOOP_THREAD = (
    "{what} was called on the thread that runs the event loop; blocking that thread until the "
    "coroutine finishes would deadlock, because the coroutine needs this very thread. "
    "In async code, `await` the coroutine instead; in sync code called from async code, run "
    "that sync code in a worker thread with `await asyncio.to_thread(func, ...)`, from where "
    "run_sync() works."
)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Call:
    """One coroutine call handed to a loop from another thread."""

    __slots__ = ("cancel_requested", "finished", "future", "loop", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.finished = threading.Event()
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False

    def start(
        self, fn: Callable[..., Any], args: tuple[Any, ...], context: contextvars.Context
    ) -> None:
        """Runs in the loop thread: call ``fn(*args)`` there and run the coroutine as a task."""
        if self.cancel_requested or self.future.cancelled():
            self.finished.set()
            return
        try:
            coro = context.run(fn, *args)
            if not asyncio.iscoroutine(coro):
                raise TypeError(f"{fn!r} must be an async function (it returned {coro!r})")
        except BaseException as exc:
            self.future.set_exception(exc)
            self.finished.set()
            return
        self.task = self.loop.create_task(coro, context=context)
        self.task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        try:
            if task.cancelled():
                self.future.cancel()
            elif (exc := task.exception()) is not None:
                self.future.set_exception(exc)
            else:
                self.future.set_result(task.result())
        except concurrent.futures.InvalidStateError:  # the caller cancelled it meanwhile
            pass
        finally:
            self.finished.set()

    def cancel(self) -> None:
        """Thread-safe: cancel the coroutine (before or after it started)."""
        self.future.cancel()
        try:
            self.loop.call_soon_threadsafe(self._cancel_in_loop)
        except RuntimeError:  # loop closed: the task is gone already
            self.finished.set()

    def _cancel_in_loop(self) -> None:
        self.cancel_requested = True
        if self.task is not None:
            self.task.cancel()

    def wait(self, timeout: float | None, what: str) -> Any:
        try:
            return self.future.result(timeout)
        except TimeoutError:
            self.cancel()
            self.finished.wait()
            raise TimeoutError(
                f"{what} did not finish within {timeout:g}s; it was cancelled"
            ) from None
        except concurrent.futures.CancelledError:
            raise ClosedError(
                f"{what} was cancelled before it finished (its loop closed?)"
            ) from None
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                self.cancel()
            raise


def _submit(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., Coroutine[Any, Any, T]],
    args: tuple[Any, ...],
) -> _Call:
    context = contextvars.copy_context()
    context.run(home_loop.set, loop)
    call = _Call(loop)
    try:
        loop.call_soon_threadsafe(call.start, fn, args, context)
    except RuntimeError:
        raise ClosedError("the event loop is closed: the call was not started") from None
    return call


@dataclass(frozen=True, slots=True)
class LoopThreadStatistics:
    """A snapshot of a :class:`LoopThread`."""

    state: Literal["new", "running", "closed"]
    calls: int
    """Calls submitted so far."""
    pending: int
    """Calls not finished yet."""


class LoopThread:
    """An event loop running in a background thread: call async code from sync code::

        with loopwise.LoopThread() as portal:
            page = portal.call(fetch, url, timeout=10)

    Guarantees:

    * ``call()`` runs the coroutine on the portal's loop and blocks until it finishes, returning
      its result or raising its exception. With ``timeout`` the coroutine is cancelled when the
      time is up, ``call()`` waits for the cancellation to finish, then raises ``TimeoutError``.
      ``KeyboardInterrupt`` while waiting cancels the coroutine too.
    * Context variables of the caller are visible to the coroutine (it runs in a copy of the
      caller's context; changes it makes are not copied back).
    * Calling ``call()`` (or :func:`run_sync`) from the portal's own thread raises
      :class:`~loopwise.UsageError` instead of deadlocking.
    * ``close()`` (or leaving ``with``) cancels the coroutines still running, waits for them,
      shuts down async generators and the default executor, closes the loop and joins the thread.
      Later calls raise :class:`~loopwise.ClosedError`.

    Async code running on the portal's loop that calls sync code through
    ``asyncio.to_thread()`` may use :func:`run_sync` there: it runs on this loop.
    ``loop_factory`` makes the loop (for example ``uvloop.new_event_loop``).
    """

    def __init__(
        self,
        *,
        name: str = "loopwise-loop",
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        daemon: bool = True,
    ) -> None:
        self.name = name
        self._loop_factory = loop_factory or asyncio.new_event_loop
        self._daemon = daemon
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._state: Literal["new", "running", "closed"] = "new"
        self._calls = 0
        self._pending: set[_Call] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's event loop (starts the thread if needed)."""
        self.start()
        assert self._loop is not None
        return self._loop

    def start(self) -> LoopThread:
        """Start the thread and its loop (idempotent); ``with`` and ``call()`` do it for you."""
        with self._lock:
            if self._state == "closed":
                raise ClosedError(f"the LoopThread {self.name!r} is closed")
            if self._state == "running":
                return self
            thread = threading.Thread(target=self._main, name=self.name, daemon=self._daemon)
            thread.start()
            self._ready.wait()
            if self._start_error is not None:
                raise self._start_error
            self._thread = thread
            self._state = "running"
        return self

    def call(
        self,
        fn: Callable[[Unpack[Ts]], Coroutine[Any, Any, T]],
        *args: *Ts,
        timeout: float | None = None,
    ) -> T:
        """Run ``await fn(*args)`` on the portal's loop and block until it finishes."""
        call = self._submit(fn, args, "LoopThread.call()")
        try:
            return call.wait(timeout, f"LoopThread.call({_name(fn)})")  # type: ignore[no-any-return]
        finally:
            self._forget(call)

    def submit(
        self, fn: Callable[[Unpack[Ts]], Coroutine[Any, Any, T]], *args: *Ts
    ) -> concurrent.futures.Future[T]:
        """Start ``await fn(*args)`` on the portal's loop and return a
        :class:`concurrent.futures.Future` at once; cancelling the future cancels the coroutine."""
        call = self._submit(fn, args, "LoopThread.submit()")

        def on_done(fut: concurrent.futures.Future[Any]) -> None:
            if fut.cancelled():
                call.cancel()
            self._forget(call)

        call.future.add_done_callback(on_done)
        return call.future

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join the thread. Idempotent."""
        with self._lock:
            if self._state != "running":
                self._state = "closed"
                return
            loop, thread = self._loop, self._thread
            assert loop is not None and thread is not None
            if threading.current_thread() is thread:
                raise UsageError(
                    "LoopThread.close() was called from the portal's own thread; call it from "
                    "the thread that started the portal"
                )
            self._state = "closed"
            loop.call_soon_threadsafe(loop.stop)
        thread.join()

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> LoopThreadStatistics:
        return LoopThreadStatistics(
            state=self._state, calls=self._calls, pending=len(self._pending)
        )

    def __repr__(self) -> str:
        st = self.statistics()
        return f"<LoopThread {self.name} {st.state} calls={st.calls} pending={st.pending}>"

    # -- internals ------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., Any], args: tuple[Any, ...], what: str) -> _Call:
        self.start()
        loop = self._loop
        assert loop is not None
        if _running_loop() is loop:
            raise UsageError(_ON_LOOP_THREAD.format(what=what))
        with self._lock:
            if self._state != "running":
                raise ClosedError(f"the LoopThread {self.name!r} is closed")
            call = _submit(loop, fn, args)
            self._calls += 1
            self._pending.add(call)
        return call

    def _forget(self, call: _Call) -> None:
        with self._lock:
            self._pending.discard(call)

    def _main(self) -> None:
        try:
            loop = self._loop_factory()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                _cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def _shared_portal() -> LoopThread:
    global _shared
    with _shared_lock:
        if _shared is None or _shared.statistics().state == "closed":
            _shared = LoopThread(name="loopwise-run-sync")
            _shared.start()
            atexit.register(_shared.close)
        return _shared


def run_sync(fn: Callable[[Unpack[Ts]], Coroutine[Any, Any, T]], *args: *Ts) -> T:
    """Run ``await fn(*args)`` from sync code and return its result (or raise its exception).

    * From a thread with no running loop that was started by async code (``asyncio.to_thread``)
      under :func:`loopwise.run` or a :class:`LoopThread`: the coroutine runs on *that* loop, so
      it can use the loop's sessions, locks and other loop-bound objects.
    * From plain sync code (no loop known): on a shared background :class:`LoopThread` started on
      first use (one loop for the whole process, so loop-bound objects survive between calls;
      it is closed at interpreter exit).
    * From the event loop's own thread: raises :class:`~loopwise.UsageError` telling what to do
      instead, because blocking that thread would deadlock.

    Context variables of the caller are visible to the coroutine.
    """
    what = f"run_sync({_name(fn)})"
    if _running_loop() is not None:
        raise UsageError(_ON_LOOP_THREAD.format(what="run_sync()"))
    loop = home_loop.get(None)
    if loop is not None and loop.is_running() and not loop.is_closed():
        try:
            call = _submit(loop, fn, args)
        except ClosedError:
            pass
        else:
            return call.wait(None, what)  # type: ignore[no-any-return]
    return _shared_portal().call(fn, *args)
