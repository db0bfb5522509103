"""Reading a process's tasks from a thread other than the loop's, in steps the loop barely feels.

The monitor thread reads each task while it holds the GIL, so the loop thread stands still
meanwhile (it is between two bytecodes, so what is read is consistent). To keep that pause short
however many tasks there are, the work is cut into steps of at most ``budget`` seconds, and
between steps the reading thread sleeps ``pause`` seconds, handing the GIL back to the loop.
Nothing is added to the loop: no task, no callback, no timer.

What a step holds between two steps stays small whatever the number of tasks (records are
encoded as they are read, nothing is collected into per-task lists or sets), and a step ends
early when the garbage collector is about to run, so that the program's own threads run it (see
:class:`Stepper`): a collection that starts inside a step keeps the loop waiting for the GIL.
Frames are read without materialising their locals (``frame.f_locals`` would attach a dict to
every suspended frame read, kept alive as long as the frame).

What a task awaits is read from its coroutine chain (``cr_await``) and from the future it waits
on (``_fut_waiter``): another task, the tasks of a ``gather`` or of a ``TaskGroup``, an
``asyncio.Lock`` (and, while the monitor is on, the task holding it), an ``Event``, a
``Condition``, a ``Semaphore``, a ``Queue``, a stream, ``sleep``, or a plain future.
"""

from __future__ import annotations

import asyncio
import asyncio.taskgroups
import asyncio.tasks
import gc
import heapq
import os
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from types import CodeType
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
_gc_count, _gc_threshold, _gc_enabled = gc.get_count, gc.get_threshold, gc.isenabled
_TICK_EVERY = 64  # children of a gather or TaskGroup read between two ticks
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


# The class whose method a frame of each kind runs (its ``self``).
_OWNER_TYPES: dict[str, type | tuple[type, ...]] = {
    "lock": asyncio.Lock,
    "event": asyncio.Event,
    "condition": asyncio.Condition,
    "semaphore": asyncio.Semaphore,
    "barrier": asyncio.Barrier,
    "queue": asyncio.Queue,
    "taskgroup": asyncio.TaskGroup,
    "stream": (asyncio.StreamReader, asyncio.StreamWriter),
}


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


class Stepper:
    """Cuts work into steps of at most ``budget`` seconds, sleeping ``pause`` between them.

    Call :meth:`tick` between two small pieces of work (a task read, a record encoded). A step
    holds the GIL, so the loop thread cannot run meanwhile; between steps it can.

    Turns: releasing the GIL for ``pause`` is not enough on a busy machine. The loop thread,
    woken when the GIL is released, may not get a CPU before this thread wakes up and takes
    the GIL again, and then waits through several steps in a row. ``progress`` (when given)
    returns a number that changes each time a watched loop runs an iteration: the next step
    waits, up to ``turn_wait`` seconds, until it has changed. A loop that does not move within
    that time is taken to be idle (or blocked in a callback) and is not waited for again until
    it moves.

    Garbage collection: the interpreter runs a collection in whichever thread allocates past the
    youngest generation's threshold, holding the GIL all along (a full collection of a program
    with 10,000 tasks takes tens of milliseconds). When one is due (the count is within
    ``gc_headroom`` of the threshold and automatic collection is on), the step ends early and
    the stepper waits up to ``gc_wait`` seconds for the program's own threads to run it; only
    if none does (an idle program) does it go on and may run it itself. The program's gc
    settings are read, never changed.

    ``longest`` is the most CPU time this thread used in one step (what the loop thread waited
    for, plus the GIL's hand-over); ``longest_wall`` the most wall time, which also counts time
    the OS gave to other processes in the middle of a step (the loop thread still waits for the
    GIL then). ``slow_steps`` and ``slow_steps_cpu`` count the steps over 1 ms of wall and of CPU
    time; ``gc_yields`` the steps ended early because a collection was due.
    """

    def __init__(
        self,
        *,
        budget: float = 0.0002,
        pause: float = 0.0002,
        gc_headroom: int = 128,
        gc_wait: float = 0.002,
        progress: Callable[[], int] | None = None,
        turn_wait: float = 0.002,
    ) -> None:
        self.budget = budget
        self.pause = pause
        self.turn_wait = turn_wait
        self._progress = progress
        self._loop_idle = False
        self.turns_waited = 0
        self.gc_headroom = gc_headroom
        self.gc_wait = gc_wait
        self.steps = 1
        self.longest = 0.0
        self.longest_wall = 0.0
        self.slow_steps = 0
        self.slow_steps_cpu = 0
        self.gc_yields = 0
        self._collection_accepted = False
        self._start = _perf()
        self._cpu = time.thread_time()

    def tick(self) -> None:
        if _perf() - self._start >= self.budget or self._collection_due():
            self._end_step()
            self._rest()
            self.steps += 1
            self._start = _perf()
            self._cpu = time.thread_time()

    def _collection_due(self) -> bool:
        threshold = _gc_threshold()[0]
        if threshold <= 0 or _gc_count()[0] + self.gc_headroom < threshold or not _gc_enabled():
            self._collection_accepted = False
            return False
        return not self._collection_accepted

    def _rest(self) -> None:
        before = self._progress() if self._progress is not None else None
        time.sleep(self.pause)
        if before is not None and self._progress is not None:
            self._wait_turn(before, self._progress)
        if not self._collection_due():
            return
        self.gc_yields += 1
        if self._pause_until(self.gc_wait, lambda: not self._collection_due()):
            return
        self._collection_accepted = True  # nobody else allocates: go on, whoever collects

    def _wait_turn(self, before: int, progress: Callable[[], int]) -> None:
        if progress() != before:
            self._loop_idle = False
            return
        if self._loop_idle:
            return
        self.turns_waited += 1
        if self._pause_until(self.turn_wait, lambda: progress() != before):
            return
        self._loop_idle = True

    def _pause_until(self, limit: float, done: Callable[[], bool]) -> bool:
        """Sleep a pause at a time, up to ``limit`` seconds in all (one pause was taken
        already), until ``done()``; whether it was."""
        waited = self.pause
        while waited < limit:
            time.sleep(self.pause)
            waited += self.pause
            if done():
                return True
        return False

    def _end_step(self) -> None:
        cpu, wall = time.thread_time() - self._cpu, _perf() - self._start
        self.longest = max(self.longest, cpu)
        self.longest_wall = max(self.longest_wall, wall)
        self.slow_steps += wall > 0.001
        self.slow_steps_cpu += cpu > 0.001

    def finish(self) -> None:
        self._end_step()


