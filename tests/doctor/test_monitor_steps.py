"""What a monitor snapshot costs the watched program between its steps.

No timing is asserted: these tests count what a snapshot keeps alive between two steps, whether
the loop ran between them, and that the program's garbage-collector settings are left alone.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loopwise import doctor
from loopwise.doctor import _snapshot
from loopwise.doctor._monitor_client import request

from .monitor_helpers import runtime_env

__all__ = ["runtime_env"]

TASKS = 2000


@pytest.fixture
def private_runtime(runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime_env["XDG_RUNTIME_DIR"])


@pytest.fixture
def gc_restored() -> Iterator[None]:
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


async def _population(count: int) -> list[asyncio.Task[Any]]:
    """``count`` tasks waiting on a sleep, an Event, a Queue and a held Lock, a quarter each."""
    event = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()
    lock = asyncio.Lock()
    await lock.acquire()
    makers: list[Callable[[], Any]] = [lambda: asyncio.sleep(3600), event.wait, queue.get]
    makers.append(lock.acquire)
    tasks = [asyncio.create_task(makers[i % 4](), name=f"w{i}") for i in range(count)]
    await asyncio.sleep(0.05)
    return tasks


def _between_steps(monkeypatch: pytest.MonkeyPatch, probe: Callable[[], None]) -> None:
    """Call ``probe`` in the monitor's thread at the end of every step of every snapshot."""
    rest = _snapshot.Stepper._rest

    def probed(self: _snapshot.Stepper) -> None:
        probe()
        rest(self)

    monkeypatch.setattr(_snapshot.Stepper, "_rest", probed)


async def _snapshot_while_ticking(op: str) -> tuple[dict[str, Any], list[int]]:
    """Ask for ``op`` while a ticker keeps the loop busy; return the answer and the tick count."""
    ticks = [0]
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        answer = await asyncio.to_thread(request, os.getpid(), op, limit=10_000, timeout=60)
    finally:
        done.set()
        await ticking
    return answer, ticks


def _young_objects(exclude: tuple[object, ...]) -> tuple[int, int]:
    """How many objects the youngest generation holds, and how many references they hold."""
    young = [o for o in gc.get_objects(generation=0) if all(o is not e for e in exclude)]
    return len(young), sum(len(gc.get_referents(o)) for o in young)


@pytest.mark.usefixtures("private_runtime", "gc_restored")
def test_a_snapshot_keeps_nothing_per_task_alive_between_its_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A collection that starts in a step walks every young object, and everything a snapshot
    # keeps alive until it is done ends up in the older generations, whose collections walk
    # the whole heap. With the collector off, what the youngest generation holds between two
    # steps is exactly what was made since the snapshot began and is still alive.
    objects: list[int] = []  # lists of numbers: the probe adds no object the collector tracks
    references: list[int] = []

    def probe() -> None:
        count, held = _young_objects((objects, references))
        objects.append(count)
        references.append(held)

    async def main() -> dict[str, Any]:
        with doctor.watch(monitor=True):
            tasks = await _population(TASKS)
            gc.collect()
            gc.disable()
            _between_steps(monkeypatch, probe)
            answer, _ = await _snapshot_while_ticking("ps")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return answer

    answer = asyncio.run(main())
    assert answer["tasks_total"] == TASKS + 2  # and the main task and the ticker
    assert len(answer["tasks"]) == TASKS + 2  # the answer came in pieces, rightly joined
    lock_waiters = [t for t in answer["tasks"] if (t["awaits"] or {}).get("kind") == "lock"]
    assert len(lock_waiters) == TASKS // 4
    assert all("asyncio.locks.Lock at" in t["awaits"]["what"] for t in lock_waiters)
    assert len(objects) > 10, "a snapshot of 2000 tasks is taken in many steps"
    # Nothing per task piles up: no record, no locals dict of a frame, no tuple per waiting
    # task. The list of tasks still to read is the only thing as long as the task count (it is
    # made in the first step), and it shrinks as they are read.
    assert max(objects) - objects[0] < 150, objects
    assert max(references) - references[0] < 200, references
    assert references[-1] < references[0] - TASKS // 2, references


