"""How the doctor follows one event loop: from the loop thread's side, or with a heartbeat.

For asyncio's selector loops (the default on Unix, and subclasses of it such as virtual-clock
test loops) the doctor wraps two methods *of that loop instance*: the selector's ``select``
(when it returns, the loop starts running callbacks) and ``_run_once`` (when it returns, they
are done). It adds no timer, no callback and no task, and never reads ``loop.time()``, so a
test that counts the loop's timers or drives its clock sees nothing of it.

Other loops (uvloop, the proactor loop) get a heartbeat: a timer callback that re-arms itself
every ``interval``; a beat that runs late by more than the threshold means the loop thread did
not come back to the loop for that long. A loop whose ``time()`` is not the monotonic clock and
that has no selector to wrap is not watched for blocks at all (a heartbeat would show in its
clock).

Both record ``(start, end, clock)`` for each stretch longer than the threshold; the watchdog
thread judges them. ``clock`` is the loop thread's own CPU and run-queue time at the end
(:func:`thread_clock`), so a loop starved by other processes is not mistaken for a blocked one.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import ctypes
import os
import threading
import time
from typing import Any

from loopwise.doctor._handoff import Handoff, yield_to_doctor
from loopwise.doctor._model import Frame

__all__ = [
    "LAG_EDGES",
    "Clock",
    "ClockReader",
    "HeartbeatWatch",
    "LoopWatch",
    "SelectorWatch",
    "thread_clock",
    "watch_loop",
]

_monotonic = time.monotonic
_get_ident = threading.get_ident
_INF = float("inf")

#: (monotonic time, thread CPU seconds, seconds spent runnable but waiting for a CPU)
Clock = tuple[float, float, float]

#: Upper edges (seconds) of the loop-lag histogram kept while the monitor is on; the last
#: bucket holds everything longer.
LAG_EDGES = (
    0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
    0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
_bucket = bisect.bisect_left
_FIRST_EDGE = LAG_EDGES[0]

#: How many times at most a loop thread waits for the doctor's thread at one moment, and how
#: far apart the first two waits are (the spacing doubles after each wait).
YIELD_TRIES = 12
YIELD_SPACING = 0.005


def _gil_holding_pread() -> Any:
    """libc's ``pread`` called with the GIL held, or None where it cannot be loaded.

    ``os.pread`` releases the GIL around the system call, and taking it back makes the loop
    thread hand it over once more; a read of a ``schedstat`` file takes a microsecond or two and
    never waits, so holding the GIL through it is cheaper for the loop than two hand-overs.
    """
    try:
        pread = ctypes.PyDLL(None, use_errno=True).pread
    except (OSError, AttributeError):
        return None
    pread.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_long)
    pread.restype = ctypes.c_ssize_t
    return pread


def thread_clock(native_id: int | None) -> Clock | None:
    """The CPU and run-queue time of thread ``native_id`` so far (Linux ``schedstat``), or None."""
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/schedstat", "rb") as handle:
            on_cpu, waiting, _ = handle.read().split()
    except (OSError, ValueError):
        return None
    return (_monotonic(), int(on_cpu) / 1e9, int(waiting) / 1e9)


class ClockReader:
    """:func:`thread_clock` for one reading thread that reads the same threads again and again.

    It keeps each thread's ``schedstat`` file open and reads it with a single ``pread``: opening
    the file anew costs several system calls, each of which hands the GIL to the loop thread and
    back (the watchdog reads two clocks on every tick, and that showed in the loop's
    throughput). The file of a thread that ended keeps showing its last figures, and its id may
    be given to a new thread: every ``reopen_every`` reads all files are opened anew, which
    bounds both how long a figure can be stale and how many files stay open. After ``fork()``
    the parent's files are dropped. Use it from one thread only and :meth:`close` it when done.
    """

    def __init__(self, reopen_every: int = 64) -> None:
        self._pid = os.getpid()
        self._files: dict[int, int] = {}
        self._reopen_every = reopen_every
        self._reads = 0
        self._pread = _gil_holding_pread()
        self._buffer = ctypes.create_string_buffer(128)

    def read(self, native_id: int | None) -> Clock | None:
        if native_id is None:
            return None
        self._reads += 1
        if self._reads >= self._reopen_every or os.getpid() != self._pid:
            self.close()
            self._reads = 0
            self._pid = os.getpid()
        fd = self._files.get(native_id)
        for attempt in range(2):
            if fd is None:
                try:
                    fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)
                except OSError:
                    return None
                self._files[native_id] = fd
            try:
                on_cpu, waiting, _ = self._read(fd).split()
                return (_monotonic(), int(on_cpu) / 1e9, int(waiting) / 1e9)
            except (OSError, ValueError):
                self._forget(native_id)
                fd = None
                if attempt:
                    return None
        return None

    def _read(self, fd: int) -> bytes:
        if self._pread is None:
            return os.pread(fd, 128, 0)
        size = self._pread(fd, self._buffer, 128, 0)
        if size < 0:
            raise OSError(ctypes.get_errno(), "pread failed")
        return self._buffer.raw[:size]

    def _forget(self, native_id: int) -> None:
        fd = self._files.pop(native_id, None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        for native_id in list(self._files):
            self._forget(native_id)


class LoopWatch:
    """What the watchdog knows of one loop.

    ``away_since`` is when the loop thread last left the loop to run code (``inf`` while it is
    back in the loop); ``late`` holds the ``(start, end, clock)`` of each stretch longer than the
    threshold, appended by the loop thread and consumed by the watchdog thread.
    """

    kind = "abstract"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold: float, handoff: Handoff | None = None
    ) -> None:
        self.loop = loop
        self.threshold = threshold
        self.handoff = handoff if handoff is not None else Handoff()
        # The doctor's gate this loop's thread last waited at, how often, and when next.
        self._gate: object = None
        self._tries = 0
        self._next_try = 0.0
        self.away_since = _INF
        self.thread_id: int | None = None
        self.native_id: int | None = None
        self.late: collections.deque[tuple[float, float, Clock | None]] = collections.deque()
        # Watchdog thread only: stack samples (time, stack, callback name) and clock readings.
        self.samples: list[tuple[float, tuple[Frame, ...], str | None]] = []
        self.clocks: collections.deque[Clock] = collections.deque(maxlen=64)
        self.last_not_running = float("-inf")
        self.active = True
        # While the monitor is on: how many loop iterations took how long (see LAG_EDGES),
        # counted by the loop thread; the monitor swaps in a fresh list every second.
        self.lag_counts: list[int] | None = None

    def __repr__(self) -> str:
        away = max(0.0, _monotonic() - self.away_since)
        return (
            f"<{type(self).__name__} loop={self.loop!r} away={away * 1000:.0f}ms"
            f" active={self.active}>"
        )

    def _note_thread(self) -> None:
        ident = _get_ident()
        if ident != self.thread_id:
            self.thread_id = ident
            self.native_id = threading.get_native_id()
            clock = thread_clock(self.native_id)
            if clock is not None:
                self.clocks.append(clock)

    def _yield_if_due(self, now: float) -> float:
        """Give the GIL to the doctor's thread if it is due to want it; the time after.

        Waits per moment the doctor's thread named: the first at the end of the first iteration
        after it, then 5, 10, 20 … ms apart, at most :data:`YIELD_TRIES`. A doctor thread that
        lost the GIL again mid-way (a system call of its own) gets it back, and one that the
        machine does not schedule, or that waits on something else, costs the loop at most a
        millisecond per wait and a dozen waits in all, never a wait on every iteration.
        """
        due, gate = self.handoff.state
        if gate is None or now < due:
            return now
        if gate is not self._gate:
            self._gate, self._tries = gate, 0
        elif self._tries >= YIELD_TRIES or now < self._next_try:
            return now
        self._next_try = now + YIELD_SPACING * (1 << self._tries)
        self._tries += 1
        yield_to_doctor(gate)
        return _monotonic()

    def _record(self, start: float, end: float) -> None:
        """Called in the loop thread when it comes back to the loop after ``[start, end]``."""
        if end - start > self.threshold:
            self.late.append((start, end, thread_clock(threading.get_native_id())))

    def follow_thread(self) -> None:
        """Called by the watchdog: learn which thread runs the loop now (selector loops)."""
        ident = getattr(self.loop, "_thread_id", None)
        if ident is not None and ident != self.thread_id:
            native = next((t.native_id for t in threading.enumerate() if t.ident == ident), None)
            self.thread_id, self.native_id = ident, native

    def start(self) -> None:
        """(Re)start watching; call in the loop's thread."""
        self._note_thread()

    def stop(self) -> None:
        """Stop watching; whatever was patched on the loop is given back when possible."""
        self.active = False


