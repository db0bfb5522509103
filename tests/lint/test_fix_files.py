"""What ``--fix``, ``--diff`` and ``--add-noqa`` read and write: encodings, byte order marks,
files changed meanwhile, missing final line breaks, strings that look like comments."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from loopwise.lint import check
from tests.lint.test_workflow import BAD, project, run

__all__ = ["project"]  # the fixture, used by name


def test_a_file_not_in_utf8_is_left_alone_and_said_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ast columns are UTF-8 offsets: applied to latin-1 bytes they land in the wrong place
    # (`log("é")` became `logawait ("é")`, which still parses).
    source = (
        "# -*- coding: latin-1 -*-\nimport asyncio\n\nasync def log(m):\n    pass\n\n"
        'async def main():\n    x = "\xe9\xe9\xe9"; log("\xe9")\n'
    ).encode("latin-1")
    (project / "bad.py").write_bytes(source)
    code, _, err = run(capsys, "--fix", "bad.py")
    assert (project / "bad.py").read_bytes() == source
    assert code == 1 and "bad.py: not fixed: encoded in iso-8859-1" in err


def test_a_file_with_a_byte_order_mark_is_fixed_and_keeps_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = b"\xef\xbb\xbfdef f(x=[]):\n    x.append(1)\n    return x\n"
    (project / "bad.py").write_bytes(source)
    code, _, _ = run(capsys, "--fix", "bad.py")
    assert code == 0
    assert (project / "bad.py").read_bytes() == (
        b"\xef\xbb\xbfdef f(x=None):\n    if x is None:\n        x = []\n"
        b"    x.append(1)\n    return x\n"
    )


def test_a_file_declared_ascii_is_fixed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ASCII is UTF-8: its columns are right.
    (project / "bad.py").write_text("# -*- coding: ascii -*-\n" + BAD)
    code, _, err = run(capsys, "--fix", "bad.py")
    assert code == 0 and "not fixed" not in err
    assert "    await work()\n" in (project / "bad.py").read_text()


def test_a_file_changed_between_check_and_fix_is_fixed_as_it_is_now(project: Path) -> None:
    from loopwise.lint._check_command import _fix_files

    result = check(["bad.py"], fixes=True)
    # An editor saved meanwhile: the edit computed for the old text (`await` at column 4 of
    # line 7) would make `await print()`, which parses.
    (project / "bad.py").write_text(BAD.replace("    work()", "    print(); work()"))
    _fix_files(argparse.Namespace(unsafe_fixes=False, diff=False), result)
    fixed = (project / "bad.py").read_text()
    assert fixed == BAD.replace("    work()", "    print(); await work()")


def test_diff_of_a_file_without_a_final_line_break_applies(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without the marker, `git apply` / `patch` refuse the hunk (the last line differs).
    (project / "bad.py").write_text(BAD.rstrip("\n"))
    code, out, _ = run(capsys, "--diff", "bad.py")
    assert code == 1
    marker = "\\ No newline at end of file\n"
    assert out.endswith(f"-    work()\n{marker}+    await work()\n{marker}")


def test_add_noqa_never_edits_a_string_that_looks_like_a_noqa(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = BAD.replace("    work()\n", '    x = "see # noqa: E501"; work()  # type: ignore\n')
    (project / "bad.py").write_text(source)
    assert run(capsys, "--add-noqa", "bad.py")[0] == 0
    assert (project / "bad.py").read_text() == source.replace(
        "# type: ignore\n", "# type: ignore  # noqa: LW001\n"
    )
    assert run(capsys, "bad.py")[:2] == (0, "")
