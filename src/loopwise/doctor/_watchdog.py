"""Blocked-loop detection: a heartbeat on each loop and one watchdog thread that samples stacks.

The heartbeat is a timer callback that re-arms itself every ``interval`` seconds; when it runs
late by more than the threshold, the loop thread did not come back to the loop for that long.
The watchdog thread notices an overdue heartbeat while the block is still going on and samples
the loop thread's stack with ``sys._current_frames()``. Nothing here patches the loop's classes,
so it works with any loop that offers ``call_later``, including uvloop.

A C call that keeps the GIL also freezes the watchdog thread; ``faulthandler`` then dumps the
stacks from a C thread and the watchdog reads the dump afterwards. A process merely starved of
CPU (the watchdog itself ran late and the process used little CPU) is not reported.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import asyncio.runners
import collections
import contextlib
import faulthandler
import os
import re
import selectors  # noqa: F401  (its file tells an idle loop)
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from loopwise.doctor._frames import frames_from_frame, user_location
from loopwise.doctor._model import Event, EventKind, Frame

__all__ = ["LoopWatch", "Watchdog"]

_Stack = tuple[Frame, ...]
_monotonic = time.monotonic
_IDLE_FILES = frozenset(
    os.path.abspath(sys.modules[name].__file__ or name)
    for name in ("selectors", "asyncio.runners", "asyncio.base_events", "asyncio.events")
)
_DOCTOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class LoopWatch:
    """The heartbeat of one event loop; only the loop's own thread runs :meth:`_beat`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, threshold: float) -> None:
        self.loop = loop
        self.interval = interval
        self.threshold = threshold
        self.due = _monotonic() + interval
        self.thread_id: int | None = None
        # (due, ran) of every heartbeat that ran later than the threshold: the loop thread
        # appends, the watchdog thread pops.
        self.late: collections.deque[tuple[float, float]] = collections.deque()
        self.samples: list[tuple[float, _Stack]] = []  # watchdog thread only
        self.last_not_running = float("-inf")  # watchdog thread only
        self.active = True
        self._handle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        overdue = max(0.0, _monotonic() - self.due)
        return f"<LoopWatch loop={self.loop!r} overdue={overdue * 1000:.0f}ms active={self.active}>"

    def start(self) -> None:
        """(Re)arm the heartbeat from now; call in the loop's thread while it is not running."""
        if self._handle is not None:
            self._handle.cancel()
        self.thread_id = threading.get_ident()
        self.due = _monotonic() + self.interval
        self._handle = self.loop.call_later(self.interval, self._beat)

    def stop(self) -> None:
        """Stop re-arming; the pending timer, if any, becomes a no-op."""
        self.active = False

    def _beat(self) -> None:
        if not self.active:
            return
        now = _monotonic()
        if now - self.due > self.threshold:
            self.late.append((self.due, now))
        self.thread_id = threading.get_ident()
        self.due = now + self.interval
        try:
            self._handle = self.loop.call_later(self.interval, self._beat)
        except RuntimeError:  # the loop is closing
            self.active = False


_HEADER = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-fA-F]+)")
_FRAME_LINE = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')


def parse_faulthandler_dump(text: str) -> dict[int, _Stack]:
    """The stacks of a ``faulthandler`` dump by thread id, innermost frame last."""
    stacks: dict[int, list[Frame]] = {}
    current: list[Frame] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = stacks.setdefault(int(header.group(1), 16), [])
            continue
        frame = _FRAME_LINE.match(line)
        if frame and current is not None:
            current.append(Frame(frame.group(1), int(frame.group(2)), frame.group(3)))
        elif not line.strip():
            current = None
    return {tid: tuple(reversed(frames)) for tid, frames in stacks.items()}


def _is_idle(stack: _Stack) -> bool:
    """True when the loop thread was in the loop's own machinery, not in a callback's code."""
    if not stack:
        return True
    top = stack[-1]
    path = os.path.abspath(top.file) if not top.file.startswith("<") else top.file
    return path in _IDLE_FILES or path.startswith(_DOCTOR_DIR)


