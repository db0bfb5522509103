"""`extend-blocking-calls`: the configuration names more calls that LW005 reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.cli import main

CODE = """\
import db
import mylib


async def handler(session: db.Session, other: db.Other):
    mylib.sync_fetch("x")
    local = db.Session()
    local.query("select 1")
    session.query("select 2")
    session.add(1)
    other.query("select 3")
    mylib.other()
"""
CONFIG = '[tool.loopwise]\nextend-blocking-calls = ["mylib.sync_fetch", "db.Session.query"]\n'


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(CODE)
    return tmp_path


def lines(capsys: pytest.CaptureFixture[str], *args: str) -> list[int]:
    code = main(["check", "--select", "LW005", *args])
    out, _ = capsys.readouterr()
    assert code in (0, 1)
    return [int(line.split(":")[1]) for line in out.splitlines()]


def test_configured_functions_and_methods_of_known_types_are_reported(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lines(capsys, "--no-cache", ".") == []
    (project / "pyproject.toml").write_text(CONFIG)
    assert lines(capsys, "--no-cache", ".") == [6, 8, 9]
    main(["check", "--no-cache", "--select", "LW005", "."])
    out, _ = capsys.readouterr()
    assert "`mylib.sync_fetch()`" in out
    assert "`local.query()` (`db.Session.query`)" in out
    assert "extend-blocking-calls" in out


def test_the_nearest_configuration_governs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(CONFIG)
    (project / "sub").mkdir()
    (project / "sub" / "app.py").write_text(CODE)
    (project / "sub" / "loopwise.toml").write_text('extend-blocking-calls = ["mylib.other"]\n')
    main(["check", "--no-cache", "--select", "LW005", "."])
    out, _ = capsys.readouterr()
    found = sorted(line.split(":")[0] + ":" + line.split(":")[1] for line in out.splitlines())
    assert found == ["app.py:6", "app.py:8", "app.py:9", "sub/app.py:12"]


def test_cached_findings_follow_a_changed_configuration(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text(CONFIG)
    assert lines(capsys, ".") == [6, 8, 9]
    (project / "pyproject.toml").write_text(
        '[tool.loopwise]\nextend-blocking-calls = ["mylib.other"]\n'
    )
    assert lines(capsys, ".") == [12]


def test_stdin_uses_the_configuration_of_the_named_file(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text(CONFIG)
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CODE.encode())))
    assert lines(capsys, "--stdin-filename", "app.py", "-") == [6, 8, 9]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["sync_fetch"]', "'sync_fetch' is not the dotted name of a function or method"),
        ('["mylib..fetch"]', "'mylib..fetch' is not the dotted name"),
        ('["mylib.fetch()"]', "'mylib.fetch()' is not the dotted name"),
        ('"mylib.fetch"', "extend-blocking-calls must be a list of strings, like"),
        ("[3]", "extend-blocking-calls must be a list of strings"),
    ],
)
def test_a_malformed_entry_is_one_line_exit_two(
    project: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(f"[tool.loopwise]\nextend-blocking-calls = {value}\n")
    code = main(["check", "--no-cache", "."])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_show_settings_lists_them(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text(CONFIG)
    assert main(["check", "--show-settings", "app.py"]) == 0
    out, _ = capsys.readouterr()
    assert "extend-blocking-calls: mylib.sync_fetch, db.Session.query\n" in out


def test_lw017_follows_helpers_to_configured_calls(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "helpers.py").write_text(
        "import mylib\n\n\ndef load():\n    return mylib.sync_fetch('x')\n"
    )
    (project / "use.py").write_text(
        "from helpers import load\n\n\nasync def handler():\n    return load()\n"
    )
    assert main(["check", "--no-cache", "--select", "LW017", "use.py", "helpers.py"]) == 0
    capsys.readouterr()
    (project / "pyproject.toml").write_text(CONFIG)
    assert main(["check", "--no-cache", "--select", "LW017", "use.py", "helpers.py"]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith("use.py:5:12: LW017 `load()` blocks the event loop: it calls ")
    assert "`mylib.sync_fetch()` at helpers.py:5" in out
