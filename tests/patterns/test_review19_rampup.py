"""Review of issue 19's one-at-a-time wake-ups: a burst of items must not put idle workers to
work one loop iteration after another. Each iteration also runs the rest of the program (on a
busy server, a millisecond or more), so 64 workers woken in a chain of 64 iterations start
their I/O tens of milliseconds late."""

from __future__ import annotations

import asyncio

from loopwise import Pipeline
from tests.patterns._virtual import virtual


@virtual
async def test_a_burst_puts_every_idle_worker_to_work_within_a_few_loop_iterations() -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    busy = 0
    all_busy = asyncio.Event()

    async def held(x: int) -> int:
        nonlocal busy
        busy += 1
        if busy == 64:
            all_busy.set()
        await gate.wait()
        return x

    async with asyncio.timeout(5), Pipeline().stage(held, workers=64) as pipe:
        await asyncio.sleep(0.1)  # every worker parked
        start = loop.iterations  # type: ignore[attr-defined]
        for i in range(64):  # a burst: the channel has room, no put waits
            await pipe.put(i)
        await all_busy.wait()
        iterations = loop.iterations - start  # type: ignore[attr-defined]
        # Woken all at once it took 2 iterations; one at a time, 65. Doubling: about log2(64).
        assert iterations <= 10, iterations
        gate.set()
    assert pipe.statistics().completed == 64
