"""amap: laziness, the concurrency and reorder bounds, error modes, early exit, rate, context."""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwise import Failure, amap
from tests.patterns._virtual import now, virtual


class Probe:
    """An async function that records how many calls run at once and which were cancelled."""

    def __init__(self, delay: float | dict[int, float] = 0.01) -> None:
        self.delay = delay
        self.running = 0
        self.peak = 0
        self.started: list[int] = []
        self.cancelled: list[int] = []

    async def __call__(self, x: int) -> int:
        self.started.append(x)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            delay = self.delay.get(x, 0.01) if isinstance(self.delay, dict) else self.delay
            await asyncio.sleep(delay)
            return x * 10
        except asyncio.CancelledError:
            self.cancelled.append(x)
            raise
        finally:
            self.running -= 1


class CountingIterator:
    def __init__(self, limit: int | None = None) -> None:
        self.pulled = 0
        self.limit = limit

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        if self.limit is not None and self.pulled >= self.limit:
            raise StopIteration
        self.pulled += 1
        return self.pulled - 1


@virtual
async def test_ordered_results_in_input_order_with_concurrency_bound() -> None:
    probe = Probe({i: (i * 7) % 5 / 10 for i in range(50)})
    results = [r async for r in amap(probe, range(50), concurrency=8)]
    assert results == [i * 10 for i in range(50)]
    assert probe.peak == 8


@virtual
async def test_unordered_yields_in_completion_order() -> None:
    probe = Probe({0: 0.3, 1: 0.1, 2: 0.2})
    results = [r async for r in amap(probe, range(3), concurrency=3, ordered=False)]
    assert results == [10, 20, 0]


@virtual
async def test_concurrency_one_is_sequential() -> None:
    probe = Probe()
    results = [r async for r in amap(probe, range(5), concurrency=1, ordered=False)]
    assert results == [0, 10, 20, 30, 40] and probe.peak == 1


@virtual
async def test_async_iterable_input_is_pulled_by_one_worker_at_a_time() -> None:
    async def numbers() -> AsyncIterator[int]:
        for i in range(30):
            await asyncio.sleep(0.001)  # an async generator cannot be re-entered
            yield i

    results = [r async for r in amap(Probe(), numbers(), concurrency=5)]
    assert results == [i * 10 for i in range(30)]


@virtual
async def test_infinite_input_is_pulled_lazily() -> None:
    source = CountingIterator()
    probe = Probe(0.01)
    results = amap(probe, source, concurrency=4, buffer=6)
    taken = []
    async for r in results:
        taken.append(r)
        if len(taken) == 100:
            break
    assert taken == [i * 10 for i in range(100)]
    # never more than concurrency + buffer items ahead of what was consumed
    assert source.pulled <= 100 + 4 + 6


@virtual
async def test_slow_consumer_bounds_memory() -> None:
    source = CountingIterator()
    it = amap(Probe(0), source, concurrency=3, ordered=False, buffer=5)
    async with it:
        async for _ in it:
            await asyncio.sleep(1)  # slow consumer
            stats = it.statistics()
            assert stats.started - stats.yielded <= 3 + 5
            assert stats.buffered <= 8
            if stats.yielded == 20:
                break
    assert source.pulled <= 20 + 8


@virtual
async def test_ordered_slow_item_does_not_stop_new_starts_until_the_buffer_is_full() -> None:
    probe = Probe({0: 100.0})
    results = amap(probe, range(1000), concurrency=4, buffer=20)
    first = asyncio.create_task(anext(results))
    await asyncio.sleep(50)  # item 0 still running
    # The other 3 workers kept going: 24 = concurrency + buffer items started, not just 4
    assert len(probe.started) == 24
    assert results.statistics().buffered == 23
    assert await first == 0
    rest = [r async for r in results]
    assert rest == [i * 10 for i in range(1, 1000)]


@virtual
async def test_errors_raise_cancels_work_in_flight_and_raises_the_first() -> None:
    async def fn(x: int) -> int:
        if x == 2:
            await asyncio.sleep(0.05)
            raise ValueError("item 2")
        return await probe(x)

    probe = Probe(1.0)
    with pytest.raises(ValueError, match="item 2"):
        async for _ in amap(fn, range(100), concurrency=4):
            pass
    assert now() < 1.0  # did not wait for the slow calls
    assert sorted(probe.cancelled) == [0, 1, 3]  # the 3 other calls in flight
    assert probe.running == 0  # cancelled *and* finished before the error was raised


