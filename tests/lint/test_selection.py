"""Which findings a check keeps: rules quiet in test code, and rules outside the default set."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise import ConfigError
from loopwise.lint import RULES, check
from loopwise.lint._config import resolve_codes

BLOCKING = "import time\n\n\nasync def handler():\n    time.sleep(1)\n"
UNAWAITED = "async def save():\n    pass\n\n\nasync def main():\n    save()\n"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for relative in ("app/service.py", "tests/test_service.py", "app/conftest.py", "app/x_test.py"):
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(BLOCKING + "\n\n" + UNAWAITED.replace("main", "other"))
    return tmp_path


def _found(result_paths: list[tuple[str, str]], code: str) -> set[str]:
    return {path for path, found in result_paths if found == code}


def _check(**options: object) -> list[tuple[str, str]]:
    result = check(["."], **options)  # type: ignore[arg-type]
    return [(finding.path, finding.code) for finding in result.findings]


def test_a_rule_quiet_in_tests_reports_only_outside_test_paths(tree: Path) -> None:
    found = _check()
    assert _found(found, "LW005") == {"app/service.py"}
    # LW001 (a coroutine never awaited) matters in a test too: a test that checks nothing.
    assert _found(found, "LW001") == {
        "app/service.py",
        "tests/test_service.py",
        "app/conftest.py",
        "app/x_test.py",
    }


def test_empty_test_paths_checks_test_code_like_any_other(tree: Path) -> None:
    (tree / "pyproject.toml").write_text("[tool.loopwise]\ntest-paths = []\n")
    assert len(_found(_check(), "LW005")) == 4


def test_test_paths_can_name_other_places(tree: Path) -> None:
    (tree / "pyproject.toml").write_text('[tool.loopwise]\ntest-paths = ["app/service.py"]\n')
    assert _found(_check(), "LW005") == {
        "tests/test_service.py",
        "app/conftest.py",
        "app/x_test.py",
    }


def test_bad_test_paths_is_a_config_error(tree: Path) -> None:
    (tree / "pyproject.toml").write_text('[tool.loopwise]\ntest-paths = "tests"\n')
    with pytest.raises(ConfigError, match="test-paths must be a list of strings"):
        check(["."])


def test_rules_quiet_in_tests_are_documented_as_such() -> None:
    for rule in RULES:
        if not rule.in_tests:
            assert "test" in rule.documentation().lower(), rule.code


def test_a_prefix_leaves_out_opt_in_rules_and_the_full_code_selects_them() -> None:
    codes = ["LW001", "LW002", "LW003"]
    assert resolve_codes(["LW"], codes, "select", opt_in={"LW003"}) == {"LW001", "LW002"}
    assert resolve_codes(["LW00"], codes, "select", opt_in={"LW003"}) == {"LW001", "LW002"}
    assert resolve_codes(["LW003"], codes, "select", opt_in={"LW003"}) == {"LW003"}
    assert resolve_codes(["ALL", "LW003"], codes, "x", opt_in={"LW003"}) == set(codes)
    with pytest.raises(ConfigError, match="unknown rule code 'LW9'"):
        resolve_codes(["LW9"], codes, "select", opt_in={"LW003"})
