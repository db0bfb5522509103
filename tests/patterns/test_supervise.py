"""Supervisor: TaskGroup semantics plus background tasks and restartable services."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings
from typing import Any

import pytest

from loopwise import ClosedError, Supervisor, UsageError, retry
from tests.patterns._virtual import now, virtual


def exception_handler_calls() -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: calls.append(ctx))
    return calls


@virtual
async def test_waits_for_tasks_and_cancels_background_on_exit() -> None:
    log: list[str] = []

    async def job() -> str:
        await asyncio.sleep(2)
        log.append("job done")
        return "result"

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            log.append("background cancelled")
            raise

    async with Supervisor() as sup:
        task = sup.create_task(job())
        background = sup.create_task(forever(), background=True)
        assert sup.statistics().tasks == 1 and sup.statistics().background == 1
    assert log == ["job done", "background cancelled"]
    assert task.result() == "result" and background.cancelled()
    assert now() == pytest.approx(2)
    assert sup.statistics().state == "closed"


@virtual
async def test_a_failing_task_cancels_everything_and_is_raised() -> None:
    handler_calls = exception_handler_calls()

    async def fails() -> None:
        await asyncio.sleep(1)
        raise ValueError("task failed")

    async def long() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(ExceptionGroup) as info:
        async with Supervisor() as sup:
            sup.create_task(fails())
            slow = sup.create_task(long())
            bg = sup.create_task(long(), background=True)
            await asyncio.sleep(3600)  # the body is cancelled too
    assert info.group_contains(ValueError, match="task failed")  # type: ignore[attr-defined]
    assert slow.cancelled() and bg.cancelled()
    assert now() == pytest.approx(1)
    gc.collect()
    assert handler_calls == []  # nothing "never retrieved"


@virtual
async def test_a_failing_background_task_is_raised_not_lost() -> None:
    async def fails() -> None:
        await asyncio.sleep(1)
        raise KeyError("background failed")

    with pytest.raises(ExceptionGroup) as info:
        async with Supervisor() as sup:
            sup.create_task(fails(), background=True)
            await asyncio.sleep(10)
    assert info.group_contains(KeyError)  # type: ignore[attr-defined]


@virtual
async def test_a_service_is_restarted_with_backoff_and_each_failure_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    starts: list[float] = []

    async def service() -> None:
        starts.append(now())
        if len(starts) < 4:
            raise OSError(f"crash {len(starts)}")
        await asyncio.sleep(3600)

    policy = retry(attempts=None, backoff=1, max_backoff=3, jitter=False)
    with caplog.at_level(logging.ERROR, logger="loopwise.patterns"):
        async with Supervisor(name="app") as sup:
            task = sup.supervise(service, restart=policy)
            await asyncio.sleep(100)
            assert sup.statistics().restarts == 3
            assert sup.statistics().services == 1
    assert starts == [0, 1, 3, 6]  # backoff 1, 2, 3 (capped)
    assert task.cancelled()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and "app: service 'test_a_service" in messages[0]
    assert all(r.exc_info and isinstance(r.exc_info[1], OSError) for r in caplog.records)


@virtual
async def test_a_service_that_gives_up_brings_the_scope_down() -> None:
    calls = 0

    async def service() -> None:
        nonlocal calls
        calls += 1
        raise OSError("always")

    with pytest.raises(ExceptionGroup) as info:
        async with Supervisor(logger=logging.getLogger("quiet")) as sup:
            sup.supervise(service, restart=retry(attempts=3, backoff=0.1), name="svc")
            await asyncio.sleep(3600)
    assert calls == 3
    (exc,) = info.value.exceptions
    assert "service 'svc' of supervisor gave up" in exc.__notes__


@virtual
async def test_restart_false_raises_at_once() -> None:
    async def service(a: int, b: int) -> None:
        raise RuntimeError(f"{a}+{b}")

    with pytest.raises(ExceptionGroup) as info:
        async with Supervisor() as sup:
            sup.supervise(service, 1, 2, restart=False)
            await asyncio.sleep(1)
    assert info.group_contains(RuntimeError, match="1\\+2")  # type: ignore[attr-defined]


@virtual
async def test_a_service_that_returns_is_done() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    async with Supervisor() as sup:
        sup.supervise(once)
        await asyncio.sleep(1)
    assert runs == 1


@virtual
async def test_a_long_healthy_run_resets_the_backoff() -> None:
    starts: list[float] = []

    async def service() -> None:
        starts.append(now())
        await asyncio.sleep(10 if len(starts) % 2 else 0)
        raise OSError("crash")

    policy = retry(attempts=None, backoff=1, max_backoff=100, jitter=False)
    async with Supervisor(logger=logging.getLogger("quiet")) as sup:
        sup.supervise(service, restart=policy, reset_after=5)
        await asyncio.sleep(25)
    # ran 10 s (healthy) -> restart at once; failed fast -> 1 s; ran 10 s -> at once; ...
    assert starts == [0, 10, 11, 21, 22]


@virtual
async def test_body_exception_cancels_everything() -> None:
    async def long() -> None:
        await asyncio.sleep(3600)

    with pytest.raises(ExceptionGroup) as info:
        async with Supervisor() as sup:
            task = sup.create_task(long())
            sup.supervise(long)
            raise ZeroDivisionError
    assert info.group_contains(ZeroDivisionError)  # type: ignore[attr-defined]
    assert task.cancelled()


@virtual
async def test_outer_cancellation_propagates() -> None:
    async def scope() -> None:
        async with Supervisor() as sup:
            sup.create_task(asyncio.sleep(3600))
            sup.supervise(asyncio.sleep, 3600)

    task = asyncio.create_task(scope())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@virtual
async def test_closed_and_unentered_supervisors_refuse_tasks_without_warnings() -> None:
    sup = Supervisor(name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UsageError):
            sup.create_task(asyncio.sleep(1))
        async with sup:
            pass
        with pytest.raises(ClosedError):
            sup.create_task(asyncio.sleep(1))
        with pytest.raises(ClosedError):
            sup.supervise(asyncio.sleep, 1)
        gc.collect()
    with pytest.raises(UsageError):
        async with sup:
            pass
    assert repr(sup) == "<Supervisor s closed tasks=0 background=0 services=0 restarts=0>"


@virtual
async def test_tasks_can_start_more_tasks_while_the_scope_exits() -> None:
    done: list[int] = []

    async with Supervisor() as sup:

        async def spawner(n: int) -> None:
            await asyncio.sleep(1)
            done.append(n)
            if n < 3:
                sup.create_task(spawner(n + 1))

        sup.create_task(spawner(0))
    assert done == [0, 1, 2, 3]


def test_bad_restart_argument() -> None:
    async def main() -> None:
        async with Supervisor() as sup:
            with pytest.raises(TypeError):
                sup.supervise(asyncio.sleep, 1, restart="yes")  # type: ignore[arg-type]

    asyncio.run(main())


def loop_clock() -> float:
    return asyncio.get_running_loop().time()


@virtual
async def test_a_long_healthy_run_resets_the_attempt_count() -> None:
    starts: list[float] = []

    async def service() -> None:
        starts.append(now())
        if len(starts) % 2:
            raise OSError("crash at start")
        await asyncio.sleep(10)
        if len(starts) < 6:
            raise OSError("crash after a healthy run")

    policy = retry(attempts=2, backoff=1, jitter=False)
    async with asyncio.timeout(100):
        async with Supervisor(logger=logging.getLogger("quiet")) as sup:
            await sup.supervise(service, restart=policy, reset_after=5)
    # fast failure (attempt 1), 1 s backoff, a healthy run that fails (attempt 2 of 2, but
    # healthy: restarted at once with a fresh count), fast failure (attempt 1 again), ...
    assert starts == [0, 1, 11, 12, 22, 23]


@virtual
async def test_a_long_healthy_run_resets_the_time_budget() -> None:
    starts: list[float] = []

    async def service() -> None:
        starts.append(now())
        if len(starts) % 2:
            raise OSError("crash at start")
        await asyncio.sleep(12)
        if len(starts) < 6:
            raise OSError("crash after a healthy run")

    policy = retry(attempts=None, max_time=10, backoff=1, jitter=False, clock=loop_clock)
    async with asyncio.timeout(100):
        async with Supervisor(logger=logging.getLogger("quiet")) as sup:
            await sup.supervise(service, restart=policy, reset_after=5)
    # the healthy run ends 13 s after the first attempt, past max_time=10: restarted anyway
    assert starts == [0, 1, 13, 14, 26, 27]


@virtual
async def test_short_runs_still_use_up_the_attempts() -> None:
    async def service() -> None:
        await asyncio.sleep(1)
        raise OSError("crash")

    policy = retry(attempts=3, backoff=1, jitter=False)
    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.timeout(100):
            async with Supervisor(logger=logging.getLogger("quiet")) as sup:
                sup.supervise(service, restart=policy, reset_after=5)
                await asyncio.sleep(50)
    assert info.group_contains(OSError)
    assert now() == pytest.approx(1 + 1 + 1 + 2 + 1)
