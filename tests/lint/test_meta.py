"""Registry, documentation pages, fixtures and examples stay in step; our own code is clean."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from loopwise.cli import main
from loopwise.lint import RULES, check, check_source
from loopwise.lint._docs import precision_block, rule_page, rules_index

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs" / "rules"
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = ROOT / "examples" / "pitfalls"
SECTIONS = [
    "## What it does",
    "## Why is this bad?",
    "## Example",
    "## Use instead",
    "## Fix safety",
]
CODES = {rule.code for rule in RULES}


def test_codes_and_names_are_unique_and_well_formed() -> None:
    assert len(CODES) == len(RULES)
    assert len({rule.name for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert re.fullmatch(r"LW\d{3}", rule.code)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name)
        module = rule.__module__.rsplit(".", 1)[-1]
        assert module.startswith(rule.code.lower() + "_"), f"{rule.code} lives in {module}"


def test_the_eleven_pitfalls_of_the_issue_are_all_registered() -> None:
    assert {f"LW{n:03d}" for n in range(1, 12)} <= CODES


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_docstring_has_ruff_sections_in_order(rule: type) -> None:
    doc = rule.documentation()  # type: ignore[attr-defined]
    positions = [doc.find(section) for section in SECTIONS]
    assert all(p >= 0 for p in positions), f"missing sections in {rule.code}"  # type: ignore[attr-defined]
    assert positions == sorted(positions)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_docs_page_is_generated_from_the_docstring(rule: type) -> None:
    page = DOCS / f"{rule.code}.md"  # type: ignore[attr-defined]
    assert page.is_file(), "run `loopwise rule --write-docs docs/rules`"
    assert page.read_text() == rule_page(rule), "stale: run `loopwise rule --write-docs docs/rules`"


def test_rules_index_and_no_stray_pages_or_fixtures() -> None:
    index = (DOCS / "README.md").read_text()
    assert index == rules_index(RULES, precision_block(index))
    pages = {p.stem for p in DOCS.glob("LW*.md")}
    fixtures = {p.stem for p in FIXTURES.glob("LW*.py")}
    assert pages == CODES
    assert fixtures == CODES


def _declared_code(path: Path) -> str:
    match = re.match(r'"""(LW\d{3}):', path.read_text())
    assert match, f"{path.name} must start with a docstring naming its code"
    return match.group(1)


BAD_EXAMPLES = sorted(EXAMPLES.glob("bad_*.py"))
GOOD_EXAMPLES = sorted(EXAMPLES.glob("good_*.py"))


def test_every_rule_has_a_bad_and_a_good_example() -> None:
    declared = {_declared_code(path) for path in BAD_EXAMPLES}
    assert declared == CODES
    for bad in BAD_EXAMPLES:
        assert (EXAMPLES / bad.name.replace("bad_", "good_", 1)).is_file()


@pytest.mark.parametrize("path", BAD_EXAMPLES, ids=lambda p: p.name)
def test_bad_example_is_flagged_with_its_code_only(path: Path) -> None:
    findings = check_source(path.read_text(), path=path.name, select=sorted(CODES))
    assert findings, f"{path.name} is not flagged"
    assert {f.code for f in findings} == {_declared_code(path)}


@pytest.mark.parametrize("path", GOOD_EXAMPLES, ids=lambda p: p.name)
def test_good_example_is_clean(path: Path) -> None:
    assert check_source(path.read_text(), path=path.name, select=sorted(CODES)) == []


@pytest.mark.parametrize("path", BAD_EXAMPLES + GOOD_EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "ignore", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLES,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_our_own_source_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = check([ROOT / "src"], select=sorted(CODES))  # opt-in rules too
    assert result.findings == []
    assert len(result.files) > 20


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_loopwise_rule_prints_the_page(rule: type, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rule", rule.code]) == 0  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert out.startswith(f"# {rule.code}: {rule.name}")  # type: ignore[attr-defined]
    assert "### Why is this bad?" in out


def test_every_rule_visit_is_typed_for_its_node_types() -> None:
    """``Rule[NodeT]``: a rule is handed only the classes in ``node_types``, and its ``visit``
    is annotated with exactly those (the type checker then needs no ``assert isinstance``)."""
    import typing

    for rule in RULES:
        wanted = rule.node_types or rule.scopes
        method = rule.visit if rule.node_types else rule.visit_scope
        if not wanted:
            continue
        hints = typing.get_type_hints(method)
        annotated = typing.get_args(hints["node"]) or (hints["node"],)
        assert set(annotated) == set(wanted), rule.code


def test_a_rule_written_for_the_old_nodes_attribute_is_refused_with_what_to_do() -> None:
    import ast

    from loopwise.lint import Rule

    with pytest.raises(TypeError, match="node_types"):

        class Old(Rule[ast.Call]):
            code = "LW999"
            name = "old"
            summary = "sets the attribute the checker no longer reads"
            nodes = (ast.Call,)
