"""Cancellation at every await point: each scenario is run once per loop iteration k, with the
task cancelled at iteration k, until a run finishes before being cancelled. After every run:
the cancellation propagated (never swallowed), no task is left behind, and the scenario's own
invariants hold (no permit or slot leaked, no item lost or processed twice)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from loopwise import ClosedError, Pipeline, RateLimiter, Supervisor, amap, retry
from tests.patterns._virtual import now, run_virtual, vloop

Scenario = Callable[[dict[str, Any]], Awaitable[None]]
Check = Callable[[dict[str, Any], bool], Awaitable[None]]


def sweep(scenario: Scenario, check: Check, limit: int = 3000) -> int:
    """Return how many cancellation points were tried."""
    for k in itertools.count(1):
        assert k < limit, "the scenario never finishes"
        state: dict[str, Any] = {}

        async def main(k: int = k, state: dict[str, Any] = state) -> bool:
            loop = vloop()
            task = asyncio.create_task(scenario(state))
            cancelled_at: list[int] = []
            start = loop.iterations

            def on_iteration(i: int) -> None:
                if i - start == k and not task.done():
                    task.cancel()
                    cancelled_at.append(i)

            loop.on_iteration = on_iteration
            with contextlib.suppress(asyncio.CancelledError):
                await task
            loop.on_iteration = None
            if cancelled_at:
                assert task.cancelled(), f"cancellation at step {k} was swallowed"
            await check(state, not cancelled_at)
            return not cancelled_at

        if run_virtual(main()):
            return k
    raise AssertionError("unreachable")


def check_pipeline_counts(pipe: Pipeline[Any], done: list[Any]) -> Any:
    """Each item done at most once, and the pipeline's counts agree with what was done."""
    stats = pipe.statistics()
    assert max(Counter(done).values(), default=1) == 1
    assert stats.completed == len(done)
    assert stats.accepted == stats.completed + stats.dropped
    return stats


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("errors", ["raise", "collect"])
def test_amap_every_mode(ordered: bool, errors: str) -> None:
    async def scenario(state: dict[str, Any]) -> None:
        state["running"] = 0
        state["results"] = results = []

        async def fn(x: int) -> int:
            state["running"] += 1
            try:
                await asyncio.sleep((x * 7) % 4 / 10)
                if x == 9 and errors == "collect":
                    raise ValueError(x)
                return x
            finally:
                state["running"] -= 1

        async for r in amap(
            fn, range(12), concurrency=3, ordered=ordered, errors=errors, rate=20, burst=2
        ):  # type: ignore[call-overload]
            results.append(r if isinstance(r, int) else "failure")

    async def check(state: dict[str, Any], completed: bool) -> None:
        # A plain `async for` left by an exception requests cancellation of the workers when
        # the iterator is dropped (once the exception that references it is gone); they
        # finish on their next step.
        for _ in range(3):
            await asyncio.sleep(0)
        assert state.get("running", 0) == 0
        results = state.get("results", [])
        numbers = [r for r in results if r != "failure"]
        assert len(set(numbers)) == len(numbers)
        if ordered:
            expected = [x if x != 9 or errors == "raise" else "failure" for x in range(12)]
            assert results == expected[: len(results)]
        if completed:
            assert len(results) == 12

    assert sweep(scenario, check) > 20


def test_amap_with_async_with() -> None:
    async def scenario(state: dict[str, Any]) -> None:
        state["running"] = 0

        async def fn(x: int) -> int:
            state["running"] += 1
            try:
                await asyncio.sleep(0.1)
                return x
            finally:
                state["running"] -= 1

        async with amap(fn, itertools.count(), concurrency=4) as results:
            async for r in results:
                if r == 10:
                    break

    async def check(state: dict[str, Any], completed: bool) -> None:
        assert state.get("running", 0) == 0

    assert sweep(scenario, check) > 10


