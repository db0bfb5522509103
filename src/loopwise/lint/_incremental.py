"""The checker one file at a time, against summaries kept in memory (the editor server's engine).

``summarize_text`` reduces one file's current text to its summary, ``check_text`` checks it
against a :class:`~loopwise.lint._project.Project` built from summaries already known, and
``dependents`` says which modules' findings may change when some modules' summaries change.
A rule that raises while checking a file loses only its own findings for that file.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loopwise.lint._checker import Checker, ParsedModule, parse_module, summarize_module
from loopwise.lint._engine import (
    _PARALLEL_MIN_BYTES,
    _PARALLEL_MIN_FILES,
    Cache,
    Progress,
    _make_job,
    _Pool,
    _summarize,
    _Worker,
)
from loopwise.lint._files import SourceFile
from loopwise.lint._finding import Finding
from loopwise.lint._noqa import apply_noqa
from loopwise.lint._project import FunctionInfo, ModuleSummary, Project
from loopwise.lint._rule import Rule

__all__ = [
    "Dependents",
    "RuleFailure",
    "TextCheck",
    "check_text",
    "dependents",
    "summarize_files",
    "summarize_text",
    "updated_project",
]

logger = logging.getLogger("loopwise.lint")


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule that raised while checking a file: its findings there were dropped."""

    code: str
    path: str
    line: int | None
    error: str


@dataclass(slots=True)
class TextCheck:
    """One file's text, checked: its findings, or the error that kept it from being checked.

    ``summary`` is None when the text does not parse (callers keep the last good one).
    """

    parsed: ParsedModule
    summary: ModuleSummary | None
    findings: list[Finding] = field(default_factory=list)
    failures: list[RuleFailure] = field(default_factory=list)

    @property
    def error(self) -> Finding | None:
        return self.parsed.error


def summarize_files(
    files: Sequence[SourceFile],
    *,
    jobs: int = 1,
    cache: Cache | None = None,
    progress: Callable[[int], Progress | None] | None = None,
    fork: bool = True,
) -> list[tuple[SourceFile, str, bool, ModuleSummary]]:
    """Each file's (file, module, is package, summary), in ``files``' order; nothing is checked.

    The cache's summaries of unchanged files are reused, and new ones are saved to it. A file
    that cannot be read or parsed gets an empty summary. ``fork=False`` starts worker
    processes afresh instead of forking: a process whose other threads hold locks (a server
    reading stdin) would hand them, held, to a forked child, which then hangs at start.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        job_list = [_make_job(file, cache) for file in files]
        to_summarize = [job for job in job_list if job.entry is None]
        total_bytes = sum(job.stat.st_size for job in to_summarize if job.stat)
        parallel = (
            jobs > 1
            and len(to_summarize) >= _PARALLEL_MIN_FILES
            and total_bytes >= _PARALLEL_MIN_BYTES
        )
        report = progress(len(to_summarize)) if progress and to_summarize else None
        pool = _Pool(min(jobs, len(to_summarize)), [], fork=fork) if parallel else None
        try:
            _summarize(to_summarize, pool, _Worker([]), report)
        finally:
            if pool is not None:
                pool.close()
    finally:
        if paused:
            gc.enable()
    if cache is not None and to_summarize:
        for job in to_summarize:
            if job.entry is not None and job.entry.digest:
                cache.entries[job.file.path] = job.entry
        cache.save()
    return [
        (job.file, job.module, job.is_package, job.entry.summary)
        for job in job_list
        if job.entry is not None
    ]


def summarize_text(path: str, source: bytes, module: str, is_package: bool) -> TextCheck:
    """Parse ``source`` (the text of ``path``) and summarize it; never raises for bad text."""
    parsed = parse_module(path, source, module, is_package)
    summary = summarize_module(parsed) if parsed.tree is not None else None
    return TextCheck(parsed, summary)


def check_text(
    summarized: TextCheck, project: Project, rules: Sequence[Rule[Any]], *, fixes: bool = False
) -> TextCheck:
    """Fill in the findings of a summarized text against ``project``, ``# noqa`` applied.

    A rule that raises is logged, left out, and the file checked again without it: the other
    rules' findings are all kept, and each failure is listed in ``failures``.
    """
    parsed = summarized.parsed
    if parsed.error is not None:
        summarized.findings = [parsed.error]
        return summarized
    active = list(rules)
    failures: list[RuleFailure] = []
    current = parsed
    while True:
        checker = Checker(current, project, active, fixes=fixes)
        try:
            found = checker.run()
        except RecursionError:
            message = "syntax error: too deeply nested to check"
            found = [Finding(parsed.path, 1, 1, "syntax-error", message, 1, 1)]
            summarized.findings = found
            break
        except Exception as exc:
            failing = checker._rule
            line = getattr(checker.parents[-1], "lineno", None) if checker.parents else None
            failure = RuleFailure(
                failing.code if failing else "engine", parsed.path, line, f"{exc!r}"
            )
            logger.error(
                "rule %s raised at %s:%s, its findings there are dropped: %s",
                failure.code,
                parsed.path,
                line,
                failure.error,
                exc_info=exc,
            )
            failures.append(failure)
            if failing is None:  # the walk itself failed: nothing left to trust
                summarized.findings = []
                break
            active = [rule for rule in active if rule is not failing]
            # the failed walk may have left the shared per-file state half-done: start afresh
            current = parse_module(parsed.path, parsed.source, parsed.module, parsed.is_package)
            summarize_module(current)
            continue
        codes = frozenset(rule.code for rule in rules)
        summarized.findings = sorted(
            apply_noqa(found, parsed.source, codes, parsed.path, fixes=fixes)
        )
        break
    summarized.failures = failures
    return summarized


def _module_of(name: str, modules: Collection[str]) -> str | None:
    """The longest module of ``modules`` that the qualified ``name`` lies in."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in modules:
            return candidate
    return None


