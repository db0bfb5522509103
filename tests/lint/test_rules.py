"""Every rule against its fixture: a missing finding and an extra finding both fail.

A fixture line ending in ``# expect: LW001`` (or ``# expect: LW001, LW005``) must produce exactly
those codes on that line; every other line must produce none. Fixture packages named
``lwNNN_pkg/`` belong to rule LWNNN and are checked together with all fixtures, so imports
across modules resolve.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from loopwise.lint import RULES, Finding
from loopwise.lint._engine import check_files
from loopwise.lint._files import discover

FIXTURES = Path(__file__).parent / "fixtures"
_EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>LW\d{3}(?:\s*,\s*LW\d{3})*)")


@pytest.fixture(scope="module")
def fixture_findings() -> dict[Path, list[Finding]]:
    files = discover([str(FIXTURES)], excludes=[], respect_gitignore=False)
    found: dict[Path, list[Finding]] = defaultdict(list)
    rules = [rule() for rule in RULES]
    by_display = {file.display: Path(file.path) for file in files}
    for finding in check_files(files, rules):
        found[by_display[finding.path]].append(finding)
    return found


def _fixture_files(code: str) -> list[Path]:
    files = [FIXTURES / f"{code}.py"]
    package = FIXTURES / f"{code.lower()}_pkg"
    if package.is_dir():
        files += sorted(package.rglob("*.py"))
    return files


def _expected(path: Path) -> set[tuple[int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            for code in match.group("codes").split(","):
                expected.add((number, code.strip()))
    return expected


@pytest.mark.parametrize("code", [rule.code for rule in RULES])
def test_rule_fixture(code: str, fixture_findings: dict[Path, list[Finding]]) -> None:
    for path in _fixture_files(code):
        actual = {(f.line, f.code) for f in fixture_findings.get(path, [])}
        expected = _expected(path)
        missing = sorted(expected - actual)
        extra = sorted(actual - expected)
        details = {
            (f.line, f.code): f.message
            for f in fixture_findings.get(path, [])
            if (f.line, f.code) in extra
        }
        assert not missing, f"{path.name}: expected findings not reported: {missing}"
        assert not extra, f"{path.name}: unexpected findings: {details}"


@pytest.mark.parametrize("code", [rule.code for rule in RULES])
def test_fixture_has_findings_and_ok_cases(code: str) -> None:
    text = (FIXTURES / f"{code}.py").read_text()
    assert f"# expect: {code}" in text, f"{code}.py has no `# expect: {code}` line"
    assert "# ok" in text, f"{code}.py has no `# ok` case"
