"""`loopwise check` and `loopwise rule` as a user runs them: output, exit codes, config, input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import NoReturn

import pytest

from loopwise.cli import main
from loopwise.lint import _engine, check_source

BAD = "import asyncio\n\nasync def work():\n    pass\n\nasync def main():\n    work()\n"
GOOD = "import asyncio\n\nasync def main():\n    await asyncio.sleep(0.1)\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD)
    (tmp_path / "good.py").write_text(GOOD)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", "--no-cache", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_finding_line_format_and_exit_one(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, ".")
    assert code == 1
    assert out == "bad.py:7:5: LW001 coroutine `work()` is never awaited\n"
    assert "1 finding" in err


def test_clean_tree_exits_zero(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "good.py")
    assert (code, out) == (0, "")


def test_select_and_ignore(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--select", "LW002", ".")[0] == 0
    assert run(capsys, "--ignore", "LW001", ".")[0] == 0
    assert run(capsys, "--select", "LW00", ".")[0] == 1


def test_unknown_code_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--select", "LW999", ".")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown rule code 'LW999'" in err


def test_bad_flag_is_one_line_exit_two(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "--frobnicate"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--frobnicate" in err


def test_missing_path_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "nowhere")
    assert code == 2
    assert "nowhere: no such file or directory" in err


def test_noqa_all_and_by_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.py").write_text(BAD.replace("    work()\n", "    work()  # noqa\n"))
    assert run(capsys, "bad.py")[0] == 0
    (project / "bad.py").write_text(BAD.replace("    work()\n", "    work()  # noqa: LW002\n"))
    assert run(capsys, "bad.py")[0] == 1
    (project / "bad.py").write_text(
        BAD.replace("    work()\n", "    work()  # noqa: LW002,LW001\n")
    )
    assert run(capsys, "bad.py")[0] == 0


def _blocking_lines(source: str) -> list[int]:
    return [f.line for f in check_source(source, select=["LW005"])]


def test_noqa_inside_a_string_suppresses_nothing() -> None:
    source = (
        "import time\n"
        "async def main():\n"
        '    print("see # noqa: LW005"); time.sleep(1)\n'
        "    print('# noqa'); time.sleep(1)\n"
        '    print("# noqa"); time.sleep(1)  # noqa: LW005\n'
    )
    assert _blocking_lines(source) == [3, 4]


def test_noqa_inside_a_multi_line_string_suppresses_nothing() -> None:
    source = (
        "import time\n"
        "async def main():\n"
        '    time.sleep(len("""\n'
        '    text # noqa: LW005 """))\n'
        '    time.sleep(len("""\n'
        '    text """))  # noqa: LW005\n'
    )
    assert _blocking_lines(source) == [3]


def test_noqa_falls_back_to_the_line_text_when_tokenize_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(readline: object) -> NoReturn:
        raise tokenize.TokenError("EOF in multi-line statement", (1, 0))

    monkeypatch.setattr(tokenize, "tokenize", fail)
    source = 'import time\nasync def main():\n    print("# noqa"); time.sleep(1)\n'
    assert _blocking_lines(source) == []  # no crash; the old, textual reading applies