class SelectorWatch(LoopWatch):
    """Watches a selector loop from its own thread by wrapping two methods of the instance."""

    kind = "selector"

    def __init__(
        self, loop: asyncio.AbstractEventLoop, threshold: float, handoff: Handoff | None = None
    ) -> None:
        super().__init__(loop, threshold, handoff)
        selector: Any = loop._selector  # type: ignore[attr-defined]
        inner_select = selector.select
        inner_run_once = loop._run_once  # type: ignore[attr-defined]
        watch = self

        def select(timeout: float | None = None) -> Any:
            start = watch.away_since
            if start != _INF:  # an iteration that began before the watch did
                watch._record(start, _monotonic())
                watch.away_since = _INF
            events = inner_select(timeout)
            now = _monotonic()
            if now >= watch.handoff.state[0]:
                now = watch._yield_if_due(now)
            watch.away_since = now
            return events

        def _run_once() -> None:
            try:
                inner_run_once()
            finally:
                start = watch.away_since
                end = _monotonic()
                if end - start > watch.threshold:
                    watch._record(start, end)  # before away_since changes: see Watchdog._drain
                watch.away_since = _INF
                counts = watch.lag_counts
                if counts is not None and start != _INF:
                    # Most iterations are short: spare them the search (the loop's hot path).
                    lag = end - start
                    counts[0 if lag <= _FIRST_EDGE else _bucket(LAG_EDGES, lag)] += 1

        if loop.is_running() and asyncio.events._get_running_loop() is loop:
            self._note_thread()
            self.away_since = _monotonic()  # installed from a callback: it is running now
        self._selector = selector
        self._select = select
        self._run_once = _run_once
        selector.select = select
        loop._run_once = _run_once  # type: ignore[attr-defined]

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(Exception):
            if self._selector.__dict__.get("select") is self._select:
                del self._selector.select
        with contextlib.suppress(Exception):
            if self.loop.__dict__.get("_run_once") is self._run_once:
                del self.loop._run_once  # type: ignore[attr-defined]


