"""Blocked-loop detection: one watchdog thread that samples the stacks of loops away too long.

Each watched loop has a :class:`~loopwise.doctor._loopwatch.LoopWatch` that says since when its
thread has been away from the loop running code. While that lasts longer than half the
threshold, the watchdog samples the loop thread's stack with ``sys._current_frames()`` and
reads the thread's CPU and run-queue clocks. When the stretch ends, it is judged:

- the part of it the thread spent runnable but waiting for a CPU (other processes took the
  machine) does not count: a loop *starved* for 200 ms is not a loop *blocked* for 200 ms;
- what remains, if longer than the threshold, is a block, labelled *busy on CPU* when the
  thread used the CPU for at least half of it and *waiting (not on CPU)* otherwise.

Without per-thread clocks (not Linux), a stretch during which the whole process stood still
(the watchdog itself ran late and the process used almost no CPU) is not reported.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import collections
import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from loopwise.doctor._frames import frames_from_frame, is_user_file, user_location
from loopwise.doctor._gil import Fallback
from loopwise.doctor._handoff import Handoff
from loopwise.doctor._loopwatch import Clock, ClockReader, LoopWatch, watch_loop
from loopwise.doctor._model import Event, EventKind, Frame

__all__ = ["Watchdog"]

_Stack = tuple[Frame, ...]
_monotonic = time.monotonic
_HANDLE_RUN = asyncio.events.Handle._run.__code__
_IDLE_FILES = frozenset(
    os.path.abspath(sys.modules[name].__file__ or name)
    for name in ("selectors", "asyncio.runners", "asyncio.base_events")
)
_DOCTOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_idle(stack: _Stack) -> bool:
    """True when a stack shows the loop's own machinery, not a callback (heartbeat loops only)."""
    if not stack:
        return True
    top = stack[-1]
    path = os.path.abspath(top.file) if not top.file.startswith("<") else top.file
    return path in _IDLE_FILES or path.startswith(_DOCTOR_DIR)


_EVENTS_FILE = asyncio.events.__file__


def _in_callback(stack: _Stack) -> _Stack:
    """The part of ``stack`` inside the callback the loop is running (all of it if unknown).

    Your frames outside it (the line that called ``asyncio.run``) did not block the loop.
    """
    for index in range(len(stack) - 1, -1, -1):
        frame = stack[index]
        if frame.function == "_run" and frame.file == _EVENTS_FILE:
            return stack[index + 1 :]
    return stack