def test_pyproject_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text('[tool.loopwise]\nignore = ["LW001"]\n')
    assert run(capsys, ".")[0] == 0
    (project / "pyproject.toml").write_text('[tool.loopwise]\nexclude = ["bad.py"]\n')
    code, out, _ = run(capsys, ".")
    assert (code, out) == (0, "")
    (project / "pyproject.toml").write_text(
        '[tool.loopwise]\n[tool.loopwise.per-file-ignores]\n"b*.py" = ["LW001"]\n'
    )
    assert run(capsys, ".")[0] == 0


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[tool.loopwise]\nselct = ["LW001"]\n', "unknown key 'selct'"),
        ('[tool.loopwise]\nselect = ["LW404"]\n', "unknown rule code 'LW404'"),
        ('[tool.loopwise]\nselect = "LW001"\n', "select must be a list of strings"),
        ("[tool.loopwise\n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_line_exit_two(
    project: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    (project / "pyproject.toml").write_text(toml)
    code, out, err = run(capsys, "--config", "pyproject.toml", ".")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert message in err


def test_explicit_exclude_flag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--exclude", "bad.py", ".")[0] == 0
    # A file named explicitly is still checked, unless --force-exclude (as in pre-commit).
    assert run(capsys, "--exclude", "bad.py", "bad.py")[0] == 1
    assert run(capsys, "--exclude", "bad.py", "--force-exclude", "bad.py")[0] == 0


def test_gitignore_is_honoured(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".git").mkdir()
    (project / ".gitignore").write_text("# generated\nbad.py\n")
    assert run(capsys, ".")[0] == 0
    assert run(capsys, "--no-respect-gitignore", ".")[0] == 1
    (project / ".gitignore").write_text("*.py\n!bad.py\n")
    assert run(capsys, ".")[0] == 1


def test_default_excludes_skip_virtualenvs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.py").unlink()
    venv = project / ".venv" / "lib"
    venv.mkdir(parents=True)
    (venv / "bad.py").write_text(BAD)
    assert run(capsys, ".")[0] == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"def broken(:\n", "broken.py:1:12: syntax error: invalid syntax"),
        (b"x = '\xff\xfe'\n", "broken.py:1:"),
        (b"x = 1\x00\n", "broken.py:1:1: syntax error:"),
    ],
)
def test_unparsable_file_is_one_line_others_still_checked(
    project: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    (project / "broken.py").write_bytes(content)
    code, out, err = run(capsys, ".")
    assert code == 1
    lines = out.splitlines()
    assert any(line.startswith(expected) for line in lines), out
    assert any("LW001" in line for line in lines)
    assert "Traceback" not in out + err


def test_huge_file_is_reported_not_checked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "huge.py").write_bytes(b"x = 1\n" * (9 * 1024 * 1024 // 6))
    code, out, _ = run(capsys, "huge.py")
    assert code == 1
    assert out.startswith("huge.py:1:1: file is 9.0 MB, over the 8 MB limit")


def test_json_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--format", "json", ".")
    assert code == 1
    [finding] = json.loads(out)
    assert finding == {
        "path": "bad.py",
        "line": 7,
        "column": 5,
        "end_line": 7,
        "end_column": 11,
        "code": "LW001",
        "message": "coroutine `work()` is never awaited",
    }


def test_sarif_format_has_the_required_fields(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "--format", "sarif", ".")
    sarif = json.loads(out)
    # The properties SARIF 2.1.0's schema marks as required, level by level.
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    [run_] = sarif["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "loopwise"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert "LW001" in rule_ids
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
    [result] = run_["results"]
    assert result["message"]["text"] == "coroutine `work()` is never awaited"
    assert rule_ids[result["ruleIndex"]] == result["ruleId"] == "LW001"
    assert result["level"] in {"none", "note", "warning", "error"}
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 7, "startColumn": 5, "endLine": 7, "endColumn": 11}
    uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "bad.py"


def test_github_format(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "--format", "github", ".")
    assert out == (
        "::warning file=bad.py,line=7,col=5,endLine=7,endColumn=11,title=LW001"
        "::LW001 coroutine `work()` is never awaited\n"
    )


def test_cache_rechecks_only_what_changed(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "."]) == 1
    assert (project / ".loopwise_cache").is_dir()
    assert main(["check", "."]) == 1
    first, second = capsys.readouterr().out.splitlines()
    assert first == second
    (project / "bad.py").write_text(GOOD)
    assert main(["check", "."]) == 0


def test_cache_sees_a_change_in_another_module(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "lib.py").write_text("def work():\n    pass\n")
    (project / "app.py").write_text("from lib import work\n\nasync def main():\n    work()\n")
    assert main(["check", "app.py", "lib.py"]) == 0
    (project / "lib.py").write_text("async def work():\n    pass\n")
    assert main(["check", "app.py", "lib.py"]) == 1
    assert "app.py:4:5: LW001" in capsys.readouterr().out


def test_parallel_run_matches_serial(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small thresholds: a few small files take the parallel path (no 80 files of 1,500 lines).
    monkeypatch.setattr(_engine, "_PARALLEL_MIN_FILES", 4)
    monkeypatch.setattr(_engine, "_PARALLEL_MIN_BYTES", 1)
    pools: list[int] = []
    real_pool = _engine._Pool

    def counted_pool(workers: int, rules: object) -> object:
        pools.append(workers)
        return real_pool(workers, rules)  # type: ignore[arg-type]

    monkeypatch.setattr(_engine, "_Pool", counted_pool)
    package = project / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "core.py").write_text("async def work():\n    pass\n")
    for index in range(8):
        body = f"from pkg.core import work\n\nasync def f{index}():\n    work()\n"
        (package / f"m{index}.py").write_text(body)
    serial = run(capsys, "--jobs", "1", ".")
    assert pools == []
    parallel = run(capsys, "--jobs", "2", ".")
    assert pools == [2]
    assert serial[0] == parallel[0] == 1
    assert serial[1] == parallel[1]
    assert serial[1].count("LW001") == 9


def test_rule_prints_documentation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", "lw001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# LW001: coroutine-never-awaited")
    assert "### Why is this bad?" in out


def test_rule_list_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("LW001  coroutine-never-awaited")
    assert main(["rule", "LW999"]) == 2
    assert "unknown rule 'LW999'" in capsys.readouterr().err


def test_console_script_runs_without_traceback(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopwise.cli", "check", "--no-cache", "."],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("bad.py:7:5: LW001")
    assert "Traceback" not in result.stderr