class HeartbeatWatch(LoopWatch):
    """Watches any loop offering ``call_later`` with a self-re-arming timer callback."""

    kind = "heartbeat"

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threshold: float,
        interval: float,
        handoff: Handoff | None = None,
    ) -> None:
        super().__init__(loop, threshold, handoff)
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        super().start()
        if self._handle is not None:
            self._handle.cancel()
        self.away_since = _monotonic() + self.interval
        self._handle = self.loop.call_later(self.interval, self._beat)

    def _beat(self) -> None:
        if not self.active:
            return
        now = _monotonic()
        # Re-armed first: a KeyboardInterrupt raised further on (Ctrl-C arriving while the
        # loop waits for the doctor's thread) must not stop the heartbeat, or the doctor would
        # take the loop for a blocked one from then on.
        try:
            self._handle = self.loop.call_later(self.interval, self._beat)
        except RuntimeError:  # the loop is closing
            self.active = False
        self._record(self.away_since, now)  # before away_since moves: see Watchdog._drain
        counts = self.lag_counts
        if counts is not None:
            counts[_bucket(LAG_EDGES, max(0.0, now - self.away_since))] += 1
        self.thread_id = _get_ident()
        self.away_since = now + self.interval
        self._yield_if_due(now)


def watch_loop(
    loop: asyncio.AbstractEventLoop,
    threshold: float,
    interval: float,
    handoff: Handoff | None = None,
) -> LoopWatch | None:
    """The best way to watch ``loop``, started; None when it cannot be watched for blocks.

    The loop's thread gives the GIL to the doctor's thread at the moments ``handoff`` names.
    """
    watch: LoopWatch
    if hasattr(loop, "_selector") and hasattr(loop, "_run_once"):
        try:
            watch = SelectorWatch(loop, threshold, handoff)
        except Exception:  # an unusual selector: fall back to the heartbeat
            watch = HeartbeatWatch(loop, threshold, interval, handoff)
    elif abs(loop.time() - _monotonic()) < 1.0:
        watch = HeartbeatWatch(loop, threshold, interval, handoff)
    else:
        return None
    watch.start()
    return watch
