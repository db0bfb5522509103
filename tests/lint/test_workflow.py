"""`loopwise check` in the daily workflow: config lookup, CLI parity, fixes, baseline, formats."""

from __future__ import annotations

import ast
import io
import json
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from loopwise.cli import main
from loopwise.lint import RULES, check_source

BAD = "import asyncio\n\nasync def work():\n    pass\n\nasync def main():\n    work()\n"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pitfalls"
FIXED_CODES = {rule.code for rule in RULES if rule.fix_safety}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    (tmp_path / "bad.py").write_text(BAD)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["check", "--no-cache", *args])
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# -- configuration -----------------------------------------------------------------------------


def test_a_pyproject_that_does_not_parse_is_one_line_and_exit_two(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[tool.loopwise]\nignore = ["LW001"\n')
    code, out, err = run(capsys, ".")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "invalid TOML" in err


def test_a_config_file_without_the_table_is_an_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "other.toml").write_text("[tool.black]\n")
    (project / "other").mkdir()
    (project / "other" / "pyproject.toml").write_text("[tool.black]\n")
    code, _, err = run(capsys, "--config", "other/pyproject.toml", ".")
    assert code == 2 and "no [tool.loopwise] table" in err


def test_a_wrong_type_names_paths_for_a_path_key(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "pyproject.toml").write_text('[tool.loopwise]\nexclude = "build"\n')
    code, _, err = run(capsys, ".")
    assert code == 2 and err.count("\n") == 1
    assert "tests/fixtures" in err and "LW001" not in err


def test_each_file_follows_the_nearest_config(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = project / "sub"
    sub.mkdir()
    (sub / "bad.py").write_text(BAD)
    (sub / "loopwise.toml").write_text('ignore = ["LW001"]\n')
    code, out, _ = run(capsys, ".")
    assert (code, out) == (1, "bad.py:7:5: LW001 coroutine `work()` is never awaited\n")
    assert run(capsys, "--isolated", ".")[1].count("LW001") == 2
    (project / "loopwise.toml").write_text('ignore = ["LW001"]\n')
    (sub / "loopwise.toml").write_text("select = []\n")
    (sub / "loopwise.toml").write_text('select = ["LW001"]\n')
    code, out, _ = run(capsys, ".")
    assert out == "sub/bad.py:7:5: LW001 coroutine `work()` is never awaited\n"
    assert run(capsys, "--config", "loopwise.toml", ".")[0] == 0


def test_nested_config_excludes_apply_below_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = project / "sub"
    (sub / "generated").mkdir(parents=True)
    (sub / "generated" / "bad.py").write_text(BAD)
    (sub / "pyproject.toml").write_text('[tool.loopwise]\nexclude = ["generated"]\n')
    _, out, _ = run(capsys, "--show-files", ".")
    assert out.split() == ["bad.py"]


def test_select_flags(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--select", "LW002", "--select", "LW001", ".")[0] == 1
    assert run(capsys, "--select", "LW002", "--extend-select", "LW001", ".")[0] == 1
    assert run(capsys, "--extend-ignore", "LW001", ".")[0] == 0
    code, _, err = run(capsys, "--select", "", ".")
    assert code == 2 and "at least one code" in err


def test_no_python_files_is_an_error_not_all_clear(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "empty").mkdir()
    code, _, err = run(capsys, "empty")
    assert code == 2 and "no Python files found under empty" in err
    (project / "pyproject.toml").write_text('[tool.loopwise]\nexclude = ["bad.py"]\n')
    code, _, err = run(capsys, "--force-exclude", "bad.py")
    assert code == 0 and "Nothing to check" in err


def test_unknown_noqa_code_is_reported(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD.replace("    work()\n", "    work()  # noqa: LW999\n"))
    _, out, _ = run(capsys, ".")
    assert "LW101" in out and "LW001" in out


def test_show_settings_names_the_governing_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loopwise.toml").write_text('ignore = ["LW009"]\n')
    code, out, _ = run(capsys, "--show-settings", "bad.py")
    assert code == 0
    assert "loopwise.toml" in out and "LW009" not in out.split("selected:")[1].split("\n")[0]


# -- rules by name, docs ---------------------------------------------------------------------


def test_rule_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", "coroutine-never-awaited"]) == 0
    assert capsys.readouterr().out.startswith("# LW001: coroutine-never-awaited")


def test_write_docs_refuses_a_missing_parent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rule", "--write-docs", str(tmp_path / "no" / "such")]) == 2
    assert not (tmp_path / "no").exists()
    assert main(["rule", "--write-docs", str(tmp_path / "rules")]) == 0


# -- output ---------------------------------------------------------------------------------


def test_statistics_and_output_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "two.py").write_text(BAD)
    code, out, _ = run(capsys, "--statistics", ".")
    assert code == 1
    assert out.split() == ["2", "LW001", "[*]", "coroutine-never-awaited"]
    code, out, _ = run(capsys, "-o", "report.json", "--output-format", "json", ".")
    assert out == "" and len(json.loads((project / "report.json").read_text())) == 2


@pytest.mark.parametrize("fmt", ["json-lines", "gitlab", "junit", "full", "sarif", "github"])
def test_every_format_names_the_finding(
    fmt: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--output-format", fmt, ".")
    assert code == 1 and "LW001" in out
    if fmt == "json-lines":
        assert json.loads(out.splitlines()[0])["code"] == "LW001"
    if fmt == "gitlab":
        issue = json.loads(out)[0]
        assert issue["location"] == {"path": "bad.py", "lines": {"begin": 7, "end": 7}}
    if fmt == "junit":
        root = ElementTree.fromstring(out)
        assert root.find("testsuite/testcase/failure") is not None
    if fmt == "full":
        assert "7 |     work()\n" in out and "^^^^^^ coroutine-never-awaited" in out
        assert "\x1b[" not in out


def test_color_always_and_no_color(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "\x1b[" in run(capsys, "--output-format", "full", "--color", "always", ".")[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" in run(capsys, "--output-format", "full", "--color", "always", ".")[1]
    assert "\x1b[" not in run(capsys, "--output-format", "full", ".")[1]


def test_stdin_with_a_filename(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "loopwise.toml").write_text('[per-file-ignores]\n"quiet.py" = ["LW001"]\n')
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD.encode())))
    code, out, _ = run(capsys, "-", "--stdin-filename", "app.py")
    assert (code, out) == (1, "app.py:7:5: LW001 coroutine `work()` is never awaited\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD.encode())))
    assert run(capsys, "-", "--stdin-filename", "quiet.py")[0] == 0


# -- fixes ----------------------------------------------------------------------------------


def test_diff_changes_nothing_and_fix_is_idempotent(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--diff", ".")
    assert code == 1
    assert "-    work()\n+    await work()\n" in out
    assert (project / "bad.py").read_text() == BAD
    code, _, err = run(capsys, "--fix", "--show-fixes", ".")
    assert code == 0 and "bad.py: 1 x LW001" in err
    assert (project / "bad.py").read_text() == BAD.replace("    work()", "    await work()")
    assert run(capsys, "--diff", ".")[:2] == (0, "")


def test_unsafe_fixes_need_the_flag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = (
        "import asyncio\n\nasync def main():\n    pass\n\n"
        "asyncio.get_event_loop().run_until_complete(main())  # start\n"
    )
    (project / "bad.py").write_text(source)
    assert run(capsys, "--fix", ".")[0] == 1
    assert (project / "bad.py").read_text() == source
    assert run(capsys, "--fix", "--unsafe-fixes", ".")[0] == 0
    assert (project / "bad.py").read_text().endswith("\nasyncio.run(main())  # start\n")


def test_mutable_default_fix_keeps_comments_and_docstring() -> None:
    source = (
        "async def collect(items=[]):  # shared!\n"
        '    """Doc."""\n'
        "    # gather\n"
        "    items.append(1)\n"
        "    return items\n"
    )
    fixed = _fix(source, unsafe=False)
    assert fixed == (
        "async def collect(items=None):  # shared!\n"
        '    """Doc."""\n'
        "    # gather\n"
        "    if items is None:\n"
        "        items = []\n"
        "    items.append(1)\n"
        "    return items\n"
    )


def test_fixes_never_overlap_and_reach_a_fixed_point() -> None:
    source = (
        "import asyncio\n\nasync def work():\n    pass\n\n"
        "async def main():\n"
        "    asyncio.create_task(work())\n"
        "    asyncio.create_task(work())\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed.count("_background_tasks: set[object] = set()") == 1
    assert fixed.count("_background_tasks.add(_task)") == 2
    assert _fix(fixed, unsafe=True) == fixed


def _fix(source: str, *, unsafe: bool) -> str:
    from loopwise.lint._api import CODES, Selector
    from loopwise.lint._checker import parse_module, summarize_module
    from loopwise.lint._config import ConfigFinder
    from loopwise.lint._fixing import fix_source
    from loopwise.lint._project import Project

    parsed = parse_module("m.py", source.encode(), "m", False)
    project = Project([summarize_module(parsed)])
    rules = [rule() for rule in RULES]
    selector = Selector(ConfigFinder(CODES, isolated=True), select=sorted(FIXED_CODES))
    outcome = fix_source(
        "m.py",
        "m.py",
        source.encode(),
        project=project,
        rules=rules,
        selector=selector,
        unsafe=unsafe,
    )
    return outcome.after.decode()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("bad_*.py")), ids=lambda p: p.name)
def test_fixing_every_bad_example(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / path.name
    shutil.copy(path, target)
    codes = ",".join(sorted(FIXED_CODES))
    run(capsys, "--isolated", "--select", codes, "--fix", "--unsafe-fixes", path.name)
    fixed = target.read_text()
    ast.parse(fixed)
    changed = fixed != path.read_text()
    run(capsys, "--isolated", "--select", codes, "--fix", "--unsafe-fixes", path.name)
    assert target.read_text() == fixed, "a second --fix changed the file"
    remaining = {f.code for f in check_source(fixed, select=sorted(FIXED_CODES))}
    before = {f.code for f in check_source(path.read_text(), select=sorted(FIXED_CODES))}
    if changed:
        assert not (remaining & before), f"still reported after the fix: {remaining}"
    # every line of the original that the fixes did not touch is still there, comments too
    kept = [line for line in path.read_text().splitlines() if line.strip().startswith("#")]
    assert all(line in fixed.splitlines() for line in kept)


def test_unused_noqa_fix_removes_only_our_code() -> None:
    source = "async def f():\n    pass  # noqa: E501, LW001  (legacy)\n"
    assert _fix(source, unsafe=False) == "async def f():\n    pass  # noqa: E501  (legacy)\n"


def test_add_noqa_suppresses_every_finding(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--add-noqa", ".")[0] == 0
    assert "    work()  # noqa: LW001\n" in (project / "bad.py").read_text()
    assert run(capsys, ".")[0] == 0


# -- baseline -------------------------------------------------------------------------------


def test_baseline_hides_known_findings_and_survives_edits(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--write-baseline", "baseline.json", ".")[0] == 0
    code, out, err = run(capsys, "--baseline", "baseline.json", ".")
    assert (code, out) == (0, "") and "1 baseline finding hidden" in err
    moved = BAD.replace("import asyncio\n", "import asyncio\nimport os\n\n\n").replace(
        "async def main():\n", "async def main():\n    print(os.sep)\n"
    )
    (project / "bad.py").write_text(moved)
    assert run(capsys, "--baseline", "baseline.json", ".")[:2] == (0, "")
    (project / "bad.py").write_text(moved + "    work()\n")
    code, out, _ = run(capsys, "--baseline", "baseline.json", ".")
    assert code == 1 and out.count("LW001") == 1
    (project / "bad.py").write_text(moved.replace("    work()", "    await work()"))
    (project / "loopwise.toml").write_text('baseline = "baseline.json"\n')
    code, _, err = run(capsys, "--show-stale", ".")
    assert code == 0 and "stale: bad.py: LW001 in main: work()" in err


def test_fixes_keep_crlf_line_breaks() -> None:
    source = "async def collect(items=[]):\r\n    items.append(1)\r\n    return items\r\n"
    fixed = _fix(source, unsafe=False)
    assert "if items is None:\r\n        items = []\r\n" in fixed
    assert "\n" not in fixed.replace("\r\n", "")


def test_reraise_fix_at_the_end_of_a_file_keeps_the_comment_in_place() -> None:
    source = (
        "import asyncio\n\nasync def main():\n    try:\n        await asyncio.sleep(1)\n"
        "    except asyncio.CancelledError:\n        print('bye')  # log it"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed.endswith("        print('bye')  # log it\n        raise")


def test_keep_reference_fix_leaves_a_name_of_the_code_alone() -> None:
    source = (
        "import asyncio\n\nasync def work():\n    pass\n\n"
        "async def main(_task):\n    asyncio.create_task(work())\n    return _task\n"
    )
    assert _fix(source, unsafe=True) == source


def test_unsafe_fixes_alone_changes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--unsafe-fixes", ".")[0] == 1
    assert (project / "bad.py").read_text() == BAD


def test_rule_docs_are_rendered_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["rule", "LW001"]) == 0
    out = capsys.readouterr().out
    assert "coroutine-never-awaited" in out
    assert "# LW001" not in out and "```" not in out


def test_docs_show_every_check_option_with_an_example() -> None:
    from loopwise.cli import build_parser

    parser = build_parser(["check"])
    check = next(
        action.choices["check"]
        for action in parser._actions
        if getattr(action, "choices", None) and "check" in action.choices  # type: ignore[operator]
    )
    text = (Path(__file__).resolve().parents[2] / "docs" / "check.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `-")]
    for action in check._actions:
        for flag in action.option_strings:
            if flag in ("-h", "--help"):
                continue
            row = next((r for r in rows if f"`{flag}" in r or f", {flag}" in r), None)
            assert row is not None, f"docs/check.md does not document {flag}"
            assert "loopwise check" in row, f"docs/check.md has no example for {flag}"


def test_broad_handler_fix_lets_only_the_cancellation_through() -> None:
    source = (
        "import asyncio\n\nasync def main():\n    try:\n        await asyncio.sleep(1)\n"
        "    except BaseException:  # keep going\n        print('failed')\n    return 1\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed == source.replace(
        "    except BaseException:",
        "    except asyncio.CancelledError:\n        raise\n    except BaseException:",
    )


def test_a_lone_pass_becomes_raise() -> None:
    source = (
        "import asyncio\n\nasync def main():\n    try:\n        await asyncio.sleep(1)\n"
        "    except asyncio.CancelledError:\n        pass\n    return 1\n"
    )
    assert _fix(source, unsafe=True) == source.replace("        pass\n", "        raise\n")


def test_a_configured_baseline_can_be_written_the_first_time(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loopwise.toml").write_text('baseline = "baseline.json"\n')
    code, _, err = run(capsys, ".")
    assert code == 2 and "baseline not found" in err
    code, _, err = run(capsys, "--write-baseline", "baseline.json", ".")
    assert code == 0 and "Recorded 1 finding in" in err
    assert run(capsys, ".")[:2] == (0, "")


def test_full_format_caret_under_the_code_after_tabs_and_accents(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.py").write_text(BAD.replace("    work()\n", "\tx = 'é'; work()\n"))
    _, out, _ = run(capsys, "--output-format", "full", ".")
    lines = out.splitlines()
    source = next(line for line in lines if line.startswith("7 |"))
    caret = next(line for line in lines if "^" in line)
    assert source[caret.index("^") :].startswith("work()")
    assert caret.count("^") == len("work()")


def test_a_tool_table_in_loopwise_toml_says_where_keys_go(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "loopwise.toml").write_text('[tool.loopwise]\nselect = ["LW001"]\n')
    code, _, err = run(capsys, ".")
    assert code == 2 and "keys go at the top level" in err


def test_statistics_as_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--statistics", "--output-format", "json", ".")
    assert code == 1
    assert json.loads(out) == [
        {"code": "LW001", "name": "coroutine-never-awaited", "count": 1, "fixable": True}
    ]
