"""Reading a process's tasks from a thread other than the loop's, in steps the loop barely feels.

The monitor thread reads each task while it holds the GIL, so the loop thread stands still
meanwhile (it is between two bytecodes, so what is read is consistent). To keep that pause short
however many tasks there are, the work is cut into steps of at most ``budget`` seconds, and
between steps the reading thread sleeps ``pause`` seconds, handing the GIL back to the loop.
Nothing is added to the loop: no task, no callback, no timer.

What a task awaits is read from its coroutine chain (``cr_await``) and from the future it waits
on (``_fut_waiter``): another task, the tasks of a ``gather`` or of a ``TaskGroup``, an
``asyncio.Lock`` (and, while the monitor is on, the task holding it), an ``Event``, a
``Condition``, a ``Semaphore``, a ``Queue``, a stream, ``sleep``, or a plain future.
"""

from __future__ import annotations

import asyncio
import asyncio.taskgroups
import asyncio.tasks
import heapq
import os
import sys
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from loopwise.doctor._frames import code_site_frame, is_user_file
from loopwise.doctor._model import Frame
from loopwise.doctor._tasks import creation_site, creation_time

__all__ = [
    "MAX_TEXT",
    "Stepper",
    "Summary",
    "SuspensionTracker",
    "describe_tasks",
    "live_tasks",
]

#: Longest text (a name, a coroutine, a description) a snapshot carries.
MAX_TEXT = 200
_MAX_CHAIN = 64
_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep
_DOCTOR_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_perf = time.perf_counter
_ON_TASK_DONE = getattr(asyncio.taskgroups.TaskGroup, "_on_task_done", None)

# What a task waits on, from the innermost asyncio function of its coroutine chain.
_WAIT_KINDS = {
    "Lock.acquire": "lock",
    "Event.wait": "event",
    "Condition.wait": "condition",
    "Semaphore.acquire": "semaphore",
    "Barrier.wait": "barrier",
    "Queue.get": "queue",
    "Queue.put": "queue",
    "Queue.join": "queue",
    "sleep": "sleep",
    "TaskGroup.__aexit__": "taskgroup",
    "TaskGroup._aexit": "taskgroup",
    "StreamReader._wait_for_data": "stream",
    "StreamWriter.drain": "stream",
    "wait_for": "wait_for",
    "wait": "wait",
}


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class Stepper:
    """Cuts work into steps of at most ``budget`` seconds, sleeping ``pause`` between them.

    Call :meth:`tick` between two small pieces of work (a task read, a record encoded).
    ``longest`` is the most CPU time this thread used in one step: while it runs, it holds the
    GIL, so that bounds how long one step kept the loop thread waiting (plus the time the
    interpreter takes to hand the GIL over). Wall time would also count the time the loop
    thread took the GIL back in the middle of a step.
    """

    def __init__(self, *, budget: float = 0.0002, pause: float = 0.0002) -> None:
        self.budget = budget
        self.pause = pause
        self.steps = 1
        self.longest = 0.0
        self._start = _perf()
        self._cpu = time.thread_time()

    def tick(self) -> None:
        if _perf() - self._start >= self.budget:
            self._end_step()
            time.sleep(self.pause)
            self.steps += 1
            self._start = _perf()
            self._cpu = time.thread_time()

    def _end_step(self) -> None:
        self.longest = max(self.longest, time.thread_time() - self._cpu)

    def finish(self) -> None:
        self._end_step()


def live_tasks(loops: Iterable[asyncio.AbstractEventLoop], stepper: Stepper) -> list[Any]:
    """The tasks not done yet of ``loops`` (weak references are resolved a step at a time)."""
    tasks_module: Any = asyncio.tasks
    registry: Any = getattr(tasks_module, "_scheduled_tasks", None)
    if registry is None:
        registry = getattr(tasks_module, "_all_tasks", None)
    try:
        refs = list(registry.data)  # a C-level copy of a set of weak references: atomic
        eager = list(getattr(tasks_module, "_eager_tasks", ()))
    except (AttributeError, RuntimeError):
        return [t for loop in loops for t in asyncio.all_tasks(loop)]
    wanted = set(loops)
    found = []
    for ref in refs:
        stepper.tick()
        task = ref()
        if task is not None and not task.done() and task.get_loop() in wanted:
            found.append(task)
    found += [t for t in eager if not t.done() and t.get_loop() in wanted]
    return found