def _referenced(summary: ModuleSummary) -> Iterable[str]:
    """Every qualified name a module's summary mentions from elsewhere."""
    yield from summary.aliases.values()
    for info in summary.functions.values():
        yield from info.calls
        if info.returns:
            yield info.returns
    for cls in summary.classes.values():
        yield from (base for base in cls.bases if base)
        for method in cls.methods.values():
            yield from method.calls
        yield from (kind for kind in cls.attributes.values() if kind)


def _shared_facts(summary: ModuleSummary) -> tuple[object, ...]:
    """The parts of a summary every module's findings read by name, not through imports."""
    return (summary.detached, summary.awaited, summary.handed_over, summary.awaiting_helpers)


def _shares_changed(changed: dict[str, tuple[ModuleSummary | None, ModuleSummary | None]]) -> bool:
    for old, new in changed.values():
        before = _shared_facts(old or ModuleSummary(name=""))
        after = _shared_facts(new or ModuleSummary(name=""))
        if before != after:
            return True
    return False


class Dependents:
    """Which modules use which (imports, calls, bases), kept up to date one summary at a time.

    Updating one module's summary costs that module's references, not the project's: an
    editor server asks after every keystroke.
    """

    def __init__(self, summaries: Iterable[ModuleSummary]) -> None:
        self.summaries = {summary.name: summary for summary in summaries}
        self._rebuild()

    def __repr__(self) -> str:
        return f"<Dependents modules={len(self.summaries)}>"

    def _rebuild(self) -> None:
        self.uses: dict[str, set[str]] = {}
        self.users: dict[str, set[str]] = {}
        for name, summary in self.summaries.items():
            self._link(name, summary)

    def _link(self, name: str, summary: ModuleSummary) -> None:
        targets = set()
        for reference in _referenced(summary):
            target = _module_of(reference, self.summaries)
            if target is not None and target != name:
                targets.add(target)
        self.uses[name] = targets
        for target in targets:
            self.users.setdefault(target, set()).add(name)

    def _unlink(self, name: str) -> None:
        for target in self.uses.pop(name, set()):
            self.users.get(target, set()).discard(name)

    def replace(self, name: str, summary: ModuleSummary | None) -> None:
        """Module ``name`` now has ``summary`` (None: it is gone)."""
        known = name in self.summaries
        if summary is None:
            self.summaries.pop(name, None)
        else:
            self.summaries[name] = summary
        if known != (summary is not None):  # the set of modules changed: names may resolve anew
            self._rebuild()
            return
        self._unlink(name)
        if summary is not None:
            self._link(name, summary)

    def affected(
        self, changed: dict[str, tuple[ModuleSummary | None, ModuleSummary | None]]
    ) -> set[str] | None:
        """The modules whose findings may change when ``changed`` summaries go from old to new
        (the changed ones and every module that uses them, directly or through others); None
        means every module: a change to what modules share by name (tasks started, functions
        awaited)."""
        if _shares_changed(changed):
            return None
        found = set(changed)
        queue = list(changed)
        while queue:
            for user in self.users.get(queue.pop(), ()):
                if user not in found:
                    found.add(user)
                    queue.append(user)
        return found


