"""The doctor: one object that watches every event loop of the process while installed."""

from __future__ import annotations

import asyncio
import asyncio.events
import asyncio.runners
import collections
import contextlib
import logging
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopwise._exceptions import ConfigError, UsageError
from loopwise.doctor._loopwatch import LoopWatch
from loopwise.doctor._model import Event, set_base_directory
from loopwise.doctor._resources import ResourcePatches
from loopwise.doctor._tasks import (
    event_from_context,
    make_task_factory,
    pending_events,
    unawaited_event,
    unawaited_warning_text,
)
from loopwise.doctor._watchdog import Watchdog

if TYPE_CHECKING:
    from loopwise.doctor._monitor import Monitor

__all__ = ["Doctor", "DoctorStatistics", "active", "install", "uninstall", "watch"]

EventCallback = Callable[[Event], object]
_ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]

_active: Doctor | None = None
# The pytest plugin's doctor: in the background while no other is installed, set aside while one is.
_ambient: Doctor | None = None
_outer_ambients: list[Doctor] = []
_active_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class DoctorStatistics:
    """A snapshot of what a :class:`Doctor` has seen so far."""

    loops_watched: int
    events_by_kind: dict[str, int]
    events_dropped: int
    blocks_ignored: int


class _LoopState:
    __slots__ = ("factory", "handler", "inner_factory", "inner_handler", "watch")

    def __init__(self) -> None:
        self.watch: LoopWatch | None = None
        self.factory: Any = None
        self.inner_factory: Any = None
        self.handler: Any = None
        self.inner_handler: Any = None