def _chain(task: Any) -> list[FrameType]:
    """The frames of ``task``'s coroutine chain, outermost first."""
    frames: list[FrameType] = []
    awaitable = task.get_coro()
    while awaitable is not None and len(frames) < _MAX_CHAIN:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def _frame(frame: FrameType) -> Frame:
    code = frame.f_code
    return Frame(code.co_filename, frame.f_lineno or code.co_firstlineno, code.co_name)


def _self_of(frame: FrameType) -> Any:
    # The frame is suspended (its task is not the one running), so reading its locals is safe.
    try:
        return frame.f_locals.get("self")
    except Exception:
        return None


def _label(obj: object) -> str:
    return _short(f"{type(obj).__module__}.{type(obj).__qualname__} at {id(obj):#x}")


def task_id(task: object) -> str:
    return f"{id(task):#x}"


def _holder_of(lock: Any) -> Any:
    ref = getattr(lock, "_loopwise_holder", None)
    return ref() if isinstance(ref, weakref.ref) else None


def _awaits(task: Any, frames: list[FrameType], waiter: Any) -> dict[str, Any] | None:
    """What ``task`` waits on: ``{"kind", "what", "tasks"}``; None when it waits on nothing."""
    if waiter is None:
        return None
    kind, owner = "future", None
    for frame in reversed(frames):
        code = frame.f_code
        if not code.co_filename.startswith(_ASYNCIO_DIR):
            break
        found = _WAIT_KINDS.get(getattr(code, "co_qualname", code.co_name))
        if found is not None:
            kind, owner = found, frame
            break
    targets: list[Any] = []
    what = ""
    if isinstance(waiter, asyncio.Task):
        kind, targets = "task", [waiter]
        what = f"task {waiter.get_name()!r}"
    elif hasattr(waiter, "_children"):  # gather's future
        kind = "gather"
        targets = [c for c in waiter._children if isinstance(c, asyncio.Task) and not c.done()]
        what = f"gather of {len(waiter._children)}"
    elif kind == "taskgroup" and owner is not None:
        group = _self_of(owner)
        children = list(getattr(group, "_tasks", ()))
        targets = [c for c in children if not c.done()]
        what = f"TaskGroup with {len(targets)} tasks left"
    elif kind == "sleep":
        what = "sleep"
    elif owner is not None:
        obj = _self_of(owner)
        what = _label(obj) if obj is not None else kind
        if kind == "lock":
            holder = _holder_of(obj)
            if holder is not None and holder is not task and not holder.done():
                targets = [holder]
                what += f", held by task {holder.get_name()!r}"
    else:
        what = _label(waiter)
    return {"kind": kind, "what": _short(what), "tasks": [task_id(t) for t in targets]}


def _group_parent(task: Any) -> str | None:
    """The task that owns the TaskGroup ``task`` belongs to, if it was made by one."""
    callbacks = getattr(task, "_callbacks", None) or ()
    for entry in callbacks:
        callback = entry[0] if isinstance(entry, tuple) else entry
        if getattr(callback, "__func__", None) is _ON_TASK_DONE and _ON_TASK_DONE is not None:
            parent = getattr(callback.__self__, "_parent_task", None)
            return task_id(parent) if parent is not None else None
    return None


class SuspensionTracker:
    """Remembers since when each task waits at the same line on the same object.

    A task's wait is first seen by a snapshot; how long it lasted before is unknown, so the
    figure is a lower bound that grows with every later snapshot seeing the same wait.
    """

    def __init__(self) -> None:
        self._since: dict[int, tuple[tuple[int, int, str], float]] = {}

    def since(
        self, task: Any, signature: tuple[int, int, str], now: float, seen: set[int]
    ) -> float:
        key = id(task)
        seen.add(key)
        known = self._since.get(key)
        if known is not None and known[0] == signature:
            return known[1]
        self._since[key] = (signature, now)
        return now

    def forget_others(self, seen: set[int], stepper: Stepper) -> None:
        for key in list(self._since):
            stepper.tick()
            if key not in seen:
                del self._since[key]