def dependents(
    project: Project,
    changed: dict[str, tuple[ModuleSummary | None, ModuleSummary | None]],
) -> set[str] | None:
    """The modules whose findings may change when ``changed`` summaries go from old to new.

    ``changed`` maps a module name to (its old summary, its new one; None for absent). The
    answer holds the changed modules themselves and every module that imports or calls into
    them, directly or through others (re-exports, transitive loop starts). None means every
    module: a change to what modules share by name (tasks started, functions awaited).
    """
    graph = Dependents(project.modules.values())
    for name, (_, new) in changed.items():
        if new is not None and name not in graph.summaries:
            graph.replace(name, new)
    return graph.affected(changed)


def _sync_functions(summary: ModuleSummary) -> dict[str, FunctionInfo]:
    return {name: info for name, info in summary.functions.items() if not info.is_async}


def _keeps_loop_runners(before: Project, was: ModuleSummary, now: ModuleSummary) -> bool:
    """Whether the set of loop-starting functions stays as ``before`` worked it out: no sync
    function of the module starts a loop, before or after, nor calls one that does."""
    running = before._loop_runners
    if running is None or was.aliases != now.aliases or was.classes.keys() != now.classes.keys():
        return False
    for summary in (was, now):
        for name, info in _sync_functions(summary).items():
            if f"{summary.name}.{name}" in running or info.runs_loop:
                return False
            if any(before.canonical(callee) in running for callee in info.calls):
                return False
    return True


def _returning_paths(summary: ModuleSummary) -> dict[str, tuple[tuple[str, ...], ...]]:
    return {
        name: info.loop_free_returns
        for name, info in summary.functions.items()
        if info.loop_free_returns
    }


def updated_project(
    before: Project,
    summaries: Iterable[ModuleSummary],
    old: ModuleSummary | None,
    new: ModuleSummary | None,
) -> Project:
    """The project of ``summaries`` after one module went from ``old`` to ``new``.

    The project-wide facts ``before`` worked out (which functions start a loop, which run only
    as tasks) are kept when that change cannot touch them, instead of being recomputed over
    every module on the next query.
    """
    project = Project(list(summaries))
    empty = ModuleSummary(name=(new or old or ModuleSummary(name="")).name)
    was, now = old or empty, new or empty
    if _keeps_loop_runners(before, was, now):
        project._loop_runners = before._loop_runners
        if _returning_paths(was) == _returning_paths(now):
            project._loop_free_returners = before._loop_free_returners
    if _shared_facts(was) == _shared_facts(now):
        project._detached = before._detached
    _keep_session_names(before, project, was, now)
    return project


def _session_functions(summary: ModuleSummary) -> set[str]:
    found = {name for name, info in summary.functions.items() if info.session_per_call}
    for cls in summary.classes.values():
        found.update(name for name, info in cls.methods.items() if info.session_per_call)
    return found


def _keep_session_names(
    before: Project, project: Project, was: ModuleSummary, now: ModuleSummary
) -> None:
    """LW008's project-wide table of per-call-session functions, kept when the change has no
    such function and imports the same names (it is keyed by the project object)."""
    from loopwise.lint.rules import lw008_client_session_misuse as lw008

    known = lw008._PER_CALL_NAMES.get(before)
    if known is None or was.aliases != now.aliases:
        return
    if _session_functions(was) or _session_functions(now):
        return
    lw008._PER_CALL_NAMES[project] = known
