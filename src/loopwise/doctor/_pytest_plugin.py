"""pytest plugin: ``pytest --loopwise`` fails tests whose event loop blocked or that leaked tasks.

Off unless ``--loopwise`` is given. While on, a test fails when, between its setup and the end
of its teardown, its loop was blocked longer than the threshold (reported in the call phase),
or a task it started was still pending when its loop closed, or a task's exception was never
retrieved (reported in the teardown phase, when the loop closes). The marker
``@pytest.mark.loopwise(threshold_ms=..., allow=[kind, ...])`` sets the test's own threshold
and lets it pass despite the listed event kinds (``"blocked"``, ``"task-leak"``, …).
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Generator, Sequence
from typing import Any

import pytest

from loopwise.doctor._doctor import Doctor, _install_ambient, _uninstall_ambient
from loopwise.doctor._model import Event, EventKind
from loopwise.doctor._report import format_report
from loopwise.doctor._tasks import unretrieved_exception_pending

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_call",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]

_FAILING = frozenset(
    {
        EventKind.BLOCKED,
        EventKind.TASK_LEAK,
        EventKind.EXCEPTION_NOT_RETRIEVED,
        EventKind.NEVER_AWAITED,
    }
)
_doctor_key = pytest.StashKey[Doctor]()
_start_key = pytest.StashKey[int]()
_settings_key = pytest.StashKey[tuple[float, frozenset[EventKind]]]()
_seen_key = pytest.StashKey[list[Event]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loopwise", "loopwise runtime doctor")
    group.addoption(
        "--loopwise",
        action="store_true",
        default=False,
        help="fail tests whose event loop blocks, or that leave tasks pending or "
        "task exceptions unretrieved",
    )
    group.addoption(
        "--loopwise-threshold-ms",
        type=float,
        default=None,
        metavar="N",
        help="report a loop blocked longer than N ms (default: loopwise_threshold_ms or 100)",
    )
    group.addoption(
        "--loopwise-full-stacks",
        action="store_true",
        default=False,
        help="show every frame in loopwise failures (library frames are folded by default)",
    )
    parser.addini(
        "loopwise_threshold_ms", "default blocked-loop threshold of --loopwise in ms", default="100"
    )


def _threshold(config: pytest.Config) -> float:
    value = config.getoption("loopwise_threshold_ms")
    if value is None:
        raw = config.getini("loopwise_threshold_ms")
        try:
            value = float(raw)
        except ValueError:
            raise pytest.UsageError(
                f"loopwise_threshold_ms must be a number of milliseconds, not {raw!r}"
            ) from None
    if not value > 0:
        raise pytest.UsageError(f"--loopwise-threshold-ms must be positive, not {value}")
    return float(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "loopwise(threshold_ms=None, allow=()): with --loopwise, this test's blocked-loop "
        "threshold in ms and the event kinds it may cause without failing "
        "('blocked', 'task-leak', 'exception-not-retrieved')",
    )
    if not config.getoption("loopwise"):
        return
    threshold = _threshold(config)
    doctor = Doctor(threshold_ms=threshold, track_coroutines=True)
    doctor._task_registry = weakref.WeakSet()
    _install_ambient(doctor)
    config.stash[_doctor_key] = doctor
    config.stash[_seen_key] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    doctor = config.stash.get(_doctor_key, None)
    if doctor is not None:
        del config.stash[_doctor_key]
        _uninstall_ambient(doctor)


def _marker_settings(item: pytest.Item, default: float) -> tuple[float, frozenset[EventKind]]:
    marker = item.get_closest_marker("loopwise")
    if marker is None:
        return default, frozenset()
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: use keywords: @pytest.mark.loopwise(threshold_ms=..., allow=[...])"
        )
    unknown = set(marker.kwargs) - {"threshold_ms", "allow"}
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown loopwise marker argument(s) {sorted(unknown)}; "
            "use threshold_ms= and allow="
        )
    threshold = marker.kwargs.get("threshold_ms", default)
    if not isinstance(threshold, (int, float)) or not threshold > 0:
        raise pytest.UsageError(
            f"{item.nodeid}: loopwise threshold_ms must be a positive number, not {threshold!r}"
        )
    allow_raw = marker.kwargs.get("allow", ())
    if isinstance(allow_raw, str):
        allow_raw = (allow_raw,)
    allowed = set()
    for name in allow_raw:
        try:
            allowed.add(EventKind(name))
        except ValueError:
            kinds = ", ".join(repr(k.value) for k in EventKind)
            raise pytest.UsageError(
                f"{item.nodeid}: unknown event kind {name!r} in loopwise(allow=...); use {kinds}"
            ) from None
    return float(threshold), frozenset(allowed)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    doctor = item.config.stash.get(_doctor_key, None)
    if doctor is None:
        return
    settings = _marker_settings(item, _threshold(item.config))
    item.stash[_settings_key] = settings
    doctor.threshold_ms = settings[0]
    item.stash[_start_key] = doctor.event_count()
    # The suite's own heap (modules, fixtures, plugins' caches) is set aside for the test: a
    # collection the test triggers scans only what the test made, so it is no long pause on the
    # test's loop that the test did not cause. Unfrozen in teardown, before the plugin collects.
    gc.freeze()


def _failures(item: pytest.Item, doctor: Doctor, kinds: frozenset[EventKind]) -> list[Event]:
    threshold, allowed = item.stash.get(_settings_key, (doctor.threshold_ms, frozenset()))
    events = doctor.events_since(item.stash.get(_start_key, doctor.event_count()))
    return [
        e
        for e in events
        if e.kind in kinds
        and e.kind not in allowed
        and (e.kind is not EventKind.BLOCKED or (e.duration_ms or 0) >= threshold)
    ]


def _fail(item: pytest.Item, events: Sequence[Event], phase: str) -> None:
    seen = item.config.stash.get(_seen_key, [])
    seen.extend(events)
    full = bool(item.config.getoption("loopwise_full_stacks"))
    report = format_report(events, full_stacks=full).replace(
        "loopwise doctor:", f"loopwise doctor ({phase}):", 1
    )
    pytest.fail(
        report + "\nAllow it with @pytest.mark.loopwise(allow=[...]) if it is intended.",
        pytrace=False,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    doctor = item.config.stash.get(_doctor_key, None)
    if doctor is not None:
        doctor.sync()
        failures = _failures(item, doctor, frozenset({EventKind.BLOCKED}))
        if failures:
            _fail(item, failures, "call")
    return result


def _collect(doctor: Doctor) -> None:
    """Let the garbage collector report what this test dropped, at a cost that fits a suite.

    Lost task exceptions and never-awaited coroutines are reported when they are collected.
    What a test drops is young: collecting the two young generations finds it cheaply. A full
    collection runs only when a task is known to hold an exception nobody retrieved.
    """
    registry = doctor._task_registry
    if registry is not None and unretrieved_exception_pending(registry):
        gc.collect()
    else:
        gc.collect(1)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    result = yield
    doctor = item.config.stash.get(_doctor_key, None)
    if doctor is not None:
        gc.unfreeze()
        _collect(doctor)
        doctor.sync()
        failures = _failures(item, doctor, _FAILING - {EventKind.BLOCKED})
        if failures:
            _fail(item, failures, "teardown")
    return result


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    doctor = config.stash.get(_doctor_key, None)
    if doctor is None:
        return
    stats = doctor.statistics()
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats.events_by_kind.items())) or "no events"
    terminalreporter.write_sep("-", "loopwise doctor")
    terminalreporter.write_line(
        f"watched {stats.loops_watched} event loop(s): {kinds}"
        f" (threshold {_threshold(config):g} ms)"
    )
