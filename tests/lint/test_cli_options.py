"""Command-line options: contradicting ones, and ``--force-exclude`` with stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lint.snippets import feed_stdin
from tests.lint.test_workflow import BAD, project, run

__all__ = ["project"]  # the fixture, used by name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--add-noqa", "--fix"], "--fix and --add-noqa cannot be used together"),
        (["--add-noqa", "--fix-only"], "--fix-only and --add-noqa cannot be used together"),
        (["--isolated", "--config", "loopwise.toml"], "--isolated and --config cannot be used"),
        (["--config", "."], ".: --config takes a file (pyproject.toml or loopwise.toml)"),
    ],
)
def test_options_that_contradict_each_other_are_one_line_and_exit_two(
    project: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    (project / "loopwise.toml").write_text('select = ["LW002"]\n')
    code, out, err = run(capsys, *options, "bad.py")
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1, err
    assert (project / "bad.py").read_text() == BAD  # neither fixed nor given a noqa


def test_force_exclude_applies_to_the_stdin_filename(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Editors pipe every buffer with --force-exclude: an excluded path is neither reported
    # nor rewritten (its text comes back as it was).
    (project / "loopwise.toml").write_text('exclude = ["generated/**"]\n')
    feed_stdin(monkeypatch, BAD)
    code, out, _ = run(capsys, "--force-exclude", "-", "--stdin-filename", "generated/x.py")
    assert (code, out) == (0, "")
    feed_stdin(monkeypatch, BAD)
    code, out, _ = run(
        capsys, "--force-exclude", "--fix", "-", "--stdin-filename", "generated/x.py"
    )
    assert (code, out) == (0, BAD)
    feed_stdin(monkeypatch, BAD)  # without --force-exclude a named path is checked, as in ruff
    assert run(capsys, "-", "--stdin-filename", "generated/x.py")[0] == 1