def live_tasks(loops: Iterable[asyncio.AbstractEventLoop], stepper: Stepper) -> Iterator[Any]:
    """The tasks not done yet of ``loops``, one at a time (weak references resolved as read).

    The work list shrinks as it is read, so what a young collection has to look through
    between two steps shrinks too.
    """
    tasks_module: Any = asyncio.tasks
    registry: Any = getattr(tasks_module, "_scheduled_tasks", None)
    if registry is None:
        registry = getattr(tasks_module, "_all_tasks", None)
    try:
        refs = list(registry.data)  # a C-level copy of a set of weak references: atomic
        eager = list(getattr(tasks_module, "_eager_tasks", ()))
    except (AttributeError, RuntimeError):
        yield from [t for loop in loops for t in asyncio.all_tasks(loop)]
        return
    wanted = set(loops)
    refs.reverse()
    while refs:
        stepper.tick()
        task = refs.pop()()
        if task is not None and not task.done() and task.get_loop() in wanted:
            yield task
        del task
    for task in eager:
        if not task.done() and task.get_loop() in wanted:
            yield task


def _chain(task: Any) -> list[tuple[Any, CodeType]]:
    """The coroutines (or generators) of ``task``'s await chain and their code, outermost first.

    Their frames are not read: reading ``cr_frame`` makes a frame object that lives as long as
    the coroutine, so only the frames whose line is shown are read (see :func:`_frame`).
    """
    chain: list[tuple[Any, CodeType]] = []
    awaitable = task.get_coro()
    while awaitable is not None and len(chain) < _MAX_CHAIN:
        code = getattr(awaitable, "cr_code", None) or getattr(awaitable, "gi_code", None)
        if not isinstance(code, CodeType):
            break
        chain.append((awaitable, code))
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return chain


def _frame(awaitable: Any, code: CodeType) -> Frame:
    frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
    line = (frame.f_lineno if frame is not None else None) or code.co_firstlineno
    return Frame(code.co_filename, line, code.co_name)


def _self_of(awaitable: Any, kind: str) -> Any:
    """The object whose asyncio method ``awaitable`` (suspended) runs, or None.

    Read from what the coroutine refers to (its first argument, ``self``, comes before its
    other locals) rather than from ``frame.f_locals``, which would attach a dict of the locals
    to the frame, alive as long as the frame.
    """
    owner_type = _OWNER_TYPES.get(kind)
    if owner_type is None:
        return None
    try:
        referents = gc.get_referents(awaitable)
    except Exception:
        return None
    return next((r for r in referents if isinstance(r, owner_type)), None)


def _label(obj: object) -> str:
    return _short(f"{type(obj).__module__}.{type(obj).__qualname__} at {id(obj):#x}")


def task_id(task: object) -> str:
    return f"{id(task):#x}"


def _holder_of(lock: Any) -> Any:
    """The task holding ``lock``: the last one whose ``acquire()`` returned, while it is locked."""
    ref = getattr(lock, "_loopwise_holder", None)
    if not isinstance(ref, weakref.ref) or not lock.locked():
        return None
    return ref()


