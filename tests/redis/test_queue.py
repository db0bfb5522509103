"""Work queues on Redis Streams, against a real redis-server: delivery, acknowledgement,
backpressure, failures, dead letters, the codec, and the optional import."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import redis.asyncio

from loopwise import UsageError
from loopwise.patterns import Pipeline, amap
from loopwise.redis import TEXT, Delivery, WorkQueue, _acks, idempotency_key


async def pending(client: redis.asyncio.Redis, stream: str, group: str = "workers") -> int:
    info = await client.xpending(stream, group)
    return int(info["pending"])


async def test_pipeline_processes_every_item_and_acks_after_the_last_stage(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many(range(30))
    saved: list[int] = []
    pending_at_save: list[int] = []

    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def save(x: int) -> None:
        pending_at_save.append(await pending(client, "jobs"))
        saved.append(x)

    async with asyncio.timeout(20):
        async with queue.consume(prefetch=4, stop_when_empty=True) as worker:
            pipe = Pipeline(worker).stage(worker.step(double), workers=3)
            await pipe.stage(worker.step(save)).stage(worker.ack).run()
    assert sorted(saved) == [2 * x for x in range(30)]
    assert min(pending_at_save) >= 1  # the item being saved was not acknowledged yet
    assert await pending(client, "jobs") == 0
    stats = worker.statistics()
    assert (stats.delivered, stats.acked, stats.failed, stats.in_flight) == (30, 30, 0, 0)


async def test_amap_with_the_handler(client: redis.asyncio.Redis) -> None:
    queue: WorkQueue[str] = WorkQueue(client, "words", codec=TEXT)
    await queue.add_many(["a", "b", "c"])

    async def upper(word: str) -> str:
        return word.upper()

    async with asyncio.timeout(20), queue.consume(stop_when_empty=True) as worker:
        results = [d async for d in amap(worker.handler(upper), worker, concurrency=2)]
    assert sorted(d.value for d in results) == ["A", "B", "C"]
    assert all(d.idempotency_key == idempotency_key("words", d.id) for d in results)
    assert await pending(client, "words") == 0


async def test_prefetch_bounds_what_one_worker_holds(client: redis.asyncio.Redis) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many(range(10))
    gate = asyncio.Event()
    three = asyncio.Event()
    started: list[int] = []

    async def wait(x: int) -> int:
        started.append(x)
        if len(started) == 3:
            three.set()
        await gate.wait()
        return x

    async with asyncio.timeout(20), queue.consume(prefetch=3, stop_when_empty=True) as worker:
        pipe = Pipeline(worker).stage(worker.step(wait), workers=8).stage(worker.ack)
        task = asyncio.create_task(pipe.run())
        await three.wait()
        await asyncio.sleep(0.3)  # time for a read that prefetch should forbid
        assert len(started) == 3
        assert worker.statistics().in_flight == 3
        assert await pending(client, "jobs") == 3
        gate.set()
        await task
    assert sorted(started) == list(range(10))


async def test_a_failing_item_is_retried_then_dead_lettered_with_its_last_error(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many([1, 2, 3])
    attempts: list[int] = []

    async def picky(x: int) -> int:
        attempts.append(x)
        if x == 2:
            raise ValueError(f"cannot take {x} (attempt {attempts.count(x)})")
        return x

    async with (
        asyncio.timeout(20),
        queue.consume(claim_idle=0.1, max_deliveries=3, stop_when_empty=True) as worker,
    ):
        await Pipeline(worker).stage(worker.step(picky)).stage(worker.ack).run()
    assert attempts.count(2) == 3 and attempts.count(1) == 1
    [letter] = await queue.dead_letters()
    assert letter.error == "ValueError: cannot take 2 (attempt 3)"
    assert (letter.data, letter.deliveries) == (b"2", 3)
    assert await pending(client, "jobs") == 0
    assert worker.statistics().dead_lettered == 1


async def test_an_item_that_failed_then_succeeded_leaves_no_recorded_error(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read that carries its acknowledgement also clears the error its failed delivery
    recorded (the flusher's acknowledgement does too: see the dead-letter tests)."""
    monkeypatch.setattr(_acks, "_ACK_GATHER", 30.0)  # only a read sends acknowledgements
    queue: WorkQueue[int] = WorkQueue(client, "second-try")
    await queue.add(0)
    async with asyncio.timeout(10), queue.consume(prefetch=4, claim_idle=0.1) as worker:
        first = await anext(worker)
        first.error = ValueError("first try")
        await worker.ack(first)  # recorded, left pending
        assert await client.hlen(queue.errors_key) == 1
        await asyncio.sleep(0.15)
        await queue.add(1)
        again = await anext(worker)  # taken over after claim_idle
        assert (again.id, again.deliveries) == (first.id, 2)
        await worker.ack(again)
        assert (await anext(worker)).value == 1  # this read carries the acknowledgement
        assert await client.hlen(queue.errors_key) == 0
        assert worker.statistics().acked == 1


