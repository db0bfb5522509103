"""Baselines: fingerprints of text read from stdin, and a baseline of a newer format."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lint.snippets import feed_stdin
from tests.lint.test_workflow import BAD, project, run

__all__ = ["project"]  # the fixture, used by name


def test_a_baseline_fingerprints_the_text_read_from_stdin(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "--write-baseline", "baseline.json", "bad.py")[0] == 0
    # An editor's unsaved buffer: a new unawaited call where the file on disk has the known one.
    buffer = BAD.replace("    work()\n", "    other()\n").replace(
        "pass\n", "pass\n\nasync def other():\n    pass\n"
    )
    buffer = buffer.replace(
        "async def main():\n    other()", "async def main():\n    work()\n    other()"
    )
    feed_stdin(monkeypatch, buffer)
    code, out, err = run(capsys, "--baseline", "baseline.json", "-", "--stdin-filename", "bad.py")
    assert code == 1 and "`other()`" in out and "`work()`" not in out, out
    # The known finding moved down by lines added above it: still known.
    feed_stdin(monkeypatch, "# a new comment\n\n" + BAD)
    code, out, err = run(capsys, "--baseline", "baseline.json", "-", "--stdin-filename", "bad.py")
    assert (code, out) == (0, "") and "1 baseline finding hidden" in err


def test_a_baseline_from_a_newer_loopwise_says_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "baseline.json").write_text('{"version": 2, "findings": {}}\n')
    code, _, err = run(capsys, "--baseline", "baseline.json", ".")
    assert code == 2 and err.count("\n") == 1
    assert "written by a newer loopwise (format 2; this one reads format 1)" in err
