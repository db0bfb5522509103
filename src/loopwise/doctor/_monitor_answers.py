"""What the monitor answers: snapshots of the doctor's loops and tasks, as one line of JSON.

Everything here runs on the monitor's thread. Task records are read a step at a time (see
:mod:`._snapshot`); loop lag comes from per-second histograms the loop threads fill while the
monitor is on (``LoopWatch.lag_counts``); blocked events are those the doctor reported.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopwise._version import __version__
from loopwise.doctor._frames import frames_from_frame, user_location
from loopwise.doctor._loopwatch import LAG_EDGES, LoopWatch
from loopwise.doctor._model import Event, EventKind
from loopwise.doctor._snapshot import (
    Stepper,
    Summary,
    SuspensionTracker,
    describe_tasks,
    live_tasks,
    python_version,
)

if TYPE_CHECKING:
    from loopwise.doctor._watchdog import Watchdog

__all__ = ["MAX_RESPONSE", "MAX_TASKS", "Answers", "error_line", "lock_holder_patches"]

MAX_RESPONSE = 16 * 1024 * 1024
MAX_TASKS = 10_000
CHUNK = 64 * 1024  # an answer is made of pieces of about this size, each joined within a step
_encode = json.JSONEncoder(separators=(",", ":")).encode
_LAG_WINDOW = 60  # seconds of lag history kept (one histogram per second)
_BLOCKED_KEPT = 50


def _percentile_edge(counts: list[int], share: float) -> float | None:
    total = sum(counts)
    if not total:
        return None
    wanted = share * total
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= wanted:
            return LAG_EDGES[min(index, len(LAG_EDGES) - 1)]
    return LAG_EDGES[-1]


class Answers:
    """Builds the answer to each request; keeps the lag history and the recent blocked events."""

    def __init__(self, watchdog: Watchdog, threshold: Callable[[], float]) -> None:
        self._watchdog = watchdog
        self._threshold = threshold
        self._lags: weakref.WeakKeyDictionary[LoopWatch, collections.deque[list[int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._blocked: collections.deque[tuple[float, Event]] = collections.deque(
            maxlen=_BLOCKED_KEPT
        )
        self._tracker = SuspensionTracker()
        self.started_at = time.time()
        self.longest_step = 0.0

    def note(self, event: Event) -> None:
        """Keep ``event`` for ``top`` if it is a blocked loop (called from any thread)."""
        if event.kind is EventKind.BLOCKED:
            self._blocked.append((time.time(), event))

    def stop_counting(self) -> None:
        """Stop the loop threads' lag histograms (the monitor is closing)."""
        with self._watchdog._lock:
            for watch in self._watchdog._watches:
                watch.lag_counts = None

    def answer(self, line: bytes) -> list[bytes]:
        """The one-line reply to one request line, in pieces to send in order (never raises).

        A snapshot's answer may be megabytes: it is built and sent in pieces of about
        :data:`CHUNK` bytes, never joined, so no step copies more than that while holding the
        GIL.
        """
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return [error_line('the request is not a line of JSON: send e.g. {"op": "ps"}')]
        if not isinstance(request, dict):
            return [error_line('the request must be a JSON object such as {"op": "ps"}')]
        op = request.get("op")
        limit = request.get("limit", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_TASKS:
            return [error_line(f"limit must be an integer from 1 to {MAX_TASKS}")]
        try:
            if op == "hello":
                return [_line(self._head("hello"))]
            if op in ("ps", "top"):
                return self._snapshot(op, limit)
        except Exception as exc:
            return [error_line(f"the monitor failed to take a snapshot: {exc!r}")]
        return [error_line(f"unknown op {op!r}: use 'ps', 'top' or 'hello'")]

    def _head(self, op: str) -> dict[str, Any]:
        return {
            "ok": True,
            "op": op,
            "pid": os.getpid(),
            "python": python_version(),
            "loopwise": __version__,
            "argv": [str(a)[:200] for a in sys.argv[:8]],
            "uptime_s": round(time.time() - self.started_at, 1),
            "threshold_ms": self._threshold() * 1000,
        }

    def _watches(self) -> list[LoopWatch]:
        with self._watchdog._lock:
            watches = [w for w in self._watchdog._watches if w.active]
        for watch in watches:
            if watch.lag_counts is None:
                watch.lag_counts = [0] * (len(LAG_EDGES) + 1)
        return watches

    def rotate_lags(self) -> None:
        for watch in self._watches():
            history = self._lags.get(watch)
            if history is None:
                history = self._lags[watch] = collections.deque(maxlen=_LAG_WINDOW)
            counts, watch.lag_counts = watch.lag_counts, [0] * (len(LAG_EDGES) + 1)
            if counts is not None:
                history.append(counts)

    def _loop_info(self, index: int, watch: LoopWatch, now: float) -> dict[str, Any]:
        counts = [0] * (len(LAG_EDGES) + 1)
        for second in [*self._lags.get(watch, ()), watch.lag_counts or []]:
            for bucket, count in enumerate(second):
                counts[bucket] += count
        away = now - watch.away_since if watch.away_since != float("inf") else 0.0
        away = max(0.0, away)
        if away > 0:
            counts[min(len(LAG_EDGES), sum(1 for e in LAG_EDGES if e < away))] += 1
        p99 = _percentile_edge(counts, 0.99)
        worst = max((i for i, c in enumerate(counts) if c), default=None)
        thread = threading._active.get(watch.thread_id or -1)  # type: ignore[attr-defined]
        info: dict[str, Any] = {
            "index": index,
            "thread": thread.name if thread is not None else None,
            "watch": watch.kind,
            "running": watch.loop.is_running(),
            "lag_ms": round(away * 1000, 1),
            "p99_ms": None if p99 is None else p99 * 1000,
            "max_ms": None if worst is None else LAG_EDGES[min(worst, len(LAG_EDGES) - 1)] * 1000,
            "iterations": sum(counts),
            "blocked_at": None,
        }
        if away > self._threshold() and watch.thread_id is not None:
            frame = sys._current_frames().get(watch.thread_id)
            if frame is not None:
                where = user_location(frames_from_frame(frame))
                info["blocked_at"] = None if where is None else where.to_json()
            del frame
        return info

    def _blocked_events(self) -> list[dict[str, Any]]:
        now = time.time()
        return [
            {
                "ago_s": round(now - when, 1),
                "duration_ms": None if e.duration_ms is None else round(e.duration_ms, 1),
                "location": None if e.location is None else e.location.to_json(),
                "message": e.message[:500],
            }
            for when, e in reversed(self._blocked)
        ][:20]

    def _snapshot(self, op: str, limit: int) -> list[bytes]:
        began = time.perf_counter()
        watches = self._watches()
        stepper = Stepper(progress=functools.partial(_iterations, watches))
        now = time.monotonic()
        loops = [self._loop_info(i, w, now) for i, w in enumerate(watches)]
        index = {w.loop: i for i, w in enumerate(watches)}
        summary = Summary() if op == "top" else None
        pieces = _Pieces()
        total = shown = 0
        tasks = live_tasks(index, stepper)
        for record in describe_tasks(tasks, index, self._tracker, stepper, detail=op == "ps"):
            total += 1
            if summary is not None:
                summary.add(record)
            elif shown < limit and pieces.size < MAX_RESPONSE:
                pieces.add(_encode(record).encode())
                shown += 1
        head = self._head(op)
        head["loops"] = loops
        head["blocked"] = self._blocked_events()
        head["tasks_total"] = total
        if summary is not None:
            head["summary"] = summary.to_json()
        stepper.finish()
        self.longest_step = max(self.longest_step, stepper.longest)
        head["truncated"] = summary is None and shown < total
        head["snapshot"] = {
            "took_ms": round((time.perf_counter() - began) * 1000, 1),
            "steps": stepper.steps,
            "longest_step_ms": round(stepper.longest * 1000, 3),
            "longest_step_wall_ms": round(stepper.longest_wall * 1000, 3),
            "steps_over_1ms": stepper.slow_steps,
            "steps_over_1ms_cpu": stepper.slow_steps_cpu,
            "gc_yields": stepper.gc_yields,
            "turns_waited": stepper.turns_waited,
        }
        first = _encode(head).encode()[:-1] + b',"tasks":['
        return [first, *pieces.finish(), b"]}\n"]


class _Pieces:
    """Encoded records, comma-separated, gathered into pieces of about :data:`CHUNK` bytes.

    The piece being filled is a ``bytearray``: it refers to no object, so the garbage collector
    has nothing to walk in it.
    """

    def __init__(self) -> None:
        self.size = 0
        self._done: list[bytes] = []
        self._pending = bytearray()

    def add(self, part: bytes) -> None:
        if self.size:
            self._pending += b","
        self._pending += part
        self.size += len(part) + 1
        if len(self._pending) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._done.append(bytes(self._pending))
            self._pending.clear()

    def finish(self) -> list[bytes]:
        self._flush()
        return self._done


def _iterations(watches: list[LoopWatch]) -> int:
    """How many iterations ``watches``' loops ran since their lag histograms were swapped in.

    The histograms are swapped by the monitor's thread only, between two requests: within a
    snapshot the figure only grows.
    """
    total = 0
    for watch in watches:
        counts = watch.lag_counts
        if counts is not None:
            total += sum(counts)
    return total


def _line(data: dict[str, Any]) -> bytes:
    return _encode(data).encode() + b"\n"


def error_line(message: str) -> bytes:
    return _line({"ok": False, "error": message})


def lock_holder_patches() -> list[tuple[Any, str, Any]]:
    """``(owner, name, replacement)`` making ``asyncio.Lock`` remember the task holding it.

    The task whose ``acquire()`` last returned is kept as a weak reference on the lock
    (``_loopwise_holder``): while the lock is locked, that task holds it (it must have been
    released before being acquired again), so ``release()`` is left alone, which spares every
    lock operation a call. Nothing else about the lock changes.
    """
    import asyncio.locks
    import functools

    lock_cls: Any = asyncio.locks.Lock
    acquire = lock_cls.acquire
    current_task, ref = asyncio.current_task, weakref.ref

    @functools.wraps(acquire)
    async def acquire_noting_holder(self: Any) -> bool:
        acquired: bool = await acquire(self)
        task = current_task()
        self._loopwise_holder = None if task is None else ref(task)
        return acquired

    return [(lock_cls, "acquire", acquire_noting_holder)]
