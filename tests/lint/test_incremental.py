"""The engine one file at a time: checks against warm summaries, dependents, rule isolation."""

from __future__ import annotations

import ast
from pathlib import Path

from loopwise.lint import RULES
from loopwise.lint._checker import Checker
from loopwise.lint._engine import Cache
from loopwise.lint._files import SourceFile
from loopwise.lint._incremental import (
    Dependents,
    check_text,
    dependents,
    summarize_files,
    summarize_text,
    updated_project,
)
from loopwise.lint._project import ModuleSummary, Project
from loopwise.lint._rule import Rule


def summary(module: str, text: str) -> ModuleSummary:
    found = summarize_text(f"{module}.py", text.encode(), module, False).summary
    assert found is not None
    return found


def codes(module: str, text: str, project: Project, rules: list[Rule] | None = None) -> list[str]:
    summarized = summarize_text(f"{module}.py", text.encode(), module, False)
    checked = check_text(summarized, project, rules or [rule() for rule in RULES])
    return [f.code for f in checked.findings]


CALLER = "from a import fetch\n\nasync def main():\n    fetch()\n"


def test_a_text_is_checked_against_the_summaries_it_is_given() -> None:
    caller = summary("b", CALLER)
    sync = Project([summary("a", "def fetch():\n    return 1\n"), caller])
    coroutine = Project([summary("a", "async def fetch():\n    return 1\n"), caller])
    assert codes("b", CALLER, sync) == []
    assert codes("b", CALLER, coroutine) == ["LW001"]


def test_a_text_that_does_not_parse_has_no_summary_and_one_error() -> None:
    summarized = summarize_text("a.py", b"def f(:\n", "a", False)
    assert summarized.summary is None
    checked = check_text(summarized, Project([]), [rule() for rule in RULES])
    assert [f.code for f in checked.findings] == ["syntax-error"]


def test_the_callers_of_a_changed_module_depend_on_it_through_re_exports() -> None:
    old_a = summary("a", "def fetch():\n    return 1\n")
    new_a = summary("a", "async def fetch():\n    return 1\n")
    reexport = summary("pkg", "from a import fetch\n")
    caller = summary("c", "from pkg import fetch\n\nasync def main():\n    fetch()\n")
    unrelated = summary("d", "def other():\n    return 2\n")
    project = Project([old_a, reexport, caller, unrelated])
    assert dependents(project, {"a": (old_a, new_a)}) == {"a", "pkg", "c"}
    assert dependents(project, {"d": (unrelated, unrelated)}) == {"d"}


def test_a_change_to_what_modules_share_by_name_affects_every_module() -> None:
    old = summary("a", "async def job():\n    pass\n")
    new = summary(
        "a", "import asyncio\n\nasync def job():\n    pass\n\nasyncio.ensure_future(job())\n"
    )
    assert old.detached != new.detached
    other = summary("b", "def f():\n    pass\n")
    assert dependents(Project([old, other]), {"a": (old, new)}) is None


class _Raising(Rule[ast.Call]):
    code = "LW999"
    name = "raising"
    summary = "raises"
    node_types = (ast.Call,)

    def visit(self, node: ast.Call, checker: Checker) -> None:
        raise ValueError("broken rule")


def test_a_rule_that_raises_loses_only_its_own_findings() -> None:
    text = "import asyncio\n\nasync def main():\n    asyncio.sleep(1)\n"
    rules: list[Rule] = [_Raising(), *(rule() for rule in RULES)]
    summarized = summarize_text("m.py", text.encode(), "m", False)
    checked = check_text(summarized, Project([summarized.summary or ModuleSummary("m")]), rules)
    assert [f.code for f in checked.findings] == ["LW001"]
    [failure] = checked.failures
    assert (failure.code, failure.line) == ("LW999", 4)
    assert "broken rule" in failure.error


def test_summarize_files_reuses_the_cache_for_unchanged_files(tmp_path: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("async def fetch():\n    return 1\n")
    broken = tmp_path / "b.py"
    broken.write_text("def f(:\n")
    files = [SourceFile("a.py", str(source)), SourceFile("b.py", str(broken))]
    cache = Cache(tmp_path / "cache")
    first = summarize_files(files, cache=cache)
    assert [(module, s.functions["fetch"].is_async) for _, module, _, s in first[:1]] == [
        ("a", True)
    ]
    assert first[1][3] == ModuleSummary(name="b")
    reloaded = Cache.load(tmp_path / "cache")
    assert set(reloaded.entries) == {str(source), str(broken)}
    seen: list[int] = []
    again = summarize_files(files, cache=reloaded, progress=lambda total: seen.append)
    assert seen == [] and [s for *_, s in again] == [s for *_, s in first]


def test_the_dependency_graph_follows_one_summary_at_a_time() -> None:
    a = summary("a", "def fetch():\n    return 1\n")
    b = summary("b", "def main():\n    return 2\n")
    graph = Dependents([a, b])
    assert graph.affected({"a": (a, a)}) == {"a"}
    calling = summary("b", "from a import fetch\n\ndef main():\n    return fetch()\n")
    graph.replace("b", calling)
    assert graph.affected({"a": (a, a)}) == {"a", "b"}
    graph.replace("b", b)
    assert graph.affected({"a": (a, a)}) == {"a"}
    graph.replace("b", calling)
    graph.replace("a", None)
    assert "a" not in graph.summaries and graph.users.get("a", set()) == set()


def test_an_updated_project_keeps_only_the_facts_the_change_cannot_touch() -> None:
    runner = summary("r", "import asyncio\n\ndef start():\n    asyncio.run(main())\n")
    plain = summary("p", "def helper():\n    return 1\n")
    before = Project([runner, plain])
    assert before.runs_loop("r.start")
    more = summary("p", "def helper():\n    return 1\n\ndef other():\n    pass\n")
    after = updated_project(before, [runner, more], plain, more)
    assert after._loop_runners is before._loop_runners and after.runs_loop("r.start")
    starting = summary("p", "from r import start\n\ndef helper():\n    start()\n")
    changed = updated_project(after, [runner, starting], more, starting)
    assert changed._loop_runners is None
    assert changed.runs_loop("p.helper") and not after.runs_loop("p.helper")