def _awaits(
    task: Any, chain: list[tuple[Any, CodeType]], waiter: Any, stepper: Stepper
) -> dict[str, Any] | None:
    """What ``task`` waits on: ``{"kind", "what", "tasks"}``; None when it waits on nothing."""
    if waiter is None:
        return None
    kind, owner = "future", None
    for awaitable, code in reversed(chain):
        if not code.co_filename.startswith(_ASYNCIO_DIR):
            break
        found = _WAIT_KINDS.get(getattr(code, "co_qualname", code.co_name))
        if found is not None:
            kind, owner = found, awaitable
            break
    targets: list[str] = []
    what = ""
    if isinstance(waiter, asyncio.Task):
        kind, targets = "task", [task_id(waiter)]
        what = f"task {waiter.get_name()!r}"
    elif hasattr(waiter, "_children"):  # gather's future
        kind = "gather"
        children = waiter._children
        targets = _pending_ids(children, stepper)
        what = f"gather of {len(children)}"
    elif kind == "taskgroup" and owner is not None:
        group = _self_of(owner, kind)
        targets = _pending_ids(list(getattr(group, "_tasks", ())), stepper)
        what = f"TaskGroup with {len(targets)} tasks left"
    elif kind == "sleep":
        what = "sleep"
    elif owner is not None:
        obj = _self_of(owner, kind)
        what = _label(obj) if obj is not None else kind
        if kind == "lock":
            holder = _holder_of(obj)
            if holder is not None and holder is not task and not holder.done():
                targets = [task_id(holder)]
                what += f", held by task {holder.get_name()!r}"
    else:
        what = _label(waiter)
    return {"kind": kind, "what": _short(what), "tasks": targets}


def _pending_ids(children: list[Any], stepper: Stepper) -> list[str]:
    """The ids of the tasks of ``children`` not done yet (a tick every few: there may be many)."""
    ids = []
    for index, child in enumerate(children):
        if index % _TICK_EVERY == _TICK_EVERY - 1:
            stepper.tick()
        if isinstance(child, asyncio.Task) and not child.done():
            ids.append(task_id(child))
    return ids


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
    figure is a lower bound that grows with every later snapshot seeing the same wait. Call
    :meth:`begin` before a snapshot and :meth:`forget_others` after it: tasks the snapshot did
    not see waiting are forgotten. Only numbers are kept (objects the garbage collector does not
    have to look at), keyed by the task's id.
    """

    def __init__(self) -> None:
        self._signature: dict[int, int] = {}  # task -> hash of (what, line, file) it waits on
        self._since: dict[int, float] = {}
        self._seen_in: dict[int, int] = {}  # task -> the round (a small int) it was last seen
        self._round = 0

    def begin(self) -> None:
        self._round = (self._round + 1) % 256

    def since(self, task: Any, waiter: Any, line: int, file: str, now: float) -> float:
        key = id(task)
        signature = hash((id(waiter), line, file))
        self._seen_in[key] = self._round
        if self._signature.get(key) == signature:
            return self._since[key]
        self._signature[key] = signature
        self._since[key] = now
        return now

    def forget_others(self, stepper: Stepper) -> None:
        # Only the monitor's thread changes these dicts: reading them across steps is safe.
        stale = []
        for key, seen_in in self._seen_in.items():
            stepper.tick()
            if seen_in != self._round:
                stale.append(key)
        for key in stale:
            del self._seen_in[key], self._signature[key], self._since[key]


def describe_tasks(
    tasks: Iterable[Any],
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
    tracker.begin()
    for task in tasks:
        stepper.tick()
        try:
            record = _describe(task, loop_index, tracker, now, stepper, detail=detail)
        except Exception:  # a task changed under us in a way we did not foresee: skip it
            continue
        yield record
    tracker.forget_others(stepper)


def _describe(
    task: Any,
    loop_index: dict[asyncio.AbstractEventLoop, int],
    tracker: SuspensionTracker,
    now: float,
    stepper: Stepper,
    *,
    detail: bool,
) -> dict[str, Any]:
    loop = task.get_loop()
    coro = task.get_coro()
    waiter = getattr(task, "_fut_waiter", None)
    chain = _chain(task)
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
    shown = [link for link in chain if not link[1].co_filename.startswith(_DOCTOR_DIR)]
    at_link = next(
        (link for link in reversed(shown) if is_user_file(link[1].co_filename)),
        shown[-1] if shown else None,
    )
    at = None if at_link is None else _frame(*at_link)
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
        "awaits": _awaits(task, chain, waiter, stepper) if state != "running" else None,
        "group_parent": _group_parent(task),
        "created_at": None if site is None else _site_json(site),
    }
    if state == "waiting":
        line, file = (at.line, at.file) if at is not None else (0, "")
        record["suspended_s"] = round(now - tracker.since(task, waiter, line, file, now), 3)
    else:
        record["suspended_s"] = None
    if detail:
        record["stack"] = [_frame(*link).to_json() for link in shown[-16:]]
    return record


_site_cache: dict[Any, dict[str, Any]] = {}


def _site_json(site: Any) -> dict[str, Any]:
    """A creation site as JSON; many tasks share a few sites, so the answer is kept (bounded)."""
    found = _site_cache.get(site)
    if found is None:
        if len(_site_cache) >= 4096:
            _site_cache.clear()
        found = _site_cache[site] = code_site_frame(site).to_json()
    return found


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