class Doctor:
    """Watches event loops for blocking, leaked tasks, lost exceptions, lost awaits and leaks.

    Create one with :func:`install` or :func:`watch`. Events are kept in :attr:`events` (the most
    recent ``max_events``) and passed to ``on_event`` and ``logger`` as they are found, from
    whichever thread found them: the watchdog thread for ``blocked``, otherwise the thread that
    ran the loop or the garbage collector. A failing callback is ignored: the doctor never raises
    into the watched program and never changes what it computes.
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 100.0,
        on_event: EventCallback | None = None,
        logger: logging.Logger | None = None,
        task_sites: bool = True,
        track_coroutines: bool = False,
        gil_fallback: bool = False,
        max_events: int = 10_000,
        monitor: bool = False,
    ) -> None:
        if not threshold_ms > 0:
            raise ConfigError(f"threshold_ms must be a positive number of ms, not {threshold_ms!r}")
        if max_events < 1:
            raise ConfigError(f"max_events must be at least 1, not {max_events!r}")
        self._threshold_ms = float(threshold_ms)
        self.task_sites = task_sites
        # Set by the pytest plugin: every task, to tell when a lost exception awaits a collection.
        self._task_registry: weakref.WeakSet[Any] | None = None
        self.track_coroutines = track_coroutines
        self._on_event = on_event
        self._logger = logger
        self._events: collections.deque[Event] = collections.deque(maxlen=max_events)
        self._emitted = 0
        self._counts: collections.Counter[str] = collections.Counter()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._loops_watched = 0
        # Loops watched before an uninstall: installed again, the doctor gives each the same
        # task factory and exception handler as before.
        self._parked: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._watchdog = Watchdog(threshold_ms / 1000, self._emit, fallback=gil_fallback)
        self._resources = ResourcePatches(self._emit)
        self._monitor: Monitor | None = None
        if monitor:
            from loopwise.doctor._monitor import Monitor

            self._monitor = Monitor(self._watchdog, lambda: self._threshold_ms / 1000)
        self._undo: list[tuple[Any, str, Any]] = []
        self._replacements: dict[tuple[int, str], tuple[Any, Any]] = {}
        self._origin_depth: int | None = None
        self._installed = False

    def __repr__(self) -> str:
        state = "installed" if self._installed else "uninstalled"
        monitor = f" monitor={self.monitor_path!r}" if self.monitor_path is not None else ""
        return (
            f"<Doctor {state} threshold={self.threshold_ms:g}ms loops={len(self._loops)}"
            f" events={self._emitted}{monitor}>"
        )

    @property
    def threshold_ms(self) -> float:
        """Blocks longer than this many ms are reported; assignable while installed."""
        return self._threshold_ms

    @threshold_ms.setter
    def threshold_ms(self, value: float) -> None:
        if not value > 0:
            raise ConfigError(f"threshold_ms must be a positive number of ms, not {value!r}")
        self._threshold_ms = float(value)
        self._watchdog.set_threshold(self._threshold_ms / 1000)

    def sync(self, timeout: float = 1.0) -> None:
        """Wait (at most ``timeout`` s) until a block that just ended has been reported."""
        self._watchdog.sync(timeout)

    @property
    def events(self) -> list[Event]:
        """The events found so far, in the order they were found (at most ``max_events``)."""
        return list(self._events)

    @property
    def monitor_path(self) -> str | None:
        """The monitor's socket while it serves (``watch(monitor=True)``), else ``None``."""
        monitor = self._monitor
        return monitor.path if monitor is not None and monitor.serving else None

    @property
    def installed(self) -> bool:
        """True between :func:`install` and :func:`uninstall`."""
        return self._installed

    def statistics(self) -> DoctorStatistics:
        """Counts of loops watched and events found, by kind."""
        return DoctorStatistics(
            loops_watched=self._loops_watched,
            events_by_kind=dict(self._counts),
            events_dropped=max(0, self._emitted - len(self._events)),
            blocks_ignored=self._watchdog.blocks_ignored,
        )

    def events_since(self, index: int) -> list[Event]:
        """The events found after the first ``index`` ones (see :meth:`event_count`)."""
        skip = index - (self._emitted - len(self._events))
        return list(self._events)[max(0, skip) :]

    def event_count(self) -> int:
        """How many events were found so far, including any dropped from :attr:`events`."""
        return self._emitted

    # -- events -------------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._events.append(event)
        self._emitted += 1
        self._counts[event.kind.value] += 1
        if self._monitor is not None:
            self._monitor.note(event)
        if self._logger is not None:
            with contextlib.suppress(Exception):
                self._logger.warning("loopwise doctor: %s: %s", event.kind.value, event.message)
        if self._on_event is not None:
            with contextlib.suppress(Exception):
                self._on_event(event)

    # -- attaching to loops ---------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch ``loop`` too; call from the loop's thread. Watching a loop twice is a no-op."""
        if not self._installed or loop.is_closed() or loop in self._loops:
            return
        state = _LoopState()
        parked = self._parked.pop(loop, None)
        self._loops[loop] = state
        self._loops_watched += parked is None
        with contextlib.suppress(Exception):
            self._resources.apply()
        if self.task_sites:
            with contextlib.suppress(Exception):
                state.inner_factory = loop.get_task_factory()
                if parked is not None and parked.inner_factory is state.inner_factory:
                    state.factory = parked.factory  # the same one as before it was set aside
                else:
                    state.factory = make_task_factory(state.inner_factory, self._task_registry)
                loop.set_task_factory(state.factory)
        with contextlib.suppress(Exception):
            state.inner_handler = loop.get_exception_handler()
            if parked is not None and parked.inner_handler is state.inner_handler:
                state.handler = parked.handler
            else:
                state.handler = self._make_handler(state.inner_handler)
            loop.set_exception_handler(state.handler)
        with contextlib.suppress(Exception):
            state.watch = self._watchdog.watch(loop)
        if self._monitor is not None and not self._monitor.serving:
            with contextlib.suppress(Exception):  # a forked child opens its own socket
                self._monitor.start()

    def _restart(self, loop: asyncio.AbstractEventLoop) -> None:
        state = self._loops.get(loop)
        if state is not None and state.watch is not None:
            with contextlib.suppress(Exception):
                state.watch.start()

    def _make_handler(self, inner: _ExceptionHandler | None) -> _ExceptionHandler:
        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            with contextlib.suppress(Exception):
                event = event_from_context(context)
                if event is not None:
                    self._emit(event)
            if inner is not None:
                inner(loop, context)
            else:
                loop.default_exception_handler(context)

        return handler

    def _report_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop in self._loops:
            with contextlib.suppress(Exception):
                for event in pending_events(loop):
                    self._emit(event)

    # -- install / uninstall ----------------------------------------------------------------------

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        original = getattr(owner, name)
        # Installed again (after being set aside), the doctor patches in the same functions.
        kept = self._replacements.get((id(owner), name))
        if kept is not None and kept[0] is original:
            value = kept[1]
        self._replacements[(id(owner), name)] = (original, value)
        self._undo.append((owner, name, original))
        setattr(owner, name, value)

    def _install(self) -> None:
        self._installed = True
        set_base_directory(os.getcwd())
        doctor = self
        runner_cls = asyncio.runners.Runner
        lazy_init = runner_cls._lazy_init  # type: ignore[attr-defined]
        run = runner_cls.run

        def _lazy_init(self: asyncio.Runner) -> None:
            lazy_init(self)
            loop = self._loop  # type: ignore[attr-defined]
            if loop is not None:
                with contextlib.suppress(Exception):
                    doctor.attach(loop)

        def runner_run(self: asyncio.Runner, *args: Any, **kwargs: Any) -> Any:
            loop = self._loop  # type: ignore[attr-defined]
            if loop is not None:
                doctor._restart(loop)
            return run(self, *args, **kwargs)

        cancel_all = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]

        def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
            doctor._report_pending(loop)
            cancel_all(loop)

        new_loop = asyncio.events.new_event_loop

        def new_event_loop() -> asyncio.AbstractEventLoop:
            loop = new_loop()
            with contextlib.suppress(Exception):
                doctor.attach(loop)
            return loop

        self._patch(runner_cls, "_lazy_init", _lazy_init)
        self._patch(runner_cls, "run", runner_run)
        self._patch(asyncio.runners, "_cancel_all_tasks", _cancel_all_tasks)
        self._patch(asyncio.events, "new_event_loop", new_event_loop)
        self._patch(asyncio, "new_event_loop", new_event_loop)
        self._patch_aiohttp_run_app()
        self._patch_unawaited()
        if self._monitor is not None:
            from loopwise.doctor._monitor_answers import lock_holder_patches

            for owner, name, value in lock_holder_patches():
                self._patch(owner, name, value)
            self._monitor.start()
        if self.track_coroutines:
            self._origin_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(max(self._origin_depth, 16))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.attach(loop)

    def _patch_aiohttp_run_app(self) -> None:
        web = sys.modules.get("aiohttp.web")
        cancel = getattr(web, "_cancel_tasks", None)
        if web is None or cancel is None:
            return
        doctor = self

        def _cancel_tasks(to_cancel: Any, loop: asyncio.AbstractEventLoop) -> None:
            doctor._report_pending(loop)
            cancel(to_cancel, loop)

        self._patch(web, "_cancel_tasks", _cancel_tasks)

    def _patch_unawaited(self) -> None:
        original = getattr(warnings, "_warn_unawaited_coroutine", None)
        if original is None:
            return
        doctor = self

        def _warn_unawaited_coroutine(coro: object) -> None:
            with contextlib.suppress(Exception):
                doctor._emit(unawaited_event(coro, sys._getframe(1)))
            # Warn as the interpreter would, attributed to the frame that dropped the coroutine.
            warnings.warn(unawaited_warning_text(coro), RuntimeWarning, stacklevel=2, source=coro)

        self._patch(warnings, "_warn_unawaited_coroutine", _warn_unawaited_coroutine)

    def _uninstall(self) -> None:
        self._installed = False
        while self._undo:
            owner, name, value = self._undo.pop()
            setattr(owner, name, value)
        self._resources.remove()
        if self._origin_depth is not None:
            sys.set_coroutine_origin_tracking_depth(self._origin_depth)
            self._origin_depth = None
        for loop, state in list(self._loops.items()):
            self._detach(loop, state)
            if not loop.is_closed():
                self._parked[loop] = state
        self._loops = weakref.WeakKeyDictionary()  # a later install watches them afresh
        if self._monitor is not None:
            self._monitor.close()
        self._watchdog.stop()

    def _after_fork_in_child(self) -> None:
        """Forget the parent's loops; loops the child creates or runs are watched afresh."""
        self._loops = weakref.WeakKeyDictionary()
        self._parked = weakref.WeakKeyDictionary()
        self._watchdog.after_fork(child=True)
        if self._monitor is not None:
            self._monitor.after_fork_in_child()

    def _detach(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        if state.watch is not None:
            state.watch.stop()
        if loop.is_closed():
            return
        with contextlib.suppress(Exception):
            if state.factory is not None and loop.get_task_factory() is state.factory:
                loop.set_task_factory(state.inner_factory)
        with contextlib.suppress(Exception):
            if state.handler is not None and loop.get_exception_handler() is state.handler:
                loop.set_exception_handler(state.inner_handler)


def install(
    *,
    threshold_ms: float = 100.0,
    on_event: EventCallback | None = None,
    logger: logging.Logger | None = None,
    task_sites: bool = True,
    track_coroutines: bool = False,
    gil_fallback: bool = False,
    max_events: int = 10_000,
    monitor: bool = False,
) -> Doctor:
    """Start the doctor for the whole process and return it.

    It watches the running loop of the calling thread, if any, and every loop created or run
    afterwards through ``asyncio.run``, ``asyncio.Runner``, ``asyncio.new_event_loop``,
    ``uvloop.run`` or ``aiohttp.web.run_app``. Options:

    - ``threshold_ms``: report a loop that did not come back to its loop for longer than this.
    - ``on_event``: called with each :class:`Event` as it is found (from any thread).
    - ``logger``: each event is also logged there at WARNING level.
    - ``task_sites``: record the line that created each task (a task factory; default on).
    - ``track_coroutines``: record where every coroutine is created, so a coroutine never awaited
      names its creation line even when it was dropped elsewhere (costly; default off).
    - ``gil_fallback``: use ``faulthandler.dump_traceback_later`` to locate a C call that holds
      the GIL (it replaces any ``dump_traceback_later`` the program armed itself). Off by
      default: faulthandler reads the other threads' frames without the GIL, and when it fires
      because the whole process was merely starved or stopped, that can crash the process.
    - ``max_events``: how many events :attr:`Doctor.events` keeps.
    - ``monitor``: open a Unix socket (mode 0600, in the user's runtime directory, named by the
      PID) that ``loopwise ps``, ``pstree`` and ``top`` read the process's tasks and loop lag
      from (see :attr:`Doctor.monitor_path`). Off by default.

    Raises :class:`~loopwise.UsageError` if a doctor is already installed, and
    :class:`~loopwise.ConfigError` if the monitor's socket cannot be opened.
    """
    global _active
    doctor = Doctor(
        threshold_ms=threshold_ms,
        on_event=on_event,
        logger=logger,
        task_sites=task_sites,
        track_coroutines=track_coroutines,
        gil_fallback=gil_fallback,
        max_events=max_events,
        monitor=monitor,
    )
    with _active_lock:
        if _active is not None:
            raise UsageError(
                "the loopwise doctor is already installed; use the Doctor that install() "
                "returned, or call loopwise.doctor.uninstall() first"
            )
        _active = doctor
        if _ambient is not None and _ambient.installed:
            _ambient._uninstall()  # set aside until this doctor is uninstalled
    try:
        doctor._install()
    except BaseException:
        uninstall()
        raise
    return doctor


def uninstall() -> Doctor | None:
    """Stop the doctor: undo its patches, report blocks still going on, stop its thread.

    Returns the doctor that was installed (its events stay readable), or ``None``.
    """
    global _active
    with _active_lock:
        doctor, _active = _active, None
        if doctor is not None:
            doctor._uninstall()
            if _ambient is not None and not _ambient.installed:
                _ambient._install()
    return doctor


def _install_ambient(doctor: Doctor) -> None:
    """Install the pytest plugin's ``doctor``: :func:`install` sets it aside while it is in use.

    :func:`active` and :func:`uninstall` do not see it, so a test that installs its own
    doctor (or checks that none is left installed) behaves as without the plugin. A pytest
    run inside a test (pytester) stacks its plugin's doctor on the outer one.
    """
    global _ambient
    with _active_lock:
        if _ambient is not None:
            if _ambient.installed:
                _ambient._uninstall()
            _outer_ambients.append(_ambient)
        _ambient = doctor
        if _active is None:
            doctor._install()


def _uninstall_ambient(doctor: Doctor) -> None:
    global _ambient
    with _active_lock:
        if doctor.installed:
            doctor._uninstall()
        if _ambient is doctor:
            _ambient = _outer_ambients.pop() if _outer_ambients else None
            if _ambient is not None and _active is None:
                _ambient._install()
        elif doctor in _outer_ambients:
            _outer_ambients.remove(doctor)


def active() -> Doctor | None:
    """The installed doctor, or ``None`` (the pytest plugin's own doctor is not shown)."""
    return _active


@contextlib.contextmanager
def watch(
    *,
    threshold_ms: float = 100.0,
    on_event: EventCallback | None = None,
    logger: logging.Logger | None = None,
    task_sites: bool = True,
    track_coroutines: bool = False,
    gil_fallback: bool = False,
    max_events: int = 10_000,
    monitor: bool = False,
) -> Iterator[Doctor]:
    """:func:`install` on entry and :func:`uninstall` on exit, even if the body raises."""
    doctor = install(
        threshold_ms=threshold_ms,
        on_event=on_event,
        logger=logger,
        task_sites=task_sites,
        track_coroutines=track_coroutines,
        gil_fallback=gil_fallback,
        max_events=max_events,
        monitor=monitor,
    )
    try:
        yield doctor
    finally:
        uninstall()
