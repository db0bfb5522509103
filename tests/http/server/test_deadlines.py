"""The timeout middleware's deadline bookkeeping against a model, on a fake clock and loop.

Random arrivals, answers and clock steps; after every step: a request is cancelled exactly when
it has been in flight ``seconds``, never earlier and never much later than its deadline, one
timer at most is pending, and none once nothing is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise.http.server import _deadlines
from loopwise.http.server._deadlines import _Deadlines

SECONDS = 1.0
SLACK = 0.001  # the shortest timer the bookkeeping sets


class FakeTask:
    def __init__(self, loop: FakeLoop) -> None:
        self.loop = loop
        self.cancels = 0

    def get_loop(self) -> FakeLoop:
        return self.loop

    def cancel(self) -> bool:
        self.cancels += 1
        return True

    def uncancel(self) -> int:
        self.cancels -= 1
        return self.cancels


class FakeLoop:
    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.timers: list[tuple[float, Callable[..., Any], tuple[Any, ...]]] = []

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        assert delay > 0
        self.timers.append((self.clock[0] + delay, callback, args))

    def run_until(self, now: float) -> None:
        """Fire the timers due by ``now`` in time order, the clock at each one's time."""
        while due := sorted((t for t in self.timers if t[0] <= now), key=lambda t: t[0]):
            timer = due[0]
            self.timers.remove(timer)
            self.clock[0] = max(self.clock[0], timer[0])
            timer[1](*timer[2])
        self.clock[0] = now


steps = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.just(0)),
        st.tuples(st.just("answer"), st.integers(0, 30)),
        st.tuples(st.just("wait"), st.sampled_from([0.0005, 0.01, 0.3, 0.999, 1.0, 1.5, 4.0])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_deadlines_follow_the_model(plan: list[Any]) -> None:
    clock = [100.0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_deadlines, "perf_counter", lambda: clock[0])
        run_plan(plan, clock)


def run_plan(plan: list[Any], clock: list[float]) -> None:
    loop = FakeLoop(clock)
    deadlines = _Deadlines(SECONDS, "late")
    arrived: dict[FakeTask, float] = {}  # the model: requests in flight and when they came
    answered: set[FakeTask] = set()

    for action, value in plan:
        if action == "arrive":
            task = FakeTask(loop)
            arrived[task] = clock[0]
            deadlines.enter(task, loop, clock[0])  # type: ignore[arg-type]
        elif action == "answer" and arrived:
            task = list(arrived)[value % len(arrived)]
            if task.cancels:  # its deadline fired: the handler sees CancelledError
                assert deadlines.claim(task)  # type: ignore[arg-type]
            deadlines.settle(task)  # type: ignore[arg-type]
            answered.add(task)
            del arrived[task]
        elif action == "wait":
            loop.run_until(clock[0] + value)
        check(deadlines, loop, arrived, answered, clock[0])

    loop.run_until(clock[0] + SECONDS + 1)  # everything left expires, then the timer stops
    assert all(task.cancels == 1 for task in arrived)
    assert deadlines.loop is None and not loop.timers and not deadlines.inflight


def check(
    deadlines: _Deadlines,
    loop: FakeLoop,
    arrived: dict[FakeTask, float],
    answered: set[FakeTask],
    now: float,
) -> None:
    for task, came in arrived.items():
        age = now - came
        if task.cancels:
            assert age >= SECONDS  # never before its deadline
        else:
            assert age < SECONDS + SLACK  # and never left running much past it
    assert all(task.cancels == 0 for task in answered)  # a claimed deadline is taken back
    live = [t for t in loop.timers if t[2] == (deadlines.loop,)]
    assert len(loop.timers) <= 1 and len(live) == len(loop.timers)
    waiting = [came for task, came in arrived.items() if not task.cancels]
    if waiting:  # the one timer is set no later than the earliest deadline (or its minimum)
        assert live and live[0][0] <= max(min(waiting) + SECONDS, now + SLACK) + 1e-9


def test_a_deadline_moves_to_a_new_loop_and_forgets_the_old_one() -> None:
    clock = [0.0]
    old, new = FakeLoop(clock), FakeLoop(clock)
    deadlines = _Deadlines(SECONDS, "late")
    stale = FakeTask(old)
    deadlines.enter(stale, old, 0.0)  # type: ignore[arg-type]
    fresh = FakeTask(new)
    deadlines.enter(fresh, new, 0.5)  # type: ignore[arg-type]  # the old loop is gone
    assert list(deadlines.inflight) == [fresh]
    old.run_until(10.0)  # a timer left on the old loop does nothing
    assert fresh.cancels == 0 and stale.cancels == 0
    new.run_until(1.5)
    assert fresh.cancels == 1


async def test_real_loop_smoke() -> None:
    """The same bookkeeping on a real event loop: a stuck task is cancelled after ``seconds``."""
    deadlines = _Deadlines(0.05, "late")
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(asyncio.Event().wait())
    start = loop.time()
    deadlines.enter(task, loop, _deadlines.perf_counter())
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - start >= 0.05
    assert deadlines.loop is None