@pytest.mark.usefixtures("private_runtime")
def test_the_loop_runs_between_the_steps_of_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks_at_step_end: list[int] = []
    ticks: list[int] = [0]

    def probe() -> None:
        ticks_at_step_end.append(ticks[0])

    async def main() -> None:
        with doctor.watch(monitor=True):
            tasks = await _population(TASKS)
            _between_steps(monkeypatch, probe)
            done = asyncio.Event()

            async def ticker() -> None:
                while not done.is_set():
                    ticks[0] += 1
                    await asyncio.sleep(0)

            ticking = asyncio.create_task(ticker())
            answer = await asyncio.to_thread(request, os.getpid(), "top", timeout=60)
            done.set()
            await ticking
            assert answer["tasks_total"] == TASKS + 2
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert len(ticks_at_step_end) > 10
    moved = sum(b > a for a, b in itertools.pairwise(ticks_at_step_end))
    # The stepper waits for the loop to run an iteration between two steps (2 ms at most, so a
    # machine too busy to run the loop thread in time may make it miss a few turns).
    assert moved >= 0.5 * (len(ticks_at_step_end) - 1), ticks_at_step_end


@pytest.mark.usefixtures("private_runtime", "gc_restored")
@pytest.mark.parametrize("enabled", [True, False], ids=["gc-on", "gc-off"])
def test_a_snapshot_leaves_the_garbage_collector_as_the_program_set_it(enabled: bool) -> None:
    async def main() -> dict[str, Any]:
        with doctor.watch(monitor=True):
            tasks = await _population(500)
            # A low threshold: collections fall due again and again while the snapshot runs.
            gc.set_threshold(300, 7, 9)
            (gc.enable if enabled else gc.disable)()
            answer, _ = await _snapshot_while_ticking("ps")
            assert gc.isenabled() is enabled
            assert gc.get_threshold() == (300, 7, 9)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return answer

    answer = asyncio.run(main())
    assert answer["tasks_total"] == 502
    # A step ends early when a collection is due, so that the program's threads run it; with
    # the collector off, none is ever due.
    assert (answer["snapshot"]["gc_yields"] > 0) is enabled


def test_the_stepper_waits_for_a_busy_loop_to_move_but_not_for_an_idle_one() -> None:
    script: list[int] = []
    looks = [0]

    def progress() -> int:  # the loop's iteration count: the script's values, then its last
        looks[0] += 1
        return script.pop(0) if len(script) > 1 else script[0]

    def tick(*values: int) -> int:
        script[:] = values
        looks[0] = 0
        stepper.tick()
        return looks[0]

    stepper = _snapshot.Stepper(budget=0.0, pause=0.0001, progress=progress, turn_wait=0.002)
    assert tick(0) > 3  # the loop never moves: waited for (2 ms), then taken to be idle
    assert stepper.turns_waited == 1
    assert tick(0) == 2  # idle: one look before resting, one after
    assert stepper.turns_waited == 1
    assert tick(0, 1) == 2  # it moved while this thread rested: no longer idle
    assert stepper.turns_waited == 1
    assert tick(1, 1, 1, 2) == 4  # it did not move: waited for until it does, not longer
    assert stepper.turns_waited == 2


@pytest.mark.usefixtures("private_runtime")
def test_a_lock_waiter_is_shown_held_by_whoever_acquired_the_lock_last() -> None:
    # Only acquire() is watched (release() is left alone, to spare every lock operation a
    # call): the holder is the last task whose acquire() returned, while the lock is locked.
    def held_by(answer: dict[str, Any], name: str) -> list[str]:
        (record,) = [t for t in answer["tasks"] if t["name"] == name]
        return [
            n for t in answer["tasks"] if t["id"] in record["awaits"]["tasks"] for n in [t["name"]]
        ]

    async def main() -> None:
        with doctor.watch(monitor=True):
            lock, go_on, done = asyncio.Lock(), asyncio.Event(), asyncio.Event()

            async def holder() -> None:
                async with lock:
                    await go_on.wait()

            async def second() -> None:
                async with lock:  # waits for holder, then holds the lock until done
                    await done.wait()

            first = asyncio.create_task(holder(), name="first")
            await asyncio.sleep(0.01)
            then = asyncio.create_task(second(), name="second")
            await asyncio.sleep(0.01)
            answer = await asyncio.to_thread(request, os.getpid(), "ps")
            assert held_by(answer, "second") == ["first"]

            go_on.set()
            await first
            last = asyncio.create_task(lock.acquire(), name="last")
            await asyncio.sleep(0.01)
            answer = await asyncio.to_thread(request, os.getpid(), "ps")
            assert held_by(answer, "last") == ["second"]

            done.set()
            await then
            assert await last and lock.locked()
            lock.release()

    asyncio.run(main())