class _Fallback:
    """``faulthandler.dump_traceback_later`` armed while loops run, read after a freeze."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._file: IO[bytes] | None = None
        self._armed_at: float | None = None
        # Held across fork(): faulthandler's timer thread is not inherited, and a child that
        # inherits it armed hangs in its next dump_traceback_later/cancel call.
        self._lock = threading.Lock()
        self._forking = False
        self.dumps: collections.deque[tuple[float, dict[int, _Stack]]] = collections.deque(
            maxlen=16
        )

    def arm(self, now: float) -> None:
        with self._lock:
            if self._forking or (
                self._armed_at is not None and now - self._armed_at < self.timeout / 2
            ):
                return
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
                faulthandler.dump_traceback_later(self.timeout, repeat=False, file=self._file)
                self._armed_at = now
            except (OSError, RuntimeError, ValueError):
                self._armed_at = None

    def disarm(self) -> None:
        with self._lock:
            self._disarm()

    def _disarm(self) -> None:
        if self._armed_at is not None:
            faulthandler.cancel_dump_traceback_later()
            self._armed_at = None

    def before_fork(self) -> None:
        """Disarm and keep disarmed until :meth:`after_fork` (so no child inherits it armed)."""
        self._lock.acquire()
        self._forking = True
        self._disarm()

    def after_fork(self, *, child: bool) -> None:
        """Allow arming again; in a child, forget the parent's dump file (it is shared)."""
        self._forking = False
        if child:
            self._lock = threading.Lock()
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            self.dumps.clear()
        else:
            self._lock.release()

    def collect(self, now: float) -> None:
        """Read a dump written since the last call, if any."""
        if self._file is None:
            return
        fd = self._file.fileno()
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return
            data = os.pread(fd, size, 0)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            return
        self._armed_at = None  # a dump that fired is no longer armed
        self.dumps.append((now, parse_faulthandler_dump(data.decode("utf-8", "replace"))))

    def take(self, thread_id: int | None, start: float, end: float) -> _Stack | None:
        for seen, stacks in self.dumps:
            if start <= seen <= end and thread_id in stacks:
                return stacks[thread_id]
        return None

    def close(self) -> None:
        with self._lock:
            self._disarm()
            if self._file is not None:
                self._file.close()
                self._file = None