async def test_acknowledgements_survive_redis_forgetting_its_scripts(
    client: redis.asyncio.Redis,
) -> None:
    """The read sends its acknowledgements by the script's hash: a Redis that lost its scripts
    (restarted, SCRIPT FLUSH) gets the script again, and no acknowledgement is lost."""
    queue: WorkQueue[int] = WorkQueue(client, "flushed")
    await queue.add_many(range(40))
    seen = 0
    async with asyncio.timeout(20), queue.consume(prefetch=8, stop_when_empty=True) as worker:
        async for delivery in worker:
            await worker.ack(delivery)
            seen += 1
            if seen % 10 == 0:
                await client.script_flush()
    assert seen == 40 and worker.statistics().acked == 40
    assert await pending(client, "flushed") == 0


async def test_a_malformed_entry_is_dead_lettered_and_the_worker_goes_on(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await client.xadd("jobs", {"d": b"{not json"})
    await client.xadd("jobs", {"other": b"1"})
    await queue.add(7)
    seen: list[int] = []

    async def keep(x: int) -> None:
        seen.append(x)

    async with asyncio.timeout(20), queue.consume(stop_when_empty=True) as worker:
        await Pipeline(worker).stage(worker.step(keep)).stage(worker.ack).run()
    assert seen == [7]
    letters = await queue.dead_letters()
    assert [letter.error.split(":")[0] for letter in letters] == [
        "cannot decode",
        "malformed entry",
    ]
    assert letters[0].data == b"{not json"


async def test_items_abandoned_max_deliveries_times_are_dead_lettered(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add(5)
    for _ in range(2):  # two workers take it and go away without acknowledging it
        async with queue.consume(claim_idle=0.05, max_deliveries=2) as worker:
            async with asyncio.timeout(5):
                delivery = await anext(worker)
            assert delivery.value == 5
    async with asyncio.timeout(20):
        async with queue.consume(claim_idle=0.05, max_deliveries=2, stop_when_empty=True) as w:
            assert [d async for d in w] == []
    [letter] = await queue.dead_letters()
    assert letter.deliveries == 2 and "not acknowledged" in letter.error


async def test_leaving_the_worker_hands_its_items_back_at_once(
    client: redis.asyncio.Redis,
) -> None:
    queue: WorkQueue[int] = WorkQueue(client, "jobs")
    await queue.add_many([1, 2])
    async with queue.consume(prefetch=2, claim_idle=3600) as first:
        async with asyncio.timeout(5):
            got = await anext(first)
    async with asyncio.timeout(5), queue.consume(claim_idle=3600) as second:
        again: Delivery[int] = await anext(second)
        other = await anext(second)
    assert {again.value, other.value} == {1, 2}
    assert {d.deliveries for d in (again, other)} == {2}
    assert got.value in (1, 2)


def test_options_are_checked() -> None:
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="prefetch"):
        WorkQueue(client, "s").consume(prefetch=0)
    with pytest.raises(ValueError, match="max_deliveries"):
        WorkQueue(client, "s").consume(max_deliveries=0)
    with pytest.raises(TypeError, match=r"redis\.asyncio\.Redis"):
        WorkQueue(object(), "s")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="decode_responses=False"):
        WorkQueue(redis.asyncio.Redis(decode_responses=True), "s")
    with pytest.raises(TypeError, match="JSON"):
        WorkQueue(client, "s").codec.encode(object())


def test_importing_loopwise_does_not_import_redis() -> None:
    code = "import sys, loopwise, loopwise.patterns, loopwise.http; print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_without_redis_py_the_error_names_the_extra() -> None:
    code = "import sys; sys.modules['redis'] = None\nimport loopwise.redis"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: loopwise.redis needs redis-py")
    assert "loopwise[redis]" in last


async def test_add_new_adds_each_item_once_across_calls(client: redis.asyncio.Redis) -> None:
    queue: WorkQueue[str] = WorkQueue(client, "frontier", codec=TEXT)
    first = await queue.add_new(["/a", "/b", "/a"], seen="frontier:seen")
    assert [i is not None for i in first] == [True, True, False]
    second = await queue.add_new(["/b", "/c"], seen="frontier:seen")
    assert [i is not None for i in second] == [False, True]
    assert await queue.length() == 3
    assert await queue.add_new([], seen="frontier:seen") == []
    with pytest.raises(ValueError, match="seen"):
        await queue.add_new(["/d"], seen="")


