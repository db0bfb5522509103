"""Helpers for the doctor's tests: run a small program under ``loopwise run`` in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loopwise import doctor
from loopwise.doctor import _doctor


@dataclass
class Run:
    """The outcome of one ``loopwise run``."""

    code: int
    stdout: str
    stderr: str
    script: Path
    source: str
    events: list[dict[str, Any]]

    def line(self, tag: str) -> int:
        """The 1-based line of the program marked with ``# <- tag``."""
        lines = [i for i, text in enumerate(self.source.splitlines(), 1) if f"# <- {tag}" in text]
        assert len(lines) == 1, f"tag {tag!r} must mark exactly one line"
        return lines[0]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def located(self, kind: str, tag: str) -> list[dict[str, Any]]:
        """Events of ``kind`` whose location is the line marked ``tag`` of the program."""
        want = {"file": self.script.name, "line": self.line(tag)}  # relative to the cwd
        return [
            e
            for e in self.of_kind(kind)
            if e["location"] and {k: e["location"][k] for k in ("file", "line")} == want
        ]


RunDoctor = Callable[..., Run]


@pytest.fixture
def run_doctor(tmp_path: Path) -> RunDoctor:
    """Run a program (given as source text) under the doctor; returns a :class:`Run`."""

    def run(
        source: str,
        *args: str,
        threshold_ms: float = 100,
        options: tuple[str, ...] = (),
        name: str = "prog.py",
    ) -> Run:
        text = textwrap.dedent(source)
        script = tmp_path / name
        script.write_text(text)
        report = tmp_path / "report.json"
        command = [
            sys.executable,
            "-m",
            "loopwise.doctor",
            "--threshold-ms",
            str(threshold_ms),
            "--json",
            str(report),
            *options,
            str(script),
            *args,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
        )
        events = json.loads(report.read_text())["events"] if report.exists() else []
        return Run(done.returncode, done.stdout, done.stderr, script, text, events)

    return run


@pytest.fixture(autouse=True)
def _no_doctor_left_behind() -> Iterator[None]:
    """Every test leaves no installed doctor and no watchdog thread behind."""
    yield
    leftover = doctor.uninstall()
    ambient = _doctor._ambient  # the doctor of `pytest --loopwise` running this suite, if any
    theirs = ambient._watchdog._thread if ambient is not None else None
    alive = [
        t.name
        for t in threading.enumerate()
        if t.name == "loopwise-doctor-watchdog" and t is not theirs
    ]
    assert leftover is None, "a test left the doctor installed"
    assert not alive, "a test left the watchdog thread running"