@virtual
async def test_errors_collect_yields_failures_in_place() -> None:
    async def fn(x: int) -> object:
        if x % 3 == 0:
            raise KeyError(x)
        if x == 4:
            return ValueError("a returned exception is a result")
        return x

    results = [r async for r in amap(fn, range(7), concurrency=3, errors="collect")]
    failures = [r for r in results if isinstance(r, Failure)]
    assert [(f.index, f.item, type(f.exception)) for f in failures] == [
        (0, 0, KeyError),
        (3, 3, KeyError),
        (6, 6, KeyError),
    ]
    assert results[1:3] == [1, 2] and results[5] == 5
    assert isinstance(results[4], ValueError) and not isinstance(results[4], Failure)
    with pytest.raises(KeyError):
        failures[0].unwrap()


@virtual
async def test_input_iterator_error_is_raised_in_both_modes() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("input broke")

    for errors in ("raise", "collect"):
        with pytest.raises(RuntimeError, match="input broke"):
            async for _ in amap(Probe(), broken(), concurrency=2, errors=errors):  # type: ignore[call-overload]
                pass


@virtual
async def test_break_cancels_everything_still_running() -> None:
    probe = Probe({0: 0.01, **{i: 10.0 for i in range(1, 10)}})
    async for r in amap(probe, range(10), concurrency=5):
        assert r == 0
        break
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(probe.cancelled) == [1, 2, 3, 4, 5]
    assert probe.running == 0
    assert now() < 1


@virtual
async def test_async_with_waits_for_cancelled_work() -> None:
    probe = Probe(10.0)
    async with amap(probe, itertools.count(), concurrency=3) as results:
        task = asyncio.create_task(anext(results))
        await asyncio.sleep(1)
        task.cancel()
    assert probe.running == 0 and len(probe.cancelled) == 3
    with pytest.raises(StopAsyncIteration):
        await anext(results)


@virtual
async def test_exception_in_the_loop_body_cancels_the_work() -> None:
    probe = Probe({0: 0.0, **{i: 5.0 for i in range(1, 10)}})
    with pytest.raises(ZeroDivisionError):
        async for _ in amap(probe, range(10), concurrency=3, ordered=False):
            1 / 0  # noqa: B018
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert probe.running == 0 and sorted(probe.cancelled) == [1, 2, 3]


@virtual
async def test_rate_limits_starts() -> None:
    starts: list[float] = []

    async def fn(x: int) -> int:
        starts.append(now())
        return x

    results = [r async for r in amap(fn, range(25), concurrency=10, rate=10, burst=5)]
    assert results == list(range(25))
    assert starts[:5] == [0] * 5
    assert starts[-1] == pytest.approx(2.0)  # 5 at once, then 10 per second


@virtual
async def test_context_variables_reach_fn() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var")
    var.set("caller")

    async def fn(x: int) -> str:
        return var.get()

    assert [r async for r in amap(fn, range(3), concurrency=2)] == ["caller"] * 3


@virtual
async def test_fewer_items_than_concurrency_starts_few_workers() -> None:
    probe = Probe()
    results = amap(probe, range(3), concurrency=100)
    assert await anext(results) == 0
    assert results.statistics().workers <= 4  # not 100 tasks for 3 items
    assert [r async for r in results] == [10, 20]
    assert results.statistics().workers == 0


@virtual
async def test_empty_input_and_statistics_and_repr() -> None:
    results = amap(Probe(), [], concurrency=4)
    assert "new" in repr(results)
    assert [r async for r in results] == []
    stats = results.statistics()
    assert (stats.started, stats.yielded, stats.exhausted) == (0, 0, True)
    assert "closed" in repr(results) and "concurrency=4" in repr(results)


