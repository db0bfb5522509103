"""The doctor's building blocks: dump parsing, report layout, frame classification."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from loopwise.doctor import Event, EventKind, Frame, format_report, report_json
from loopwise.doctor._frames import is_user_file, user_location
from loopwise.doctor._gil import parse_faulthandler_dump
from loopwise.doctor._loopwatch import ClockReader, thread_clock


def test_faulthandler_dump_is_parsed_per_thread_innermost_last() -> None:
    with tempfile.TemporaryFile() as handle:
        line = sys._getframe().f_lineno + 1
        faulthandler.dump_traceback(file=handle, all_threads=True)
        handle.seek(0)
        text = handle.read().decode()
    stacks = parse_faulthandler_dump(text)
    mine = stacks[threading.get_ident()]
    assert mine[-1] == Frame(
        __file__, line, "test_faulthandler_dump_is_parsed_per_thread_innermost_last"
    )


def _event(kind: EventKind, file: str, line: int, ms: float | None = None) -> Event:
    frame = Frame(file, line, "f")
    return Event(kind, f"{kind.value} at {line}", stack=(frame,), location=frame, duration_ms=ms)


def test_report_groups_by_location_and_puts_the_most_severe_kind_first() -> None:
    events = [
        _event(EventKind.UNCLOSED_RESOURCE, "app.py", 9),
        _event(EventKind.TASK_LEAK, "app.py", 5),
        _event(EventKind.BLOCKED, "app.py", 3, 120.0),
        _event(EventKind.BLOCKED, "app.py", 3, 480.0),
        _event(EventKind.NEVER_AWAITED, "app.py", 7),
        _event(EventKind.EXCEPTION_NOT_RETRIEVED, "app.py", 4),
    ]
    report = format_report(events)
    assert report.startswith("loopwise doctor: 6 findings\n")
    heads = [line for line in report.splitlines() if line.startswith("[")]
    assert heads == [
        "[blocked] event loop blocked at app.py:3 (x2)",
        "[exception-not-retrieved] task exception never retrieved at app.py:4",
        "[task-leak] task still pending at app.py:5",
        "[never-awaited] coroutine never awaited at app.py:7",
        "[unclosed-resource] resource never closed at app.py:9",
    ]
    assert "blocked at 3" in report  # the message of the longest block of the group
    assert format_report([]) == "loopwise doctor: no problems found\n"


def test_json_report_round_trips_the_documented_fields() -> None:
    event = Event(
        EventKind.BLOCKED,
        "blocked",
        stack=(Frame("a.py", 1, "main"), Frame("a.py", 7, "helper")),
        location=Frame("a.py", 7, "helper"),
        duration_ms=123.456,
        samples=((Frame("a.py", 7, "helper"), 3),),
    )
    data = json.loads(json.dumps(report_json([event])))
    assert data == {
        "events": [
            {
                "kind": "blocked",
                "message": "blocked",
                "duration_ms": 123.5,
                "stack": [
                    {"file": "a.py", "line": 1, "function": "main"},
                    {"file": "a.py", "line": 7, "function": "helper"},
                ],
                "location": {"file": "a.py", "line": 7, "function": "helper"},
                "samples": [{"file": "a.py", "line": 7, "function": "helper", "count": 3}],
            }
        ]
    }


def test_user_code_is_told_from_the_stdlib_and_installed_packages() -> None:
    assert is_user_file(__file__)
    assert not is_user_file(asyncio.__file__)
    assert not is_user_file(json.__file__)
    assert not is_user_file("<frozen runpy>")
    stack = (Frame(__file__, 1, "main"), Frame(asyncio.__file__, 2, "sleep"))
    assert user_location(stack) == stack[0]
    assert user_location(stack[1:]) == stack[1]
    assert user_location(()) is None


def test_paths_are_shown_relative_below_the_base_directory_and_absolute_elsewhere(
    tmp_path: Path,
) -> None:
    from loopwise.doctor._model import set_base_directory

    inside = tmp_path / "app" / "main.py"
    outside = tmp_path.parent / "elsewhere.py"
    try:
        set_base_directory(str(tmp_path))
        assert Frame(str(inside), 3, "f").at == f"app{os.sep}main.py:3"
        assert Frame(str(outside), 4, "g").at == f"{outside}:4"
        assert Frame("app/main.py", 5, "h").to_json()["file"] == f"app{os.sep}main.py"
        assert Frame("<string>", 1, "k").at == "<string>:1"
    finally:
        set_base_directory(os.getcwd())


def test_library_frames_are_folded_and_your_frames_come_first() -> None:
    asyncio_dir = os.path.dirname(asyncio.__file__)
    lib = [Frame(os.path.join(asyncio_dir, "base_events.py"), n, "run") for n in (1, 2, 3)]
    mine = [Frame(os.path.abspath("app.py"), 7, "main"), Frame(os.path.abspath("app.py"), 3, "f")]
    stack = (*lib, mine[0], lib[0], lib[1], mine[1])
    event = Event(EventKind.BLOCKED, "m", stack=stack, location=mine[1], duration_ms=150.0)
    text = format_report([event]).splitlines()
    frames = [line.strip() for line in text[4:]]
    assert frames == [
        "> app.py:7 in main",
        "… 2 library frames (asyncio)",
        "> app.py:3 in f",
        "… 3 library frames outside (asyncio)",
    ]
    full = format_report([event], full_stacks=True).splitlines()[4:]
    assert len(full) == len(stack)
    assert sum(line.startswith("    >") for line in full) == 2


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="per-thread clocks are Linux's")
def test_clock_reader_follows_a_busy_thread_and_lets_go_of_one_that_ended() -> None:
    reader = ClockReader(reopen_every=8)
    try:
        me = threading.get_native_id()
        first = reader.read(me)
        deadline = time.thread_time() + 0.05
        while time.thread_time() < deadline:  # bounded: 50 ms of this thread's CPU
            pass
        second = reader.read(me)
        assert first is not None and second is not None
        assert second[0] > first[0] and second[1] - first[1] >= 0.04  # the same open file, fresh
        fresh = thread_clock(me)
        assert fresh is not None and fresh[1] >= second[1]
        assert reader.read(None) is None

        release = threading.Event()
        worker = threading.Thread(target=release.wait, args=(10,))
        worker.start()
        assert worker.native_id is not None
        assert reader.read(worker.native_id) is not None  # its file is open now
        release.set()
        worker.join()
        # Within reopen_every reads, the file of the thread that ended is let go.
        readings = [reader.read(worker.native_id) for _ in range(8)]
        assert readings[-1] is None
        assert worker.native_id not in reader._files
    finally:
        reader.close()
    assert reader._files == {}


def test_await_tree_shows_a_task_reached_twice_once_and_stops_at_a_cycle() -> None:
    from loopwise.doctor._monitor_views import await_tree

    def task(name: str, *awaits: str, parent: str | None = None) -> dict[str, object]:
        return {
            "id": name,
            "name": name,
            "coroutine": "c",
            "state": "waiting",
            "loop": 0,
            "at": None,
            "awaits": {"kind": "task", "what": "", "tasks": list(awaits)} if awaits else None,
            "group_parent": parent,
        }

    # a and b both await shared; x -> y -> z -> x is a three-task cycle nobody else awaits.
    tasks = [
        task("a", "shared"),
        task("b", "shared"),
        task("shared"),
        task("x", "y"),
        task("y", "z"),
        task("z", "x"),
        task("kid", parent="a"),
    ]
    forest = await_tree(tasks)  # type: ignore[arg-type]
    roots = [node["task"]["name"] for node in forest]
    assert roots == ["a", "b", "x"]
    a, b, x = forest
    assert [(c["task"]["name"], c["repeat"]) for c in a["children"]] == [
        ("shared", None),
        ("kid", None),
    ]
    assert [(c["task"]["name"], c["repeat"]) for c in b["children"]] == [("shared", "shown")]
    y = x["children"][0]
    z = y["children"][0]
    assert (y["task"]["name"], z["task"]["name"]) == ("y", "z")
    assert [(c["task"]["name"], c["repeat"]) for c in z["children"]] == [("x", "cycle")]
