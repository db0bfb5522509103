"""The hand-over between a Pipeline's stages: a worker (or the feeder) waiting to put into a full
channel has its item moved in by the get() that makes room, so the next stage takes it without
waiting for the putter to run. These tests hold that fast path to the Pipeline's guarantees:
order, accounting, cancellation at every step, a BaseException from a stage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loopwise import ClosedError, Pipeline
from loopwise.patterns._channel import _Channel
from tests.patterns._virtual import virtual
from tests.patterns.test_cancellation import check_pipeline_counts, sweep


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# -- the channel ---------------------------------------------------------------------------------


@virtual
async def test_the_get_that_makes_room_moves_a_waiting_handoff_put_in() -> None:
    channel = _Channel(1)
    await channel.put("a")
    putter = asyncio.create_task(channel.put("b", handoff=True))
    await settle()
    assert channel.blocked_puts == 1
    assert await channel.get() == "a"
    # moved in by that get(), before the putter ran again: the next get() does not wait
    assert len(channel) == 1 and channel.added == 2
    assert await channel.get() == "b"
    await putter  # its put() is complete
    assert channel.blocked_puts == 0


@virtual
async def test_a_plain_put_waiting_first_keeps_its_place() -> None:
    channel = _Channel(1)
    await channel.put(0)
    plain = asyncio.create_task(channel.put(1))
    await settle()
    handing = asyncio.create_task(channel.put(2, handoff=True))
    await settle()
    got = [await channel.get()]  # wakes the plain put: it adds its item when it runs
    await settle()
    got += [await channel.get(), await channel.get()]
    await asyncio.gather(plain, handing)
    assert got == [0, 1, 2]


@virtual
async def test_a_handoff_put_cancelled_while_waiting_adds_nothing() -> None:
    channel = _Channel(1)
    await channel.put("a")
    putter = asyncio.create_task(channel.put("b", handoff=True))
    await settle()
    putter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await putter
    assert await channel.get() == "a"
    assert len(channel) == 0 and channel.added == 1 and channel.blocked_puts == 0


@virtual
async def test_a_handoff_put_cancelled_after_the_move_raises_but_its_item_is_in() -> None:
    channel = _Channel(1)
    await channel.put("a")
    first = asyncio.create_task(channel.put("b", handoff=True))
    second = asyncio.create_task(channel.put("c", handoff=True))
    await settle()
    assert await channel.get() == "a"  # moves "b" in and wakes `first`...
    first.cancel()  # ...which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    # "b" was added (counted), and the next put waiting is not stranded
    assert channel.added == 2
    assert await channel.get() == "b"
    assert await channel.get() == "c"
    await second
    assert channel.added == 3 and channel.blocked_puts == 0


@virtual
async def test_a_handoff_put_waiting_when_the_channel_closes_raises_closed() -> None:
    channel = _Channel(1)
    await channel.put("a")
    putter = asyncio.create_task(channel.put("b", handoff=True))
    await settle()
    channel.close()
    with pytest.raises(ClosedError):
        await putter
    assert await channel.get() == "a"
    assert channel.added == 1


# -- the pipeline ----------------------------------------------------------------------------


@virtual
async def test_one_worker_per_stage_keeps_the_source_order() -> None:
    async def same(x: int) -> int:
        return x

    async with Pipeline(range(200), output=True).stage(same).stage(same).stage(same) as pipe:
        results = [x async for x in pipe]
    assert results == list(range(200))
    stats = pipe.statistics()
    assert stats.accepted == stats.completed == 200


@pytest.mark.parametrize("workers", [1, 4])
def test_stages_that_never_wait_account_for_every_item_when_cancelled_at_any_step(
    workers: int,
) -> None:
    """Stages that return without suspending: every hand-over goes through the fast path."""

    async def scenario(state: dict[str, Any]) -> None:
        state["pulled"] = pulled = []
        state["done"] = done = []

        def source() -> Any:
            for i in range(30):
                pulled.append(i)
                yield i

        async def double(x: int) -> int:
            return 2 * x

        async def record(x: int) -> None:
            done.append(x)

        pipe = state["pipe"] = (
            Pipeline(source())
            .stage(double, workers=workers, buffer=1)
            .stage(double, workers=workers, buffer=1)
            .stage(record, buffer=1)
        )
        await pipe.run()

    async def check(state: dict[str, Any], completed: bool) -> None:
        pipe: Pipeline[Any] | None = state.get("pipe")
        if pipe is None:
            return
        done = state["done"]
        stats = check_pipeline_counts(pipe, done)
        assert stats.accepted <= len(state["pulled"])
        assert all(s.workers == 0 for s in stats.stages)
        if completed:
            assert sorted(done) == [4 * i for i in range(30)]
            assert stats.state == "finished"
            if workers == 1:
                assert done == [4 * i for i in range(30)]
        else:
            assert stats.state in ("cancelled", "finished")

    assert sweep(scenario, check) > 10


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, ValueError])
async def test_a_stage_raising_while_items_are_handed_over_fails_run(
    error: type[BaseException],
) -> None:
    done: list[int] = []

    async def same(x: int) -> int:
        return x

    async def sink(x: int) -> None:
        if x == 50:
            raise error("stop")
        done.append(x)

    pipe = Pipeline(range(1000)).stage(same, workers=4, buffer=1).stage(sink, buffer=1)
    with pytest.raises(error) as raised:
        async with asyncio.timeout(5):
            await pipe.run()
    assert "raised in pipeline stage 'test_a_stage_raising" in str(raised.value.__notes__)
    stats = pipe.statistics()
    assert stats.state == "failed"
    assert all(s.workers == 0 for s in stats.stages)
    assert stats.accepted == stats.completed + stats.dropped
    assert done == list(range(50))


@virtual
async def test_an_item_moved_in_wakes_a_waiting_getter() -> None:
    """The item moved in for a waiting put gets a worker at once, as the put itself would have
    done, not only when the getter that moved it comes back."""
    channel = _Channel(2)
    getters = [asyncio.create_task(channel.get()) for _ in range(3)]
    await settle()

    async def feed() -> None:
        await channel.put("a")
        await channel.put("b")  # two getters woken, the third one waits...
        await channel.put("c", handoff=True)  # ...and this put waits, in the same step

    putter = asyncio.create_task(feed())
    await settle()
    assert sorted([await getters[0], await getters[1]]) == ["a", "b"]
    assert await asyncio.wait_for(getters[2], 1) == "c"
    await putter
