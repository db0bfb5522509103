"""retry on sync functions, min_backoff, the process-wide testing switch, statistics."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from loopwise import UsageError, retry
from loopwise.patterns import GiveUpReason, RetryStatistics, retry_testing, set_retry_testing
from loopwise.patterns._retry import GiveUpReason as PrivateGiveUpReason


class SyncFakeTime:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.t += delay


@pytest.fixture
def testing_off() -> Iterator[None]:
    set_retry_testing(False)
    yield
    set_retry_testing(False)


def test_a_sync_function_is_retried_with_time_sleep() -> None:
    fake = SyncFakeTime()
    calls = 0

    @retry(attempts=4, backoff=1, jitter=False, sync_sleep=fake.sleep, clock=fake.clock)
    def flaky(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OSError("try again")
        return x * 2

    assert flaky(21) == 42
    assert calls == 3 and fake.sleeps == [1, 2]
    assert flaky.__name__ == "flaky"


def test_a_sync_function_gives_up_with_a_note() -> None:
    policy = retry(attempts=2, backoff=0)

    def always() -> None:
        raise OSError("down")

    with pytest.raises(OSError) as info:
        policy.call_sync(always)
    assert "attempts=2 used up" in "".join(info.value.__notes__)


def test_the_sync_attempt_loop_and_on_result() -> None:
    fake = SyncFakeTime()
    policy = retry(attempts=3, backoff=0.5, jitter=False, sync_sleep=fake.sleep)
    statuses = iter([503, 503, 200])
    seen = []
    for attempt in policy:
        with attempt:
            status = next(statuses)
            seen.append(status)
            if status == 503 and attempt.request_retry():
                continue
    assert seen == [503, 503, 200] and fake.sleeps == [0.5, 1.0]
    results = iter([None, 7])
    assert retry(on_result=lambda r: r is None, backoff=0).call_sync(lambda: next(results)) == 7


def test_sync_retry_works_from_a_worker_thread_of_a_running_loop() -> None:
    @retry(attempts=2, backoff=0)
    def work() -> str:
        return threading.current_thread().name

    async def main() -> str:
        return await asyncio.to_thread(work)

    assert asyncio.run(main()) != threading.current_thread().name


def test_sync_retry_is_refused_inside_a_running_loop() -> None:
    called = False

    @retry(attempts=3)
    def blocking() -> None:
        nonlocal called
        called = True

    async def main() -> None:
        with pytest.raises(UsageError, match="would block this running event loop"):
            blocking()
        with pytest.raises(UsageError, match=r"asyncio\.to_thread"):
            for _ in retry():
                pass

    asyncio.run(main())
    assert not called


def test_a_sync_wrapper_of_a_function_returning_a_coroutine_says_what_to_do() -> None:
    async def real() -> int:
        return 1

    wrapped = retry(attempts=3)(lambda: real())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        with pytest.raises(TypeError, match="declare it `async def`"):
            wrapped()


def test_an_object_with_an_async_call_is_decorated_as_async() -> None:
    class Fetch:
        async def __call__(self) -> str:
            return "ok"

    wrapped = retry()(Fetch())
    assert asyncio.run(wrapped()) == "ok"  # type: ignore[arg-type]


@pytest.mark.parametrize("random", [0.0, 0.5, 0.999])
def test_min_backoff_is_the_shortest_delay(random: float) -> None:
    policy = retry(backoff=0.1, min_backoff=0.05, max_backoff=10, random=lambda: random)
    for failures in range(1, 8):
        ceiling = min(10, 0.1 * 2 ** (failures - 1))
        delay = policy.compute_backoff(failures)
        assert 0.05 <= delay <= ceiling
        assert delay == pytest.approx(0.05 + (ceiling - 0.05) * random)
    assert retry(backoff=0.1, random=lambda: 0.0).compute_backoff(1) == 0  # the old floor
    no_jitter = retry(backoff=0.1, min_backoff=0.3, jitter=False)
    assert [no_jitter.compute_backoff(n) for n in (1, 2, 3)] == [0.3, 0.3, 0.4]
    assert "min_backoff=0.3" in repr(no_jitter)
    with pytest.raises(ValueError, match="min_backoff"):
        retry(min_backoff=20, max_backoff=10)
    with pytest.raises(ValueError, match="min_backoff"):
        retry(min_backoff=-1)


def test_testing_switch_turns_every_sleep_off(testing_off: None) -> None:
    delays: list[float | None] = []
    policy = retry(
        attempts=3,
        backoff=30,
        max_backoff=100,
        jitter=False,
        on_retry=lambda a: delays.append(a.delay),
    )
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise OSError

    def sync_down() -> None:
        raise OSError

    set_retry_testing(True)
    assert retry_testing()
    began = time.monotonic()
    with pytest.raises(OSError):
        asyncio.run(policy.call(down))
    with pytest.raises(OSError):
        policy.call_sync(sync_down)
    assert time.monotonic() - began < 5  # 4 x 30 s and more of backoff, not slept
    assert calls == 3 and delays == [30, 60, 30, 60]  # still decided and reported
    assert policy.statistics().total_delay == 180
    set_retry_testing(False)
    assert not retry_testing()


def test_statistics_count_every_call_of_the_policy() -> None:
    policy = retry(attempts=3, backoff=0)
    assert policy.statistics() == RetryStatistics(0, 0, 0, 0, 0.0)
    outcomes = {"a": iter([OSError(), OSError(), OSError()]), "b": iter([OSError(), "ok"])}

    async def call(key: str) -> str:
        value = next(outcomes[key])
        if isinstance(value, Exception):
            raise value
        return value

    async def main() -> None:
        results = await asyncio.gather(
            policy.call(call, "a"), policy.call(call, "b"), return_exceptions=True
        )
        assert isinstance(results[0], OSError) and results[1] == "ok"

    asyncio.run(main())
    stats = policy.statistics()
    assert (stats.calls, stats.attempts, stats.retries, stats.gave_up) == (2, 5, 3, 1)
    assert policy.replace(attempts=4).statistics().calls == 0  # a copy starts from zero
    assert policy == retry(attempts=3, backoff=0)  # counters are not part of equality


def test_give_up_reason_is_public() -> None:
    assert GiveUpReason is PrivateGiveUpReason
