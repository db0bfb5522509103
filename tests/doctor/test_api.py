"""``loopwise.doctor.install()`` / ``watch()`` inside a program."""

from __future__ import annotations

import asyncio
import asyncio.runners
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from loopwise import ConfigError, UsageError, doctor
from loopwise.doctor import Event, EventKind


def line_of(func: Callable[..., Any], tag: str) -> int:
    """The line of ``func`` marked with ``# <- tag``."""
    lines, first = inspect.getsourcelines(func)
    (offset,) = [i for i, text in enumerate(lines) if f"# <- {tag}" in text]
    return first + offset


def blocking_helper() -> None:
    time.sleep(0.3)  # <- sleep


async def blocks_once() -> str:
    await asyncio.sleep(0.01)
    blocking_helper()
    await asyncio.sleep(0.01)
    return "result"


def test_watch_reports_a_block_to_the_callback_and_the_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Event] = []
    logger = logging.getLogger("doctor-test")
    with (
        caplog.at_level(logging.WARNING, logger="doctor-test"),
        doctor.watch(threshold_ms=100, on_event=seen.append, logger=logger) as doc,
    ):
        assert asyncio.run(blocks_once()) == "result"
    blocked = [e for e in seen if e.kind is EventKind.BLOCKED]
    assert len(blocked) == 1
    assert blocked[0].location is not None
    assert blocked[0].location.file == __file__
    assert blocked[0].location.line == line_of(blocking_helper, "sleep")
    assert blocked[0].duration_ms is not None and blocked[0].duration_ms > 100
    assert doc.events == seen
    assert [r.getMessage() for r in caplog.records] == [
        f"loopwise doctor: blocked: {blocked[0].message}"
    ]
    assert not doc.installed


async def test_install_inside_a_running_loop_watches_that_loop() -> None:
    loop = asyncio.get_running_loop()
    handler_before = loop.get_exception_handler()
    factory_before = loop.get_task_factory()
    doc = doctor.install(threshold_ms=100)
    try:
        assert doctor.active() is doc
        blocking_helper()
        await asyncio.sleep(0.05)
    finally:
        assert doctor.uninstall() is doc
    blocked = [e for e in doc.events if e.kind is EventKind.BLOCKED]
    assert [(e.location.file, e.location.line) for e in blocked if e.location] == [
        (__file__, line_of(blocking_helper, "sleep"))
    ]
    # Uninstalling gave the loop back its own handler and factory.
    assert loop.get_exception_handler() is handler_before
    assert loop.get_task_factory() is factory_before


def test_a_failing_callback_never_reaches_the_program() -> None:
    def explode(event: Event) -> None:
        raise RuntimeError("callback bug")

    with doctor.watch(threshold_ms=100, on_event=explode) as doc:
        assert asyncio.run(blocks_once()) == "result"
    assert [e.kind for e in doc.events] == [EventKind.BLOCKED]


def test_install_twice_is_a_usage_error() -> None:
    with doctor.watch(), pytest.raises(UsageError, match="already installed"):
        doctor.install()


@pytest.mark.parametrize("bad", [0, -5, float("nan")])
def test_a_non_positive_threshold_is_a_config_error(bad: float) -> None:
    with pytest.raises(ConfigError, match="threshold_ms must be a positive"):
        doctor.install(threshold_ms=bad)
    assert doctor.active() is None


def test_uninstall_restores_everything_it_patched() -> None:
    originals = (
        asyncio.runners.Runner.run,
        asyncio.runners._cancel_all_tasks,  # type: ignore[attr-defined]
        asyncio.new_event_loop,
    )
    with doctor.watch():
        assert asyncio.runners.Runner.run is not originals[0]
    assert (
        asyncio.runners.Runner.run,
        asyncio.runners._cancel_all_tasks,  # type: ignore[attr-defined]
        asyncio.new_event_loop,
    ) == originals


async def _leaky_main() -> None:
    asyncio.create_task(asyncio.sleep(10))  # <- leak  # noqa: RUF006


def test_task_leak_is_reported_before_asyncio_run_cancels_it() -> None:
    with doctor.watch() as doc:
        asyncio.run(_leaky_main())
    leaks = [e for e in doc.events if e.kind is EventKind.TASK_LEAK]
    assert len(leaks) == 1
    assert leaks[0].location is not None
    assert leaks[0].location.line == line_of(_leaky_main, "leak")


def test_a_task_factory_set_before_install_is_kept() -> None:
    made: list[asyncio.Task[Any]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        with doctor.watch() as doc:
            asyncio.create_task(asyncio.sleep(10))  # <- leak  # noqa: RUF006
            await asyncio.sleep(0)
            pending = [t for t in made if not t.done()]
            assert len(pending) == 1
            events = doctor._tasks.pending_events(asyncio.get_running_loop())
            assert events[0].location is not None
            assert events[0].location.line == line_of(main, "leak")
            pending[0].cancel()
            assert doc.installed

    asyncio.run(main())


def test_repr_and_statistics_show_live_state() -> None:
    with doctor.watch(threshold_ms=100) as doc:
        assert "installed" in repr(doc) and "threshold=100ms" in repr(doc)
        asyncio.run(blocks_once())
        doc.threshold_ms = 250
        assert doc.threshold_ms == 250
    stats = doc.statistics()
    assert stats.loops_watched == 1
    assert stats.events_by_kind == {"blocked": 1}
    assert stats.events_dropped == 0
    assert "uninstalled" in repr(doc)


def test_faulthandler_is_left_alone_unless_asked() -> None:
    """faulthandler reads other threads' frames without the GIL: armed by default, it could
    crash a program whose process was merely starved or stopped (SIGSTOP) when it fires."""
    with doctor.watch() as doc:
        asyncio.run(asyncio.sleep(0.01))
        assert doc._watchdog._fallback is None
    with doctor.watch(gil_fallback=True) as doc:
        assert doc._watchdog._fallback is not None
