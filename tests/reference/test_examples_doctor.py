"""The runtime pitfalls of examples/pitfalls/ are reported by the doctor when they run.

Each bad example is run under ``python -m loopwise.doctor --json``; the doctor must report the
expected event kind at the example's own file and line. Its good twin must run without any
event of that kind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pitfalls"

# example, event kind, the text of the line the event must be located at, and for lost
# exceptions the text of the line that created the task (it must be in the event's stack).
RUNTIME_PITFALLS = [
    ("bad_blocking_call.py", "blocked", "time.sleep(0.2)", None),
    ("bad_dangling_task.py", "task-leak", "asyncio.create_task(write_audit_record", None),
    ("bad_unawaited.py", "never-awaited", "save(record)  # never runs", None),
    (
        "bad_lost_task_exception.py",
        "exception-not-retrieved",
        "raise ConnectionError",
        "asyncio.create_task(refresh(source))",
    ),
]


def _line_of(path: Path, text: str) -> int:
    lines = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, f"{text!r} must appear on exactly one line of {path.name}"
    return lines[0]


def _doctor_events(example: str, tmp_path: Path) -> list[dict[str, Any]]:
    report = tmp_path / "doctor.json"
    done = subprocess.run(
        [sys.executable, "-m", "loopwise.doctor", "--json", str(report), example],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    events: list[dict[str, Any]] = json.loads(report.read_text())["events"]
    return events


@pytest.mark.parametrize(
    ("example", "kind", "at", "created_at"),
    RUNTIME_PITFALLS,
    ids=[row[0] for row in RUNTIME_PITFALLS],
)
def test_doctor_reports_the_bad_example(
    example: str, kind: str, at: str, created_at: str | None, tmp_path: Path
) -> None:
    path = EXAMPLES / example
    events = [e for e in _doctor_events(example, tmp_path) if e["kind"] == kind]
    assert events, f"the doctor reported no {kind} event for {example}"
    expected = {"file": example, "line": _line_of(path, at)}
    # A block made of several blocking lines (a sleep, then a subprocess) is located at the line
    # with the most samples and names the others with their counts: the line must be among them.
    locations = [
        {"file": place["file"], "line": place["line"]}
        for e in events
        for place in [e["location"], *e.get("samples", ())]
    ]
    assert expected in locations, f"{kind} events located at {locations}, not {expected}"
    if created_at is not None:
        creation = {"file": example, "line": _line_of(path, created_at)}
        stacks = [[{"file": f["file"], "line": f["line"]} for f in e["stack"]] for e in events]
        assert any(creation in stack for stack in stacks), stacks


@pytest.mark.parametrize(
    ("example", "kind"),
    [(row[0].replace("bad_", "good_", 1), row[1]) for row in RUNTIME_PITFALLS],
    ids=[row[0].replace("bad_", "good_", 1) for row in RUNTIME_PITFALLS],
)
def test_doctor_is_quiet_about_the_good_example(example: str, kind: str, tmp_path: Path) -> None:
    events = _doctor_events(example, tmp_path)
    assert [e for e in events if e["kind"] == kind] == []