async def test_acknowledgements_are_sent_without_the_gathering_wait_when_it_only_delays(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Acknowledgements wait a moment for others to share their XACK, but not once half of
    prefetch is queued, nor while the reader waits for the room they free, nor when the stream
    has nothing new: with that moment made 30 s long, the work still ends at once."""
    monkeypatch.setattr(_acks, "_ACK_GATHER", 30.0)
    queue: WorkQueue[int] = WorkQueue(client, "gathered")
    await queue.add_many(range(20))

    async def slow(x: int) -> int:
        await asyncio.sleep(0.01)
        return x

    async with asyncio.timeout(10):
        async with queue.consume(prefetch=4, stop_when_empty=True) as worker:
            await Pipeline(worker).stage(worker.step(slow)).stage(worker.ack).run()
    assert worker.statistics().acked == 20
    assert await pending(client, "gathered") == 0


async def test_a_read_sends_the_queued_acknowledgements_in_its_own_round_trip(
    client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader counts acknowledged items whose XACK is not sent yet as free room, and sends
    those acknowledgements with its read, before Redis hands out the new entries: no separate
    round trip, and never more than prefetch items held."""
    monkeypatch.setattr(_acks, "_ACK_GATHER", 30.0)
    queue: WorkQueue[int] = WorkQueue(client, "combined")
    await queue.add_many(range(4))
    async with asyncio.timeout(10), queue.consume(prefetch=4) as worker:
        first = [await anext(worker) for _ in range(4)]
        for delivery in first:
            await worker.ack(delivery)
        await queue.add_many(range(4, 8))
        separate: list[object] = []
        ack_alone = worker._ack_script

        async def counted(*args: object, **kwargs: object) -> object:
            separate.append(args)
            return await ack_alone(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(worker, "_ack_script", counted)
        second = [await anext(worker) for _ in range(4)]
        assert [d.value for d in second] == [4, 5, 6, 7]
        assert separate == []  # no round trip of their own
        assert await pending(client, "combined") == 4  # the first four are acknowledged
        stats = worker.statistics()
        assert (stats.acked, stats.in_flight) == (4, 4)
        for delivery in second:
            await worker.ack(delivery)
    assert await pending(client, "combined") == 0


@pytest.mark.parametrize("steps", range(8))
async def test_a_read_cancelled_with_acknowledgements_leaves_none_unsent(
    client: redis.asyncio.Redis, steps: int
) -> None:
    """Cancelled at any step of a read that carries queued acknowledgements, the worker still
    sends every one of them (the flusher takes back those the read did not confirm)."""
    queue: WorkQueue[int] = WorkQueue(client, f"cancelled-read-{steps}")
    await queue.add_many(range(4))
    async with asyncio.timeout(10):
        async with queue.consume(prefetch=4) as worker:
            for delivery in [await anext(worker) for _ in range(4)]:
                await worker.ack(delivery)
            reader = asyncio.ensure_future(anext(worker))  # the stream is empty: it blocks
            for _ in range(steps):
                await asyncio.sleep(0)
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
        assert worker.statistics().acked == 4
    assert await pending(client, f"cancelled-read-{steps}") == 0


async def test_entries_read_with_acknowledgements_are_decoded_like_any_other(
    client: redis.asyncio.Redis,
) -> None:
    """The read that carries acknowledgements shares its round trip with them: extra fields, a
    missing 'd' field and undecodable data are handled as on any read."""
    queue: WorkQueue[int] = WorkQueue(client, "flat")
    await queue.add(1)
    async with asyncio.timeout(10), queue.consume(prefetch=4) as worker:
        await worker.ack(await anext(worker))  # queued: the next read carries it
        await client.xadd("flat", {"other": b"x", "d": b"2"})
        await client.xadd("flat", {"other": b"1"})
        await client.xadd("flat", {"d": b"{not json"})
        await client.xadd("flat", {"d": b"3", "other": b"y"})
        values = [(await anext(worker)).value for _ in range(2)]
        assert values == [2, 3]
        assert worker.statistics().acked == 1
    letters = await queue.dead_letters()
    assert [letter.error.split(":")[0] for letter in letters] == [
        "malformed entry",
        "cannot decode",
    ]


async def test_a_read_with_acknowledgements_that_finds_nothing_waits_for_new_entries(
    client: redis.asyncio.Redis,
) -> None:
    """Acknowledgements sent, nothing new: the worker waits for the next entry instead of
    ending or spinning."""
    queue: WorkQueue[int] = WorkQueue(client, "later")
    await queue.add(1)
    async with asyncio.timeout(10), queue.consume(prefetch=4) as worker:
        await worker.ack(await anext(worker))
        reader = asyncio.ensure_future(anext(worker))
        await asyncio.sleep(0.2)
        assert not reader.done()
        assert await pending(client, "later") == 0  # sent while it waits
        await queue.add(2)
        assert (await reader).value == 2
