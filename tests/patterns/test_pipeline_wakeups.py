"""How a Pipeline's channels wake their getters: one at a time, each take waking the next
while items are left. A worker that never suspends drains its channel alone (no task switch per
item); workers that do suspend are still all put to work; and no item is ever left in a channel
with workers waiting and none of them woken, whatever is cancelled when."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import Pipeline
from loopwise.patterns._channel import EMPTY, _Channel, _Drained
from tests.patterns._virtual import virtual


async def settle(steps: int = 10) -> None:
    for _ in range(steps):
        await asyncio.sleep(0)


@virtual
async def test_workers_that_never_suspend_are_not_woken_once_per_item() -> None:
    async def same(x: int) -> int:
        return x

    pipe = Pipeline(range(2000)).stage(same, workers=16)
    async with asyncio.timeout(5):
        await pipe.run()
    # An item added woke a worker each time (~1,900 wake-ups for 2,000 items); woken one at a
    # time, a worker takes what is queued in one go (~250).
    assert pipe._channels[0].getters.woken < 500


@virtual
async def test_workers_that_suspend_are_all_put_to_work() -> None:
    gate = asyncio.Event()
    running = 0
    most = 0

    async def held(x: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await gate.wait()
        running -= 1
        return x

    async with asyncio.timeout(5), Pipeline().stage(held, workers=8, buffer=8) as pipe:
        for i in range(8):  # all queued at once: one worker woken, the rest by the takes
            await pipe.put(i)
        await settle(20)
        assert pipe.statistics().stages[0].busy == 8
        for i in range(8, 12):
            await pipe.put(i)
        await settle(20)
        assert pipe.statistics().stages[0].queued == 4  # every worker busy: they wait
        gate.set()
    assert most == 8 and pipe.statistics().completed == 12


@virtual
async def test_a_burst_puts_every_waiting_worker_to_work_within_a_few_loop_turns() -> None:
    """Woken one at a time, each worker waking the next, 64 workers took 64 loop turns to
    start; the second one to find items left wakes the rest at once."""
    gate = asyncio.Event()

    async def held(x: int) -> int:
        await gate.wait()
        return x

    loop: Any = asyncio.get_running_loop()
    async with asyncio.timeout(5), Pipeline().stage(held, workers=64, buffer=64) as pipe:
        await settle()
        for i in range(64):
            await pipe.put(i)
        start = loop.iterations
        for _ in range(64):  # one turn per step, until every worker is busy
            if pipe.statistics().stages[0].busy == 64:
                break
            await asyncio.sleep(0)
        assert pipe.statistics().stages[0].busy == 64
        assert loop.iterations - start <= 4
        gate.set()


@virtual
async def test_items_put_one_by_one_each_get_a_waiting_worker() -> None:
    gate = asyncio.Event()

    async def held(x: int) -> int:
        await gate.wait()
        return x

    async with asyncio.timeout(5), Pipeline().stage(held, workers=4, buffer=4) as pipe:
        for i in range(4):
            await pipe.put(i)
            await settle()
            assert pipe.statistics().stages[0].busy == i + 1
        gate.set()


@virtual
async def test_a_woken_getter_cancelled_before_it_resumes_passes_its_wakeup_on() -> None:
    channel = _Channel(4)
    getters = [asyncio.create_task(channel.get()) for _ in range(3)]
    await settle()
    assert channel.try_put("a") and channel.try_put("b")  # wakes only getters[0]
    getters[0].cancel()  # before it resumes
    await settle()
    assert getters[0].cancelled()
    async with asyncio.timeout(5):
        assert sorted([await getters[1], await getters[2]]) == ["a", "b"]


@virtual
async def test_a_woken_getter_cancelled_after_its_item_was_taken_leaves_no_stale_wakeup() -> None:
    """Its wake-up has nothing left to pass on; the next item must still wake a getter."""
    channel = _Channel(4)
    woken = asyncio.create_task(channel.get())
    await settle()
    assert channel.try_put("a")  # wakes `woken`...
    assert channel.try_get() == "a"  # ...but another taker gets there first
    woken.cancel()
    await settle()
    later = asyncio.create_task(channel.get())
    await settle()
    assert channel.try_put("b")
    async with asyncio.timeout(5):
        assert await later == "b"


@virtual
async def test_a_stage_buffer_defaults_to_the_larger_of_its_workers_and_the_previous_stage() -> (
    None
):
    """Four workers feeding a single one: their results queue (four of them) instead of each
    worker waiting for the single one to take its result."""
    gate = asyncio.Event()

    async def same(x: int) -> int:
        return x

    async def held(x: int) -> int:
        await gate.wait()
        return x

    pipe = Pipeline(range(20)).stage(same, workers=4).stage(held)
    running = asyncio.create_task(pipe.run())
    await settle(30)
    stats = pipe.statistics()
    assert stats.stages[1].busy == 1
    assert stats.stages[1].queued == 4
    gate.set()
    async with asyncio.timeout(5):
        await running
    assert pipe.statistics().completed == 20


@virtual
async def test_many_workers_handing_to_fewer_do_not_each_wait_for_a_taker() -> None:
    async def same(x: int) -> int:
        return x

    pipe = Pipeline(range(2000)).stage(same, workers=16).stage(same, workers=4)
    async with asyncio.timeout(5):
        await pipe.run()
    # With a buffer of 4 between them, one of the 16 waited for room after almost every item
    # (~1,100 putters woken); with 16, they rarely wait (~120).
    assert pipe._channels[1].putters.woken < 500


# -- no item stranded, whatever happens ------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(1, 5)),
        st.tuples(st.just("getter"), st.booleans()),
        st.tuples(st.just("cancel"), st.integers(0, 7)),
        st.tuples(st.just("steps"), st.integers(1, 3)),
        st.tuples(st.just("check"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS, maxsize=st.integers(1, 4))
def test_no_item_is_left_queued_while_getters_wait_and_none_is_woken(
    ops: list[tuple[str, Any]], maxsize: int
) -> None:
    """Random puts, getters (some suspending after each item, some not) and cancellations at
    random moments (parked, woken and not resumed yet, or busy): whenever the loop has nothing
    left to run, the channel is empty or nobody waits on it; every item put is taken once or
    still queued."""

    async def scenario() -> None:
        channel = _Channel(maxsize)
        taken: list[int] = []
        getters: list[asyncio.Task[None]] = []
        added = 0

        async def getter(suspends: bool) -> None:
            while True:
                item = channel.try_get()
                if item is EMPTY:
                    try:
                        item = await channel.get()
                    except _Drained:
                        return
                taken.append(item)
                if suspends:
                    await asyncio.sleep(0)

        def check() -> None:
            parked = len(channel.getters)
            assert not (len(channel) and parked), (len(channel), parked)
            assert len(taken) == len(set(taken))  # none taken twice
            assert len(taken) + len(channel) == added

        for op, arg in ops:  # no settling in between: ops land between a wake and a resume
            if op == "put":
                for _ in range(arg):
                    if channel.try_put(added):
                        added += 1
            elif op == "getter":
                getters.append(asyncio.create_task(getter(arg)))
            elif op == "cancel" and getters:
                getters[arg % len(getters)].cancel()
            elif op == "steps":
                await settle(arg)
            elif op == "check":
                await settle(12)
                check()
        await settle(12)
        check()
        channel.close()
        async with asyncio.timeout(5):
            await asyncio.gather(*getters, return_exceptions=True)

    asyncio.run(scenario())