def test_rate_limiter_keeps_its_bound_and_fifo_across_cancellations() -> None:
    async def scenario(state: dict[str, Any]) -> None:
        limiter = state["limiter"] = RateLimiter(10, burst=2)
        state["grants"] = grants = []

        async def one(i: int) -> None:
            await asyncio.sleep(i * 0.03)
            await limiter.acquire()
            grants.append(now())

        async with asyncio.TaskGroup() as tg:
            for i in range(6):
                tg.create_task(one(i))

    async def check(state: dict[str, Any], completed: bool) -> None:
        limiter: RateLimiter | None = state.get("limiter")
        if limiter is None:
            return
        assert limiter.statistics().waiting == 0
        # The limiter still works and still keeps its bound after the cancellations.
        order: list[int] = []

        async def later(i: int) -> None:
            await limiter.acquire()
            order.append(i)
            state["grants"].append(now())

        async with asyncio.TaskGroup() as tg:
            for i in range(4):
                tg.create_task(later(i))
        assert order == [0, 1, 2, 3]
        times = sorted(state["grants"])
        for i, j in itertools.combinations(range(len(times)), 2):
            assert j - i + 1 <= 2 + 10 * (times[j] - times[i]) + 1e-6

    assert sweep(scenario, check) > 10


def test_retry_stops_for_good_when_cancelled() -> None:
    async def scenario(state: dict[str, Any]) -> None:
        state["calls"] = 0

        async def flaky() -> str:
            state["calls"] += 1
            await asyncio.sleep(0.05)
            if state["calls"] < 4:
                raise OSError("again")
            return "ok"

        policy = retry(attempts=5, backoff=0.1, on=OSError)
        assert await policy.call(flaky) == "ok"

    async def check(state: dict[str, Any], completed: bool) -> None:
        calls = state.get("calls", 0)
        await asyncio.sleep(60)
        assert state.get("calls", 0) == calls  # nothing retried after the cancellation
        if completed:
            assert calls == 4

    assert sweep(scenario, check) > 10


def test_pipeline_never_duplicates_and_accounts_for_every_item() -> None:
    async def scenario(state: dict[str, Any]) -> None:
        state["done"] = done = []

        async def first(x: int) -> int:
            await asyncio.sleep(0.01 * (x % 3))
            return x

        async def last(x: int) -> None:
            await asyncio.sleep(0.02)
            done.append(x)

        pipe = state["pipe"] = Pipeline().stage(first, workers=2, buffer=1).stage(last, workers=2)
        async with pipe:
            for i in range(10):
                await pipe.put(i)

    async def check(state: dict[str, Any], completed: bool) -> None:
        pipe: Pipeline[Any] | None = state.get("pipe")
        if pipe is None:
            return
        done = state["done"]
        stats = check_pipeline_counts(pipe, done)
        if completed or stats.state == "finished":  # (cancelled after it had finished)
            assert sorted(done) == list(range(10)) and stats.state == "finished"
        else:
            assert stats.state in ("cancelled", "new")
            assert all(s.workers == 0 for s in stats.stages)
            if stats.state == "cancelled":
                try:
                    await pipe.put(1)
                except ClosedError:
                    pass
                else:
                    raise AssertionError("a cancelled pipeline accepted an item")

    assert sweep(scenario, check) > 10


def test_supervisor_cancels_and_awaits_everything() -> None:
    async def scenario(state: dict[str, Any]) -> None:
        state["alive"] = 0

        async def tracked(delay: float, fail: bool = False) -> None:
            state["alive"] += 1
            try:
                await asyncio.sleep(delay)
                if fail:
                    raise OSError("service crash")
            finally:
                state["alive"] -= 1

        async with Supervisor() as sup:
            sup.create_task(tracked(0.2))
            sup.create_task(tracked(3600), background=True)
            sup.supervise(tracked, 0.05, True, restart=retry(attempts=None, backoff=0.02))
            await asyncio.sleep(0.1)

    async def check(state: dict[str, Any], completed: bool) -> None:
        assert state.get("alive", 0) == 0

    import logging

    logging.getLogger("loopwise.patterns").disabled = True
    try:
        assert sweep(scenario, check) > 10
    finally:
        logging.getLogger("loopwise.patterns").disabled = False