def _callback_name(frame: FrameType) -> str | None:
    """The callback a loop is running when the innermost Python frame is ``Handle._run``.

    That is the case when the callback itself has no Python frame (``time.sleep`` passed to
    ``call_soon``); naming it is then the only way to say what blocked.
    """
    if frame.f_code is not _HANDLE_RUN:
        return None
    # f_locals of another thread's running frame is read under the GIL; Handle._run has no
    # cell or free variable, so reading it changes nothing the running code uses.
    handle = frame.f_locals.get("self")
    callback = getattr(handle, "_callback", None)
    while isinstance(callback, functools.partial):
        callback = callback.func
    if callback is None:
        return None
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    module = getattr(callback, "__module__", None) or getattr(
        getattr(callback, "__self__", None), "__module__", None
    )
    return f"{module}.{name}" if module and module != "builtins" else str(name)


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
        self.beat = min(max(threshold / 10, 0.002), 0.025)  # heartbeat period (heartbeat loops)
        self._sink = sink
        self._watches: list[LoopWatch] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._history: collections.deque[tuple[float, float]] = collections.deque(maxlen=8192)
        self._stalls: collections.deque[tuple[float, float, float]] = collections.deque(maxlen=256)
        self._fallback = Fallback(max(threshold, 0.02)) if fallback else None
        self.blocks_reported = 0
        self.blocks_ignored = 0
        self._ticks = 0
        self._ticked = threading.Condition()
        self._handoff = Handoff()

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
        now = _monotonic()
        with self._lock:
            busy = any(
                w.late or w.samples or now - w.away_since > self.threshold / 2
                for w in self._watches
            )
        if not busy or not self.is_alive() or threading.current_thread() is self._thread:
            return
        with self._ticked:
            target = self._ticks + 2
            self._ticked.wait_for(lambda: self._ticks >= target, timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def watch(self, loop: asyncio.AbstractEventLoop) -> LoopWatch | None:
        """Start watching ``loop``; call in the loop's thread while it is not running."""
        watch = watch_loop(loop, self.threshold, self.beat, self._handoff)
        if watch is None:
            return None
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
        self._handoff = Handoff()  # the parent's gate may be held by a thread the child lacks
        self._history.clear()
        self._stalls.clear()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._stopping = threading.Event()
            # It wants the GIL from its first line: a loop that is busy at once would otherwise
            # leave it waiting for the GIL for as long as it stays busy.
            starting = self._handoff.expect(_monotonic())
            self._thread = threading.Thread(
                target=self._run, args=(starting,), name="loopwise-doctor-watchdog", daemon=True
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

    def _run(self, starting: threading.Lock) -> None:
        clocks = ClockReader()  # this thread's own: it keeps the clock files open
        try:
            self._loop_ticks(clocks, starting)
        finally:
            self._handoff.close()
            clocks.close()
        if self._fallback is not None:
            self._fallback.disarm()

    def _loop_ticks(self, clocks: ClockReader, starting: threading.Lock) -> None:
        last = _monotonic()
        last_cpu = time.process_time()
        own_id = threading.get_native_id()
        own = clocks.read(own_id)
        tick = self.tick
        stopping = self._stopping
        # Without a GIL (free-threaded builds) there is nothing to hand over: waits would only cost.
        handoff = self._handoff if getattr(sys, "_is_gil_enabled", lambda: True)() else None
        self._handoff.done(starting)
        while True:
            gate = handoff.expect(_monotonic() + tick) if handoff is not None else None
            if stopping.wait(tick):
                return
            now = _monotonic()
            cpu = time.process_time()
            clock = clocks.read(own_id)
            if now - last > tick + self.threshold / 2:
                # Late: the time this thread itself waited for a CPU is load, not a freeze.
                queued = clock[2] - own[2] if clock is not None and own is not None else 0.0
                self._stalls.append((last, now - min(queued, now - last), cpu - last_cpu))
            last, last_cpu, own = now, cpu, clock
            self._history.append((now, cpu))
            with contextlib.suppress(Exception):  # a doctor bug must not kill its thread
                self._check(now, clocks)
            with self._ticked:
                self._ticks += 1
                self._ticked.notify_all()
            tick = self.tick if self._alert(now) else self.idle_tick
            if handoff is not None and gate is not None:
                handoff.done(gate)

    def _alert(self, now: float) -> bool:
        """True while some loop is away long enough, or has a block pending, to sample closely."""
        with self._lock:
            return any(
                w.late or w.samples or now - w.away_since > self.threshold / 4
                for w in self._watches
            )

    def _check(self, now: float, clocks: ClockReader) -> None:
        with self._lock:
            watches = list(self._watches)
        if self._fallback is not None:
            self._fallback.collect(now)
        frames: dict[int, FrameType] | None = None
        taken = now
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
            watch.follow_thread()
            clock = clocks.read(watch.native_id)
            if clock is not None:
                watch.clocks.append(clock)
            if not watch.loop.is_running():
                if watch.samples and now - watch.away_since > self.threshold:
                    self._judge(watch, watch.away_since, now, None, "")  # stopped while blocked
                watch.last_not_running = now
                watch.samples.clear()
            elif now - watch.away_since > self.threshold / 2 and watch.thread_id is not None:
                away_since = watch.away_since
                if frames is None:
                    frames = sys._current_frames()
                    taken = _monotonic()  # the GIL may have kept us waiting since ``now``
                frame = frames.get(watch.thread_id)
                if frame is not None and watch.away_since == away_since:
                    watch.samples.append((taken, frames_from_frame(frame), _callback_name(frame)))
        del frames
        if self._fallback is not None:
            if any_watched:
                self._fallback.arm(now)
            else:
                self._fallback.disarm()

    def _drain(self, watch: LoopWatch, now: float, *, final: bool = False) -> None:
        # Read first: a stretch that ends from now on is in ``late`` before away_since moves.
        since = min(watch.away_since, now)
        while watch.late:
            start, end, clock = watch.late.popleft()
            self._judge(watch, start, end, clock, "")
        if final and watch.samples and now - watch.away_since > self.threshold:
            note = " (still blocked when the doctor stopped)"
            self._judge(watch, watch.away_since, now, None, note)
            watch.samples.clear()
        watch.samples = [s for s in watch.samples if s[0] >= since]

    def _own_time(
        self, watch: LoopWatch, start: float, end: float, clock: Clock | None
    ) -> tuple[float, float] | None:
        """(time the loop thread itself spent, of it on CPU) during ``[start, end]``, if known.

        Rates measured between the clock readings nearest the stretch are extrapolated to it;
        time spent runnable but waiting for a CPU is not the loop thread's own.
        """
        readings = sorted(watch.clocks)
        if clock is not None:
            readings.append(clock)
        after = clock or next((c for c in readings if c[0] >= end), None)
        inside = [c for c in readings if start <= c[0] < end]
        before = [c for c in readings if c[0] <= start]
        # The earliest reading inside the stretch, unless it covers too little of it.
        if inside and (end - inside[0][0] >= 0.5 * (end - start) or not before):
            first: Clock | None = inside[0]
        else:
            first = before[-1] if before else None
        if after is None or first is None or after[0] - first[0] <= 0:
            return None
        span = after[0] - first[0]
        waiting_share = min(1.0, max(0.0, (after[2] - first[2]) / span))
        own = (end - start) * (1.0 - waiting_share)
        cpu_share = (after[1] - first[1]) / max(span - (after[2] - first[2]), 1e-9)
        return own, own * min(1.0, max(0.0, cpu_share))

    def _judge(
        self, watch: LoopWatch, start: float, end: float, clock: Clock | None, note: str
    ) -> None:
        start = max(start, watch.last_not_running)
        wall = end - start
        if wall <= self.threshold:
            return
        samples = [(stack, cb) for t, stack, cb in watch.samples if start <= t <= end]
        dump = None
        if self._fallback is not None:
            dump = self._fallback.take(watch.thread_id, start, end + 4 * self.tick)
            if dump is not None:
                dump = tuple(f for f in dump if not f.file.startswith(_DOCTOR_DIR))
        if self._starved(start, end):
            self.blocks_ignored += 1  # the whole process stood still, not just the loop
            return
        own = self._own_time(watch, start, end, clock)
        if own is not None:
            if own[0] <= self.threshold:
                self.blocks_ignored += 1  # starved by other processes, not blocked
                return
            busy = own[1] >= 0.5 * own[0]
        else:
            if watch.kind == "heartbeat" and samples and all(_is_idle(s) for s, _ in samples):
                self.blocks_ignored += 1  # idle in the loop each time we looked
                return
            ratio = self._cpu_ratio(start, end)
            busy = ratio is not None and ratio >= 0.5
        evidence: list[tuple[_Stack, str | None]] = samples
        if dump is not None and self._dump_usable(watch, dump):
            evidence = [(dump, None), *samples]
        self.blocks_reported += 1
        self._sink(self._event(evidence, wall, busy, note))

    @staticmethod
    def _dump_usable(watch: LoopWatch, dump: _Stack | None) -> bool:
        """True when a faulthandler dump shows the loop thread running a callback.

        A dump is timed only to the watchdog's tick; one written while the thread was elsewhere
        (the watchdog was merely late) says nothing about the block.
        """
        if dump is None:
            return False
        if watch.kind == "selector":
            return len(_in_callback(dump)) < len(dump)
        return not _is_idle(dump)

    def _starved(self, start: float, end: float) -> bool:
        overlap = 0.0
        cpu = 0.0
        for s0, s1, used in self._stalls:
            common = min(s1, end) - max(s0, start)
            if common > 0 and s1 > s0:
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
        self,
        evidence: Sequence[tuple[_Stack, str | None]],
        wall: float,
        busy: bool,
        note: str,
    ) -> Event:
        counts: collections.Counter[Frame] = collections.Counter()
        callbacks: collections.Counter[str] = collections.Counter()
        first_stack: dict[Frame, _Stack] = {}
        for stack, callback in evidence:
            where = user_location(_in_callback(stack))
            if where is not None and is_user_file(where.file):
                counts[where] += 1
                first_stack.setdefault(where, stack)
            elif callback is not None:
                callbacks[callback] += 1
        ms = wall * 1000
        how = " busy on CPU" if busy else " waiting (not on CPU)"
        if not counts:
            if callbacks:
                name, seen = callbacks.most_common(1)[0]
                message = (
                    f"event loop blocked for {ms:.0f} ms{how} in callback {name} run by the loop"
                    f" ({seen} of {len(evidence)} samples; it has no Python frame to show){note}"
                )
            else:
                message = (
                    f"event loop blocked for {ms:.0f} ms{how}; no line of yours was running"
                    f" (a C call holding the GIL, or library code){note}"
                )
            stack = max((s for s, _ in evidence), key=len, default=())
            return Event(EventKind.BLOCKED, message, stack=stack, duration_ms=ms)
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
