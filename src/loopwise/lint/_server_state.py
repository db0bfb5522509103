"""What the editor server knows: every module's summary, the open buffers, and the settings.

The state is plain data driven by the server's event loop (one thread): it never talks to the
client. Open buffers win over the files on disk; a buffer that does not parse keeps its last
good summary and findings, so a half-typed line does not flip findings in other files.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from loopwise._exceptions import ConfigError
from loopwise.lint._api import CODES, Selector
from loopwise.lint._baseline import Baseline
from loopwise.lint._config import CONFIG_NAMES, ConfigFinder
from loopwise.lint._files import (
    DEFAULT_EXCLUDES,
    IgnoreRules,
    SourceFile,
    discover,
    force_excluded,
    module_for,
)
from loopwise.lint._finding import Finding
from loopwise.lint._incremental import (
    Dependents,
    RuleFailure,
    TextCheck,
    check_text,
    summarize_text,
    updated_project,
)
from loopwise.lint._project import ModuleSummary, Project
from loopwise.lint._rule import Rule

__all__ = ["FileReport", "ServerState"]

logger = logging.getLogger("loopwise.server")
T = TypeVar("T")


@dataclass(slots=True)
class _Module:
    module: str
    is_package: bool
    summary: ModuleSummary


@dataclass(slots=True)
class _Buffer:
    """An open document: its text, and what its last text that parsed gave."""

    text: bytes
    good_findings: list[Finding] = field(default_factory=list)
    syntax_error: Finding | None = None
    checked: bool = False
    fresh: TextCheck | None = None  # the text's parse and summary, not yet checked
    # answers computed for this text under one project and one set of settings, by kind
    memo: dict[str, tuple[tuple[object, ...], object]] = field(default_factory=dict)


@dataclass(slots=True)
class FileReport:
    """The findings to show for one file; ``syntax_error`` is set while the buffer does not
    parse (the findings are then those of its last text that did)."""

    findings: list[Finding]
    syntax_error: Finding | None = None
    config_error: str | None = None
    failures: list[RuleFailure] = field(default_factory=list)


class ServerState:
    """Summaries of the workspace's modules and the open buffers, checked on demand.

    Methods that change what is known return the paths of the open buffers whose findings may
    have changed (to be checked and published again).
    """

    def __init__(self, roots: Sequence[Path], rules: Sequence[Rule[Any]]) -> None:
        self.roots = [Path(os.path.normpath(root)) for root in roots]
        self.rules = list(rules)
        self.modules: dict[str, _Module] = {}
        self.buffers: dict[str, _Buffer] = {}
        self.selector = Selector(ConfigFinder(CODES))
        self.indexed = False
        self._project: Project | None = None
        self._graph: Dependents | None = None
        self._baselines: dict[Path, tuple[int, Baseline | None]] = {}

    def __repr__(self) -> str:
        return (
            f"<ServerState modules={len(self.modules)} open={len(self.buffers)}"
            f" indexed={self.indexed}>"
        )

    # -- settings ------------------------------------------------------------------------

    def reload_config(self) -> str | None:
        """Read the configuration files again; on an error the previous settings stay and the
        error's one line is returned."""
        selector = Selector(ConfigFinder(CODES))
        try:
            for root in self.roots:
                selector.rules_for(selector.finder.for_directory(root))
        except ConfigError as exc:
            return str(exc)
        self.selector = selector
        self._baselines.clear()
        return None

    @staticmethod
    def is_config_file(path: str) -> bool:
        return os.path.basename(path) in CONFIG_NAMES

    def is_baseline(self, path: str) -> bool:
        return Path(path) in self._baselines

    def workspace_files(self) -> list[SourceFile]:
        """The Python files of the workspace folders, less the configured excludes."""
        roots = [str(root) for root in self.roots if root.is_dir()]
        if not roots:
            return []
        return discover(
            roots,
            excludes=[IgnoreRules(self.roots[0], list(DEFAULT_EXCLUDES))],
            config_excludes=self.selector.excludes_for,
        )

    def in_workspace(self, path: str) -> bool:
        return any(Path(path).is_relative_to(root) for root in self.roots)

    # -- what is known -------------------------------------------------------------------

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = Project([known.summary for known in self.modules.values()])
        return self._project

    @property
    def graph(self) -> Dependents:
        if self._graph is None:
            self._graph = Dependents(known.summary for known in self.modules.values())
        return self._graph

    def add_index(self, summaries: Sequence[tuple[SourceFile, str, bool, ModuleSummary]]) -> None:
        """Take in the workspace's summaries; open buffers keep their own."""
        for file, module, is_package, summary in summaries:
            if file.path not in self.buffers:
                self.modules[file.path] = _Module(module, is_package, summary)
        self.indexed = True
        self._project = None
        self._graph = None
        _ = self.graph  # built now, not on the first keystroke
        # The index lives as long as the server: a full collection walking all of it paused an
        # edit for ~50 ms on a large project. Frozen objects are still freed by reference count.
        gc.freeze()

    def _replace(self, path: str, new: _Module | None) -> list[str]:
        old = self.modules.get(path)
        if old is not None and new is not None and old.summary == new.summary:
            self.modules[path] = new
            return []
        if new is None:
            self.modules.pop(path, None)
        else:
            self.modules[path] = new
        self._project = updated_project(
            self.project,
            (known.summary for known in self.modules.values()),
            old.summary if old else None,
            new.summary if new else None,
        )
        names: dict[str, tuple[ModuleSummary | None, ModuleSummary | None]] = {}
        if old is not None:
            names[old.module] = (old.summary, None)
        if new is not None:
            previous = names.get(new.module, (None, None))[0]
            names[new.module] = (previous, new.summary)
        # the users before the change (of a module going away) and after (of one arriving)
        before = self.graph.affected(names)
        if old is not None and (new is None or new.module != old.module):
            self.graph.replace(old.module, None)
        if new is not None:
            self.graph.replace(new.module, new.summary)
        after = self.graph.affected(names)
        affected = None if before is None or after is None else before | after
        return [
            open_path
            for open_path in self.buffers
            if open_path != path and (affected is None or module_for(open_path)[0] in affected)
        ]

    def set_text(self, path: str, text: bytes) -> list[str]:
        """An open buffer's new text; returns the other open paths to check again."""
        buffer = self.buffers.get(path)
        if buffer is None:
            buffer = self.buffers[path] = _Buffer(text)
        buffer.text = text
        module, is_package = module_for(path)
        summarized = summarize_text(path, text, module, is_package)
        buffer.fresh = summarized
        if summarized.summary is None:  # keep the last good summary while the text is broken
            return []
        return self._replace(path, _Module(module, is_package, summarized.summary))

    def close(self, path: str) -> list[str]:
        """A buffer closed: the file on disk (if any) is what counts again."""
        self.buffers.pop(path, None)
        return self.disk_changed(path)

    def disk_changed(self, path: str) -> list[str]:
        """A file changed or appeared on disk; an open buffer keeps winning over it."""
        if path in self.buffers or not path.endswith(".py"):
            return []
        if not self.in_workspace(path) or self._excluded(path):
            return self._replace(path, None) if path in self.modules else []
        try:
            text = Path(path).read_bytes()
        except OSError:
            return self.deleted(path)
        module, is_package = module_for(path)
        summarized = summarize_text(path, text, module, is_package)
        summary = summarized.summary or ModuleSummary(name=module)
        return self._replace(path, _Module(module, is_package, summary))

    def deleted(self, path: str) -> list[str]:
        """A file or a folder was deleted (an open buffer of it stays as it is).

        Editors send one event for a deleted folder: its modules leave the index with it.
        """
        if path in self.buffers:
            return []
        if path not in self.modules:
            inside = [known for known in self.modules if Path(known).is_relative_to(path)]
            affected: dict[str, None] = {}
            for known in inside:
                affected.update(dict.fromkeys(self.deleted(known)))
            return list(affected)
        return self._replace(path, None)

    # -- checking ------------------------------------------------------------------------

    def _excluded(self, path: str) -> bool:
        absolute = Path(path)
        return force_excluded(absolute, [self.selector.excludes_for(str(absolute.parent))])

    def remembered(self, path: str, kind: str, compute: Callable[[], T]) -> T:
        """``compute()`` for an open buffer, computed again only once its text, the project or
        the settings changed (editors ask for hovers and code actions on every cursor move)."""
        buffer = self.buffers[path]
        key = (buffer.text, self.project, self.selector)
        known = buffer.memo.get(kind)
        if known is not None and all(a is b for a, b in zip(known[0], key, strict=True)):
            return cast(T, known[1])
        value = compute()
        buffer.memo[kind] = (key, value)
        return value

    def _rules_for(self, path: str) -> list[Rule[Any]]:
        """The rules the settings select for ``path`` (as ``loopwise check`` runs them), and the
        rules loaded with ``extraRules`` under codes of their own; an unselected rule is not run
        at all (an opt-in rule can cost more than the rest together)."""
        selected = self.selector.selected_for(Path(path))
        return [rule for rule in self.rules if rule.code in selected or rule.code not in CODES]

    def check(self, path: str, *, fixes: bool = False) -> FileReport:
        """The findings to publish for an open buffer, under the settings that govern it."""
        if not fixes:
            return self.remembered(path, "report", lambda: self._check(path, fixes=False))
        return self._check(path, fixes=True)

    def _check(self, path: str, *, fixes: bool) -> FileReport:
        buffer = self.buffers[path]
        try:
            if self._excluded(path):
                return FileReport([])
            summarized = buffer.fresh
            buffer.fresh = None  # a check consumes the parse (the rules' walk shares its state)
            if summarized is None or summarized.parsed.source is not buffer.text:
                module, is_package = module_for(path)
                summarized = summarize_text(path, buffer.text, module, is_package)
            if summarized.error is not None and summarized.error.code == "syntax-error":
                buffer.syntax_error = summarized.error
                return FileReport(list(buffer.good_findings), buffer.syntax_error)
            checked = check_text(summarized, self.project, self._rules_for(path), fixes=fixes)
            cwd = Path.cwd()
            kept = [f for f in checked.findings if self.selector.wanted(f, cwd)]
            kept = self._without_baseline(path, buffer.text, kept)
        except ConfigError as exc:
            return FileReport([], config_error=str(exc))
        if not fixes:
            buffer.good_findings = kept
            buffer.syntax_error = None
            buffer.checked = True
        return FileReport(kept, failures=checked.failures)

    def fixable(self, path: str) -> TextCheck:
        """The buffer's text checked with fixes, unfiltered (for code actions)."""

        def compute() -> TextCheck:
            module, is_package = module_for(path)
            summarized = summarize_text(path, self.buffers[path].text, module, is_package)
            return check_text(summarized, self.project, self._rules_for(path), fixes=True)

        return self.remembered(path, "fixable", compute)

    def _without_baseline(self, path: str, text: bytes, findings: list[Finding]) -> list[Finding]:
        configured = self.selector.finder.for_directory(str(Path(path).parent)).baseline
        if configured is None or not findings:
            return findings
        try:
            stamp = configured.stat().st_mtime_ns
        except OSError:
            return findings
        known = self._baselines.get(configured)
        if known is None or known[0] != stamp:
            try:
                baseline: Baseline | None = Baseline.load(configured)
            except ConfigError as exc:
                logger.error("%s", exc)
                baseline = None
            known = self._baselines[configured] = (stamp, baseline)
        if known[1] is None:
            return findings
        kept, _, _ = known[1].filter(findings, [path], {path: text})
        return kept
