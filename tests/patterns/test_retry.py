"""retry: backoff schedule, give-up rules, delay hints, never retrying cancellation, no shared
state between concurrent calls."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from loopwise import Attempt, Retry, retry
from loopwise.patterns import retry_after_attribute
from tests.patterns._virtual import now, virtual


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock and is recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.t

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.t += delay


class Flaky:
    """Fails ``failures`` times with ``exc``, then returns ``result``."""

    def __init__(self, failures: int, exc: BaseException | None = None, result: object = "ok"):
        self.failures = failures
        self.exc = exc or OSError("boom")
        self.result = result
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return self.result


class HintedError(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


def policy(fake: FakeTime, **options: object) -> Retry:
    options.setdefault("jitter", False)
    return retry(sleep=fake.sleep, clock=fake.clock, **options)  # type: ignore[arg-type]


async def test_decorator_retries_then_returns_with_exponential_backoff() -> None:
    fake = FakeTime()
    flaky = Flaky(3)

    @policy(fake, attempts=5, backoff=0.5, max_backoff=10)
    async def call() -> object:
        return await flaky()

    assert await call() == "ok"
    assert flaky.calls == 4
    assert fake.sleeps == [0.5, 1.0, 2.0]


async def test_backoff_is_capped_and_full_jitter_stays_within_it() -> None:
    fake = FakeTime()
    p = policy(fake, attempts=8, backoff=1, max_backoff=5)
    assert [p.compute_backoff(n) for n in range(1, 8)] == [1, 2, 4, 5, 5, 5, 5]
    jittered = retry(backoff=1, max_backoff=5, random=lambda: 0.5)
    assert [jittered.compute_backoff(n) for n in range(1, 5)] == [0.5, 1, 2, 2.5]
    real = retry(backoff=1, max_backoff=5)
    samples = [real.compute_backoff(3) for _ in range(200)]  # ceiling 4
    assert all(0 <= s < 4 for s in samples)
    assert len(set(samples)) > 100  # really random, so clients spread out
    assert p.compute_backoff(10_000) == 5  # no overflow on huge attempt numbers


async def test_gives_up_after_attempts_with_the_last_exception_and_a_note() -> None:
    fake = FakeTime()
    errors = [OSError(f"boom {i}") for i in range(3)]
    calls = iter(errors)

    async def always_fails() -> None:
        raise next(calls)

    with pytest.raises(OSError, match="boom 2") as info:
        await policy(fake, attempts=3).call(always_fails)
    assert "attempts=3 used up" in "".join(info.value.__notes__)
    assert len(fake.sleeps) == 2


async def test_only_matching_exceptions_retry() -> None:
    fake = FakeTime()
    flaky = Flaky(1, KeyError("k"))
    with pytest.raises(KeyError):
        await policy(fake, on=(OSError, TimeoutError)).call(flaky)
    assert flaky.calls == 1
    flaky = Flaky(1, KeyError("k"))
    assert await policy(fake, on=lambda e: isinstance(e, KeyError)).call(flaky) == "ok"


@pytest.mark.parametrize(
    "exc", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(3), GeneratorExit()]
)
async def test_never_retries_cancellation_or_interrupts_even_when_asked(
    exc: BaseException,
) -> None:
    fake = FakeTime()
    flaky = Flaky(1, exc)
    with pytest.raises(type(exc)):
        await policy(fake, on=BaseException, attempts=5).call(flaky)
    assert flaky.calls == 1
    assert fake.sleeps == []


@virtual
async def test_cancelling_the_caller_during_backoff_stops_retrying() -> None:
    flaky = Flaky(100)
    task = asyncio.create_task(retry(attempts=100, backoff=1, jitter=False).call(flaky))
    await asyncio.sleep(1.5)  # first attempt failed at 0, second at 1, now sleeping 2 s
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = flaky.calls
    await asyncio.sleep(100)
    assert calls == flaky.calls == 2


@virtual
async def test_an_error_raised_while_being_cancelled_is_not_retried() -> None:
    started = asyncio.Event()
    attempts = 0

    async def converts_cancellation() -> None:
        nonlocal attempts
        attempts += 1
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:  # noqa: LW011 - the conversion this test is about
            raise OSError("cleanup failed") from None

    task = asyncio.create_task(retry(attempts=5).call(converts_cancellation))
    await started.wait()
    task.cancel()
    with pytest.raises(OSError, match="cleanup failed"):
        await task
    assert attempts == 1


@virtual
async def test_a_timeout_around_each_attempt_is_retried_one_around_all_is_not() -> None:
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10 if calls < 3 else 0)
        return "done"

    async def attempt_with_timeout() -> str:
        async with asyncio.timeout(1):
            return await slow()

    assert await retry(attempts=5, backoff=0).call(attempt_with_timeout) == "done"
    assert calls == 3
    calls = 0

    async def slow_then_fails() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        raise OSError("failed after 10 s")

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(15):  # the whole loop is cut at 15 s, in the 2nd attempt
            await retry(attempts=5, backoff=0).call(slow_then_fails)
    assert calls == 2
    assert now() == pytest.approx(2 + 15)


async def test_max_time_never_sleeps_past_the_deadline() -> None:
    fake = FakeTime()
    flaky = Flaky(100)
    with pytest.raises(OSError) as info:
        await policy(fake, attempts=None, backoff=1, max_backoff=100, max_time=10).call(flaky)
    # sleeps 1, 2, 4 (t=7); the next (8) would end at 15 > 10: give up at once.
    assert fake.sleeps == [1, 2, 4]
    assert "max_time=10s would be exceeded" in "".join(info.value.__notes__)


async def test_delay_hint_replaces_the_backoff_and_is_capped() -> None:
    fake = FakeTime()
    flaky = Flaky(2, HintedError(7.5))
    assert await policy(fake, backoff=1).call(flaky) == "ok"
    assert fake.sleeps == [7.5, 7.5]

    fake = FakeTime()
    flaky = Flaky(1, HintedError(120))
    with pytest.raises(HintedError) as info:
        await policy(fake, max_hint=60).call(flaky)
    assert flaky.calls == 1 and fake.sleeps == []
    assert "max_hint=60s" in "".join(info.value.__notes__)

    fake = FakeTime()
    flaky = Flaky(1, HintedError(120))
    assert await policy(fake, delay_hint=None, backoff=2).call(flaky) == "ok"
    assert fake.sleeps == [2]


def test_default_hint_reads_retry_after() -> None:
    class R:
        def __init__(self, value: object) -> None:
            self.retry_after = value

    assert retry_after_attribute(R(3)) == 3.0
    assert retry_after_attribute(R(timedelta(minutes=1))) == 60.0
    for bad in (None, -1, float("nan"), float("inf"), "5", True):
        assert retry_after_attribute(R(bad)) is None
    assert retry_after_attribute(object()) is None


async def test_on_result_retries_and_returns_the_last_result_on_giving_up() -> None:
    fake = FakeTime()
    statuses = iter([503, 503, 200])

    async def get() -> int:
        return next(statuses)

    p = policy(fake, on_result=lambda status: status >= 500, backoff=1)
    assert await p.call(get) == 200
    assert fake.sleeps == [1, 2]

    statuses = iter([503, 503, 503])
    assert await p.call(get) == 503  # given up: the last result as it is


async def test_attempt_loop_with_request_retry_and_hint() -> None:
    fake = FakeTime()
    responses = iter([(503, 4.0), (429, 1.5), (200, None)])
    seen: list[int] = []
    async for attempt in policy(fake, attempts=4):
        with attempt:
            status, retry_after = next(responses)
            seen.append(attempt.number)
            if status != 200 and attempt.request_retry(delay=retry_after):
                continue
            result = status
    assert result == 200
    assert seen == [1, 2, 3]
    assert fake.sleeps == [4.0, 1.5]


async def test_request_retry_says_false_on_the_last_attempt() -> None:
    fake = FakeTime()
    answers: list[tuple[int, bool, bool]] = []
    async for attempt in policy(fake, attempts=2):
        last = attempt.last
        answers.append((attempt.number, last, attempt.request_retry()))
    assert answers == [(1, False, True), (2, True, False)]


async def test_attempt_loop_exception_paths() -> None:
    fake = FakeTime()
    numbers: list[int] = []
    with pytest.raises(ValueError, match="final"):
        async for attempt in policy(fake, attempts=3, on=ValueError):
            with attempt:
                numbers.append(attempt.number)
                raise ValueError("final" if attempt.number == 3 else "again")
    assert numbers == [1, 2, 3]


async def test_on_retry_hook_sees_each_failure_before_sleeping() -> None:
    fake = FakeTime()
    seen: list[tuple[int, str, float | None]] = []

    def hook(attempt: Attempt) -> None:
        seen.append((attempt.number, str(attempt.exception), attempt.delay))

    await policy(fake, backoff=1, on_retry=hook).call(Flaky(2))
    assert seen == [(1, "boom", 1), (2, "boom", 2)]


@virtual
async def test_one_policy_shared_by_concurrent_calls_keeps_no_shared_state() -> None:
    shared = retry(attempts=3, backoff=0.01)
    flakies = [Flaky(2) for _ in range(50)]
    results = await asyncio.gather(*(shared.call(f) for f in flakies))
    assert results == ["ok"] * 50
    assert [f.calls for f in flakies] == [3] * 50
    # and a call that would need a 4th attempt still fails on its own
    with pytest.raises(OSError):
        await shared.call(Flaky(3))


async def test_decorator_keeps_metadata_and_arguments() -> None:
    @retry(attempts=2, backoff=0)
    async def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    assert await add(1, b=2) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds."


def test_replace_and_repr() -> None:
    p = retry(attempts=4, on=(OSError, TimeoutError), max_time=30)
    q = p.replace(attempts=9)
    assert (p.attempts, q.attempts, q.max_time) == (4, 9, 30)
    assert repr(p) == (
        "<Retry attempts=4 max_time=30 backoff=0.1..10 full-jitter on=(OSError, TimeoutError) "
        "max_hint=60>"
    )


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": 1.5},
        {"backoff": -1},
        {"max_backoff": float("inf")},
        {"max_time": 0},
        {"max_hint": -2},
    ],
)
def test_bad_options_raise_value_error(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        retry(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("on", [int, (OSError, "x"), 42])
def test_bad_exception_filter_raises_type_error(on: object) -> None:
    with pytest.raises(TypeError):
        retry(on=on)  # type: ignore[arg-type]
