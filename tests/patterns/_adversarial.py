"""Helpers of the adversarial tests (a second review of issue 18): errors that are and are not
Exceptions, a quiet async input, stage functions that misbehave, and a sweep that cancels a task
at every loop iteration of a scenario."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from tests.patterns._virtual import VirtualClockLoop, run_virtual, vloop


class Boom(Exception):
    pass


class Fatal(BaseException):
    pass


async def quiet_after(n: int, stop: asyncio.Event) -> AsyncIterator[int]:
    """Yields n items, then waits (a subscription with no new message) until ``stop``."""
    for i in range(n):
        yield i
    await stop.wait()
    yield n


async def double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def sweep(scenario: Callable[[int | None, int], Coroutine[Any, Any, None]], victims: int) -> int:
    """Run ``scenario(k, victim)`` once per loop iteration k of a clean run and per victim:
    ``scenario`` cancels task ``victim`` at the start of iteration ``k`` (before any callback of
    that iteration runs, so also between a wake-up and the woken task's resumption)."""
    loops: list[VirtualClockLoop] = []

    async def clean() -> None:
        loops.append(vloop())
        await scenario(None, 0)

    run_virtual(clean())
    iterations = loops[0].iterations
    for k in range(iterations + 1):
        for victim in range(victims):
            run_virtual(scenario(k, victim))
    return iterations


def cancel_at(k: int | None, task: Callable[[], asyncio.Task[Any]]) -> None:
    if k is not None:
        vloop().on_iteration = lambda it: task().cancel() if it == k else None


async def cancels_its_own_task(x: int) -> int:
    if x == 3:
        # what a library that "cancels the current task" does when it does not clean up
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
    await asyncio.sleep(0.001)
    return x


def times_out_then_strays(kind: str) -> Callable[[int], Coroutine[Any, Any, int]]:
    async def fn(x: int) -> int:
        if x == 1:  # a timeout that expires: asyncio cancels the task, then uncancels it
            if kind == "timeout":
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
            else:
                await asyncio.wait_for(asyncio.sleep(1), 0.01)
        if x == 2:  # then, on the same worker, a stray cancellation
            never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            never.cancel()
            await never
        await asyncio.sleep(0)
        return x

    return fn