def describe_tasks(
    tasks: list[Any],
    loop_index: dict[asyncio.AbstractEventLoop, int],
    tracker: SuspensionTracker,
    stepper: Stepper,
    *,
    detail: bool,
) -> Iterator[dict[str, Any]]:
    """One record per task (see the docs' JSON shape), read a step at a time.

    Records are yielded one by one so that the caller can encode or count each and let it go:
    keeping thousands alive would make the garbage collector run, in whichever thread, for
    tens of milliseconds while holding the GIL.
    """
    now = time.monotonic()
    seen: set[int] = set()
    for task in tasks:
        stepper.tick()
        try:
            record = _describe(task, loop_index, tracker, now, seen, detail=detail)
        except Exception:  # a task changed under us in a way we did not foresee: skip it
            continue
        yield record
    tracker.forget_others(seen, stepper)


def _describe(
    task: Any,
    loop_index: dict[asyncio.AbstractEventLoop, int],
    tracker: SuspensionTracker,
    now: float,
    seen: set[int],
    *,
    detail: bool,
) -> dict[str, Any]:
    loop = task.get_loop()
    coro = task.get_coro()
    waiter = getattr(task, "_fut_waiter", None)
    frames = _chain(task)
    running = getattr(coro, "cr_running", None)
    if running is None:  # not a coroutine object: ask the loop (the same thread only on 3.13)
        running = asyncio.current_task(loop) is task
    if running:
        state = "running"
    elif task.cancelling():
        state = "cancelling"
    elif waiter is None:
        state = "ready"
    else:
        state = "waiting"
    stack = [_frame(f) for f in frames if not f.f_code.co_filename.startswith(_DOCTOR_DIR)]
    at = next((f for f in reversed(stack) if is_user_file(f.file)), stack[-1] if stack else None)
    born = creation_time(task)
    site = creation_site(task)
    record: dict[str, Any] = {
        "id": task_id(task),
        "name": _short(task.get_name()),
        "coroutine": _short(getattr(coro, "__qualname__", None) or type(coro).__name__),
        "state": state,
        "loop": loop_index.get(loop, 0),
        "age_s": None if born is None else round(now - born, 3),
        "at": None if at is None else at.to_json(),
        "awaits": _awaits(task, frames, waiter) if state != "running" else None,
        "group_parent": _group_parent(task),
        "created_at": None if site is None else code_site_frame(site).to_json(),
    }
    if state == "waiting":
        signature = (id(waiter), at.line if at is not None else 0, at.file if at else "")
        record["suspended_s"] = round(now - tracker.since(task, signature, now, seen), 3)
    else:
        seen.add(id(task))
        record["suspended_s"] = None
    if detail:
        record["stack"] = [f.to_json() for f in stack[-16:]]
    return record


class Summary:
    """Counts by state and by coroutine, and the ``longest`` longest-waiting tasks.

    Fed one record at a time; keeps only the counts and ``longest`` records.
    """

    def __init__(self, longest: int = 10) -> None:
        self._longest = longest
        self._by_state: Counter[str] = Counter()
        self._by_coroutine: Counter[str] = Counter()
        self._heap: list[tuple[float, int, dict[str, Any]]] = []
        self._count = 0

    def add(self, record: dict[str, Any]) -> None:
        self._count += 1
        self._by_state[record["state"]] += 1
        self._by_coroutine[record["coroutine"]] += 1
        waited = record["suspended_s"]
        if waited is not None:
            item = (waited, -self._count, record)
            if len(self._heap) < self._longest:
                heapq.heappush(self._heap, item)
            elif item[:2] > self._heap[0][:2]:
                heapq.heapreplace(self._heap, item)

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks_total": self._count,
            "by_state": dict(self._by_state.most_common()),
            "by_coroutine": dict(self._by_coroutine.most_common(15)),
            "longest_waiting": [
                r for _, _, r in sorted(self._heap, key=lambda i: i[:2], reverse=True)
            ],
        }


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
