"""The ecosystem snapshot and its review ledger are well formed, and the docs show their figures.

The ecosystem check itself (``python benchmarks/ecosystem.py``) downloads real projects and is
run by hand; these tests read only what it committed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from loopwise.lint import RULES
from loopwise.lint._docs import precision_block

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def ecosystem() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecosystem", ROOT / "benchmarks" / "ecosystem.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ecosystem"] = module
    spec.loader.exec_module(module)
    return module


def test_snapshot_pins_at_least_fifteen_projects_with_their_hashes(ecosystem: ModuleType) -> None:
    snapshot = ecosystem.read_snapshot()
    assert len(snapshot["projects"]) >= 15
    assert set(snapshot["projects"]) == {name for name, _ in ecosystem.PROJECTS}
    for name, version in ecosystem.PROJECTS:
        meta = snapshot["projects"][name]
        assert meta["version"] == version
        assert len(meta["sha256"]) == 64
    codes = {rule.code for rule in RULES}
    assert {finding["code"] for finding in snapshot["findings"]} <= codes


def test_every_ledger_entry_is_labelled_with_a_reason(ecosystem: ModuleType) -> None:
    entries = ecosystem.read_ledger(ecosystem.LEDGER)  # raises on a bad label or no reason
    assert entries
    keys = [ecosystem.key(entry) for entry in entries]
    assert len(keys) == len(set(keys)), "an entry is labelled twice"
    for entry in entries:
        assert set(entry) == {"project", "path", "line", "code", "label", "reason"}
        assert "\n" not in entry["reason"]


def test_every_rule_that_fires_has_a_complete_sample(ecosystem: ModuleType) -> None:
    snapshot = ecosystem.read_snapshot()
    rules = ecosystem.precision(snapshot["findings"], ecosystem.read_ledger(ecosystem.LEDGER))
    short = [rule.code for rule in rules if not rule.sample_complete]
    assert not short, (
        f"label more findings of {short}: python benchmarks/ecosystem.py --unlabelled 5"
    )


def test_ledger_is_read_against_the_snapshot_not_against_stale_lines(
    ecosystem: ModuleType, tmp_path: Path
) -> None:
    finding = {"project": "p", "path": "a.py", "line": 3, "column": 1, "code": "LW005"}
    ledger = tmp_path / "review.jsonl"
    rows = [
        {**{k: finding[k] for k in ("project", "path", "line", "code")}, "label": "true"},
        {"project": "p", "path": "a.py", "line": 9, "code": "LW005", "label": "false"},
        {"project": "p", "path": "b.py", "line": 1, "code": "LW005", "label": "noise"},
    ]
    ledger.write_text("".join(json.dumps({**row, "reason": "r"}) + "\n" for row in rows))
    second = {**finding, "path": "b.py", "line": 1}
    (rule,) = ecosystem.precision([finding, second], ecosystem.read_ledger(ledger))
    assert rule.labels == Counter({"true": 1, "noise": 1})
    assert rule.gone == 1  # the finding on line 9 is no longer reported: it does not count
    assert rule.precision == 0.5


def test_a_label_outside_the_three_is_refused(ecosystem: ModuleType, tmp_path: Path) -> None:
    ledger = tmp_path / "review.jsonl"
    entry = {"project": "p", "path": "a.py", "line": 1, "code": "LW001", "label": "maybe"}
    ledger.write_text(json.dumps({**entry, "reason": "r"}) + "\n")
    with pytest.raises(SystemExit, match="label must be one of"):
        ecosystem.read_ledger(ledger)


@pytest.mark.parametrize("document", ["README.md", "docs/rules/README.md"])
def test_docs_show_the_precision_the_ledger_gives(ecosystem: ModuleType, document: str) -> None:
    shown = precision_block((ROOT / document).read_text(encoding="utf-8"))
    assert shown, f"{document} has no precision table"
    expected = ecosystem.snapshot_markdown(ROOT / document)
    assert shown == expected, "run python benchmarks/ecosystem.py --write-docs"