class Watchdog:
    """One daemon thread watching every registered :class:`LoopWatch`.

    ``sink`` receives each ``blocked`` event, from the watchdog thread.
    """

    def __init__(
        self, threshold: float, sink: Callable[[Event], None], *, fallback: bool = True
    ) -> None:
        self.threshold = threshold
        self.tick = min(max(threshold / 4, 0.002), 0.05)  # sampling period during a block
        self.idle_tick = min(max(threshold / 2, 0.002), 0.1)  # check period otherwise
        self.beat = min(max(threshold / 10, 0.002), 0.025)  # heartbeat period on each loop
        self._sink = sink
        self._watches: list[LoopWatch] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._history: collections.deque[tuple[float, float]] = collections.deque(maxlen=8192)
        self._stalls: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=256)
        self._fallback = _Fallback(max(threshold, 0.02)) if fallback else None
        self.blocks_reported = 0
        self.blocks_ignored = 0
        self._ticks = 0
        self._ticked = threading.Condition()

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else "stopped"
        return (
            f"<Watchdog {state} threshold={self.threshold * 1000:.0f}ms loops={len(self._watches)}"
            f" blocks_reported={self.blocks_reported} blocks_ignored={self.blocks_ignored}>"
        )

    def set_threshold(self, threshold: float) -> None:
        """Use ``threshold`` (seconds) from now on; the sampling period stays as it was."""
        self.threshold = threshold
        with self._lock:
            for watch in self._watches:
                watch.threshold = threshold
        if self._fallback is not None:
            self._fallback.timeout = max(threshold, 0.02)

    def sync(self, timeout: float = 1.0) -> None:
        """Wait until blocks that already ended have been reported (at most ``timeout`` s).

        Returns at once when no loop is blocked or has a block waiting to be judged.
        """
        with self._lock:
            busy = any(
                w.late or w.samples or _monotonic() - w.due > self.threshold / 2
                for w in self._watches
            )
        if not busy or not self.is_alive() or threading.current_thread() is self._thread:
            return
        with self._ticked:
            target = self._ticks + 2
            self._ticked.wait_for(lambda: self._ticks >= target, timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def watch(self, loop: asyncio.AbstractEventLoop) -> LoopWatch:
        """Start a heartbeat on ``loop``; call in the loop's thread while it is not running."""
        watch = LoopWatch(loop, self.beat, self.threshold)
        watch.start()
        with self._lock:
            self._watches.append(watch)
        if self._fallback is not None:
            self._fallback.arm(_monotonic())
        self._ensure_thread()
        return watch

    def before_fork(self) -> None:
        """Called in the forking thread just before ``fork()``."""
        if self._fallback is not None:
            self._fallback.before_fork()

    def after_fork(self, *, child: bool) -> None:
        """Called in both processes just after ``fork()``.

        The child has no watchdog thread and the parent's loops are not its own: it forgets
        them and starts a fresh thread when it next watches a loop.
        """
        if self._fallback is not None:
            self._fallback.after_fork(child=child)
        if not child:
            return
        self._lock = threading.Lock()
        self._ticked = threading.Condition()
        self._stopping = threading.Event()
        self._thread = None
        self._watches = []
        self._history.clear()
        self._stalls.clear()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="loopwise-doctor-watchdog", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Report blocks still going on, stop the thread and wait for it (at most 2 s)."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        now = _monotonic()
        with self._lock:
            watches, self._watches = self._watches, []
        for watch in watches:
            watch.stop()
            self._drain(watch, now, final=True)
        if self._fallback is not None:
            self._fallback.close()

    def _run(self) -> None:
        last = _monotonic()
        last_cpu = time.process_time()
        tick = self.tick
        while not self._stopping.wait(tick):
            now = _monotonic()
            cpu = time.process_time()
            if now - last > tick + self.threshold / 2:
                self._stalls.append((last, now, cpu - last_cpu))
            last, last_cpu = now, cpu
            self._history.append((now, cpu))
            with contextlib.suppress(Exception):  # a doctor bug must not kill its thread
                self._check(now)
            with self._ticked:
                self._ticks += 1
                self._ticked.notify_all()
            tick = self.tick if self._alert(now) else self.idle_tick
        if self._fallback is not None:
            self._fallback.disarm()

    def _alert(self, now: float) -> bool:
        """True while some loop is late enough, or has a block pending, to sample it closely."""
        with self._lock:
            return any(
                w.late or w.samples or now - w.due > self.threshold / 4 for w in self._watches
            )

    def _check(self, now: float) -> None:
        with self._lock:
            watches = list(self._watches)
        if self._fallback is not None:
            self._fallback.collect(now)
        frames = None
        any_watched = False
        for watch in watches:
            if watch.loop.is_closed() or not watch.active:
                with self._lock:
                    if watch in self._watches:
                        self._watches.remove(watch)
                self._drain(watch, now)
                continue
            any_watched = True
            self._drain(watch, now)  # blocks that ended, judged with the state seen so far
            if not watch.loop.is_running():
                if watch.samples and now - watch.due > self.threshold:
                    self._judge(watch, watch.due, now, "")  # the loop stopped while blocked
                watch.last_not_running = now
                watch.samples.clear()
            else:
                if now - watch.due > self.threshold / 2 and watch.thread_id is not None:
                    if frames is None:
                        frames = sys._current_frames()
                    frame = frames.get(watch.thread_id)
                    if frame is not None:
                        watch.samples.append((now, frames_from_frame(frame)))
        del frames
        if self._fallback is not None:
            if any_watched:
                self._fallback.arm(now)
            else:
                self._fallback.disarm()

    def _drain(self, watch: LoopWatch, now: float, *, final: bool = False) -> None:
        last_beat = watch.due - watch.interval
        while watch.late:
            start, end = watch.late.popleft()
            self._judge(watch, start, end, "")
        if final and watch.samples and now - watch.due > self.threshold:
            self._judge(watch, watch.due, now, " (still blocked when the doctor stopped)")
            watch.samples.clear()
        watch.samples = [s for s in watch.samples if s[0] >= last_beat]

    def _judge(self, watch: LoopWatch, start: float, end: float, note: str) -> None:
        start = max(start, watch.last_not_running)
        wall = end - start
        if wall <= self.threshold:
            return
        samples = [stack for t, stack in watch.samples if start <= t <= end]
        busy = [stack for stack in samples if not _is_idle(stack)]
        dump = None
        if self._fallback is not None:
            dump = self._fallback.take(watch.thread_id, start, end + 4 * self.tick)
        evidence: list[_Stack]
        if self._starved(start, end):
            self.blocks_ignored += 1  # the whole process stood still, not just the loop
            return
        if dump is not None and not _is_idle(dump):
            evidence = [dump, *busy]
        elif samples and not busy:
            self.blocks_ignored += 1  # the loop thread was idle in the loop each time we looked
            return
        else:
            evidence = busy
        self.blocks_reported += 1
        self._sink(self._event(evidence, wall, self._cpu_ratio(start, end), note))

    def _starved(self, start: float, end: float) -> bool:
        overlap = 0.0
        cpu = 0.0
        for s0, s1, used in self._stalls:
            common = min(s1, end) - max(s0, start)
            if common > 0:
                overlap += common
                cpu += used * common / (s1 - s0)
        # Frozen or descheduled, the process uses next to no CPU; a C call holding the GIL
        # keeps using it whenever the machine lets it run.
        return overlap >= 0.5 * (end - start) and cpu < 0.1 * overlap

    def _cpu_ratio(self, start: float, end: float) -> float | None:
        before = after = None
        for t, cpu in self._history:
            if t <= start:
                before = (t, cpu)
            elif t >= end:
                after = (t, cpu)
                break
        if before is None or after is None or after[0] <= before[0]:
            return None
        return (after[1] - before[1]) / (after[0] - before[0])

    def _event(
        self, evidence: Sequence[_Stack], wall: float, cpu: float | None, note: str
    ) -> Event:
        counts: collections.Counter[Frame] = collections.Counter()
        first_stack: dict[Frame, _Stack] = {}
        for stack in evidence:
            where = user_location(stack)
            if where is not None:
                counts[where] += 1
                first_stack.setdefault(where, stack)
        ms = wall * 1000
        how = ""
        if cpu is not None:
            how = " busy on CPU" if cpu >= 0.5 else " waiting (not on CPU)"
        if not counts:
            message = (
                f"event loop blocked for {ms:.0f} ms{how}; no stack could be sampled"
                f" (a C call holding the GIL?){note}"
            )
            return Event(EventKind.BLOCKED, message, duration_ms=ms)
        ranked = tuple(counts.most_common())
        where, seen = ranked[0]
        message = (
            f"event loop blocked for {ms:.0f} ms{how} at {where.at} in"
            f" {where.function} ({seen} of {len(evidence)} samples){note}"
        )
        return Event(
            EventKind.BLOCKED,
            message,
            stack=first_stack[where],
            location=where,
            duration_ms=ms,
            samples=ranked,
        )