def test_amap_is_lazy_and_can_be_created_outside_a_loop() -> None:
    source = CountingIterator()
    results = amap(Probe(), source, concurrency=2)
    assert source.pulled == 0
    del results


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"concurrency": 0}, ValueError),
        ({"concurrency": 2.0}, ValueError),
        ({"concurrency": 2, "errors": "ignore"}, ValueError),
        ({"concurrency": 2, "buffer": -1}, ValueError),
        ({"concurrency": 2, "rate": 0}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        amap(Probe(), range(3), **kwargs)  # type: ignore[call-overload]


def test_items_must_be_iterable() -> None:
    with pytest.raises(TypeError):
        amap(Probe(), 42, concurrency=2)  # type: ignore[call-overload]


@settings(max_examples=60, deadline=None)
@given(
    delays=st.lists(st.sampled_from([0, 0, 0.001, 0.01, 0.05, 0.3]), max_size=40),
    concurrency=st.integers(1, 6),
    buffer=st.integers(0, 5),
    ordered=st.booleans(),
    failing=st.sets(st.integers(0, 39), max_size=5),
    async_input=st.booleans(),
)
def test_property_results_bounds_and_failures(
    delays: list[float],
    concurrency: int,
    buffer: int,
    ordered: bool,
    failing: set[int],
    async_input: bool,
) -> None:
    running = 0
    peak = 0
    outstanding_peak = 0

    async def fn(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(delays[i])
            if i in failing:
                raise ValueError(i)
            return i
        finally:
            running -= 1

    async def aitems() -> AsyncIterator[int]:
        for i in range(len(delays)):
            yield i

    @virtual
    async def scenario() -> list[object]:
        nonlocal outstanding_peak
        items = aitems() if async_input else range(len(delays))
        it = amap(fn, items, concurrency=concurrency, buffer=buffer, ordered=ordered,
                  errors="collect")  # fmt: skip
        out: list[object] = []
        async for r in it:
            stats = it.statistics()
            outstanding_peak = max(outstanding_peak, stats.started - stats.yielded)
            out.append(r.index if isinstance(r, Failure) else r)
        return out

    out = scenario()
    expected = list(range(len(delays)))
    assert (out if ordered else sorted(out)) == expected  # type: ignore[type-var]
    assert peak <= concurrency
    assert outstanding_peak <= concurrency + buffer


async def slow_source(n: int, log: list[str]) -> AsyncIterator[int]:
    try:
        for i in range(n):
            await asyncio.sleep(0.003)  # a pull takes time: amap's exit finds one in progress
            yield i
    except BaseException as exc:
        log.append(type(exc).__name__)
        raise
    finally:
        log.append("finished")


@pytest.mark.parametrize("ordered", [True, False])
@virtual
async def test_leaving_early_leaves_the_async_input_usable(ordered: bool) -> None:
    log: list[str] = []
    gen = slow_source(100, log)
    async with amap(Probe(), gen, concurrency=3, ordered=ordered) as results:
        async for r in results:
            assert r == 0
            break
    assert log == []  # no cancellation thrown into the generator, not finished
    rest = [x async for x in gen]
    assert rest and rest == list(range(rest[0], 100))
    assert rest[0] <= 1 + 3 + 6 + 1  # what amap pulled ahead (concurrency + buffer) is dropped


@virtual
async def test_an_error_cancels_a_pull_in_progress() -> None:
    # An error must not wait for the input's next item (it may never come): the pull in
    # progress is cancelled, which finishes an async generator.
    log: list[str] = []
    gen = slow_source(100, log)

    async def fn(x: int) -> int:
        await asyncio.sleep(0.001 if x == 2 else 0.01)
        if x == 2:
            raise ValueError(x)  # while the other worker is pulling item 3
        return x

    with pytest.raises(ValueError):
        async for _ in amap(fn, gen, concurrency=2):
            pass
    assert log == ["CancelledError", "finished"]


@virtual
async def test_cancelling_the_exit_cancels_a_pull_in_progress() -> None:
    log: list[str] = []

    async def stuck() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(1000)  # an input waiting for its next item for a long time
            yield 2
        finally:
            log.append("finished")

    results = amap(Probe(), stuck(), concurrency=2)
    assert await anext(results) == 10
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(5):
            await results.aclose()
    assert log == ["finished"] and now() == pytest.approx(5.01)
