"""`loopwise check .` on this repository is clean, as CI runs it (.ci/run).

The deliberate bad examples and the rule fixtures are excluded by the project's
``[tool.loopwise]`` configuration; named on the command line, the examples are still checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.lint import check

ROOT = Path(__file__).resolve().parents[1]


def test_the_whole_tree_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = check([Path(".")])
    found = [f"{f.path}:{f.line}: {f.code} {f.message}" for f in result.findings]
    assert found == []
    checked = {source.display for source in result.files}
    assert "examples/pitfalls/good_unawaited.py" in checked
    assert "examples/pitfalls/bad_unawaited.py" not in checked


def test_a_bad_example_named_explicitly_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = check([Path("examples/pitfalls/bad_unawaited.py")])
    assert {f.code for f in result.findings} == {"LW001"}
