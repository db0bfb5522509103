"""The checker as a library: check paths or a source string, with the CLI's selection rules."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from loopwise._exceptions import ConfigError
from loopwise.lint._checker import check_module, parse_module, summarize_module
from loopwise.lint._config import Config, ConfigFinder, resolve_codes
from loopwise.lint._engine import Cache, Progress, check_files
from loopwise.lint._files import (
    DEFAULT_EXCLUDES,
    IgnoreRules,
    SourceFile,
    discover,
    force_excluded,
    module_for,
)
from loopwise.lint._finding import Finding
from loopwise.lint._project import Project
from loopwise.lint._rule import Rule
from loopwise.lint.rules import ALL_RULES
from loopwise.lint.rules._blocking import ConfiguredBlockingCalls

__all__ = ["CheckResult", "Selector", "check", "check_source"]

CODES = tuple(rule.code for rule in ALL_RULES)
OPT_IN = frozenset(rule.code for rule in ALL_RULES if not rule.default)
QUIET_IN_TESTS = frozenset(rule.code for rule in ALL_RULES if not rule.in_tests)


class CheckResult:
    """The outcome of :func:`check`: the findings kept after selection, and what was checked."""

    def __init__(
        self,
        findings: list[Finding],
        files: list[SourceFile],
        *,
        selector: Selector | None = None,
        project: Project | None = None,
    ) -> None:
        self.findings = findings
        self.files = files
        self.selector = selector
        self.project = project

    def __repr__(self) -> str:
        return f"<CheckResult findings={len(self.findings)} files={len(self.files)}>"


@dataclass(frozen=True, slots=True)
class _FileRules:
    selected: frozenset[str]
    per_file: tuple[tuple[IgnoreRules, frozenset[str]], ...]
    excludes: IgnoreRules


class Selector:
    """Which codes are reported in which file: the governing config merged with the options.

    ``select`` (when given) replaces a config's ``select``; ``extend_select`` and ``ignore``
    add to its ``extend-select`` and ``ignore``. Every code is validated up front, so a typo
    is an error even when no file is checked.
    """

    def __init__(
        self,
        finder: ConfigFinder,
        *,
        select: Sequence[str] | None = None,
        extend_select: Sequence[str] = (),
        ignore: Sequence[str] = (),
    ) -> None:
        self.finder = finder
        self.cli_select = (
            frozenset(resolve_codes(select, CODES, "--select", opt_in=OPT_IN))
            if select is not None
            else None
        )
        self.cli_extend = frozenset(
            resolve_codes(extend_select, CODES, "--extend-select", opt_in=OPT_IN)
        )
        self.cli_ignore = frozenset(resolve_codes(ignore, CODES, "--ignore"))
        self._rules: dict[int, _FileRules] = {}

    def rules_for(self, config: Config) -> _FileRules:
        known = self._rules.get(id(config))
        if known is not None:
            return known
        where = str(config.source) if config.source else "defaults"
        if self.cli_select is not None:
            selected = set(self.cli_select)
        else:
            selected = resolve_codes(config.select, CODES, where, opt_in=OPT_IN)
        selected |= resolve_codes(config.extend_select, CODES, where, opt_in=OPT_IN)
        selected |= self.cli_extend
        selected -= resolve_codes(config.ignore, CODES, where)
        selected -= self.cli_ignore
        per_file = [
            (IgnoreRules(config.root, [pattern]), frozenset(resolve_codes(codes, CODES, pattern)))
            for pattern, codes in config.per_file_ignores.items()
        ]
        if config.test_paths:
            per_file.append((IgnoreRules(config.root, config.test_paths), QUIET_IN_TESTS))
        excludes = IgnoreRules(config.root, [*DEFAULT_EXCLUDES, *config.exclude])
        made = _FileRules(frozenset(selected), tuple(per_file), excludes)
        self._rules[id(config)] = made
        return made

    def excludes_for(self, directory: str) -> IgnoreRules:
        return self.rules_for(self.finder.for_directory(directory)).excludes

    def wanted(self, finding: Finding, cwd: Path) -> bool:
        """Whether ``finding`` is reported under the settings that govern its file."""
        if finding.is_error:
            return True
        path = Path(finding.path)
        path = path if path.is_absolute() else cwd / path
        rules = self.rules_for(self.finder.for_directory(path.parent))
        if finding.code not in rules.selected:
            return False
        return not any(
            finding.code in codes and patterns.decide(path, is_dir=False)
            for patterns, codes in rules.per_file
        )

    def selected_for(self, path: Path) -> frozenset[str]:
        return self.rules_for(self.finder.for_directory(path.parent)).selected


def check(
    paths: Sequence[str | Path] = (".",),
    *,
    select: Sequence[str] | None = None,
    extend_select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    config: str | Path | None = None,
    isolated: bool = False,
    jobs: int = 1,
    cache: bool = False,
    force_exclude: bool = False,
    respect_gitignore: bool = True,
    progress: Callable[[int], Progress | None] | None = None,
    fixes: bool = False,
) -> CheckResult:
    """Check Python files under ``paths`` the way ``loopwise check`` does.

    Each file is governed by the nearest ``loopwise.toml`` or pyproject.toml with
    ``[tool.loopwise]`` at or above it, unless ``config`` names one file for all (or
    ``isolated`` ignores them all). ``select`` replaces the configured selection;
    ``extend_select``, ``ignore`` and ``exclude`` add to it. With ``fixes`` the findings carry
    their fixes. Raises :class:`~loopwise.ConfigError` for a bad path, code or config.
    """
    cwd = Path.cwd()
    selector = _selector(config, isolated, select, extend_select, ignore)
    files = discover(
        [str(p) for p in paths],
        excludes=[IgnoreRules(cwd, exclude)],
        respect_gitignore=respect_gitignore,
        force_exclude=force_exclude,
        config_excludes=selector.excludes_for,
    )
    root = selector.finder.for_directory(cwd).root
    store = Cache.load(root / ".loopwise_cache") if cache else None
    rules = _configured_rules(selector.finder)
    projects: list[Project] = []
    findings = check_files(
        files,
        rules,
        jobs=jobs,
        cache=store,
        progress=progress,
        fixes=fixes,
        projects=projects if fixes else None,
    )
    kept = [f for f in findings if selector.wanted(f, cwd)]
    project = projects[0] if projects else None
    return CheckResult(kept, files, selector=selector, project=project)


def _configured_rules(finder: ConfigFinder, *, stdin_path: str | None = None) -> list[Rule[Any]]:
    """Every rule, with the settings of the configurations met (``extend-blocking-calls``)."""
    rules: list[Rule[Any]] = [rule() for rule in ALL_RULES]
    blocking: dict[str, tuple[str, ...]] = {}
    for config in finder.all():
        if config.extend_blocking_calls:
            governs_all = config is finder.override
            blocking["" if governs_all else str(config.root)] = config.extend_blocking_calls
    if stdin_path is not None and blocking:
        # The file checked from stdin is named relative to the cwd, like every other.
        governing = finder.for_directory(os.path.dirname(stdin_path))
        blocking = {"": governing.extend_blocking_calls}
    if blocking:
        for rule in rules:
            if isinstance(rule, ConfiguredBlockingCalls):
                rule.extend_blocking_calls = MappingProxyType(blocking)
    return rules


def _selector(
    config: str | Path | None,
    isolated: bool,
    select: Sequence[str] | None,
    extend_select: Sequence[str],
    ignore: Sequence[str],
) -> Selector:
    override = Path(config) if config is not None else None
    if override is not None and override.is_dir():
        raise ConfigError(f"{override}: --config takes a file (pyproject.toml or loopwise.toml)")
    if override is not None and not override.is_file():
        raise ConfigError(f"{override}: config file not found")
    finder = ConfigFinder(CODES, override=override, isolated=isolated)
    return Selector(finder, select=select, extend_select=extend_select, ignore=ignore)


def check_stdin(
    source: bytes,
    filename: str,
    *,
    select: Sequence[str] | None = None,
    extend_select: Sequence[str] = (),
    ignore: Sequence[str] = (),
    config: str | Path | None = None,
    isolated: bool = False,
    fixes: bool = False,
    exclude: Sequence[str] = (),
    force_exclude: bool = False,
    respect_gitignore: bool = True,
) -> CheckResult:
    """Check ``source`` as if it were the file ``filename`` (which need not exist).

    The settings are those that govern ``filename``; only this one module is known. With
    ``force_exclude``, a ``filename`` that the configured or given excludes (or a .gitignore)
    leave out is not checked: the result has no files.
    """
    cwd = Path.cwd()
    selector = _selector(config, isolated, select, extend_select, ignore)
    path = Path(filename)
    absolute = Path(os.path.normpath(path if path.is_absolute() else cwd / path))
    if force_exclude:
        excludes = [selector.excludes_for(str(absolute.parent)), IgnoreRules(cwd, exclude)]
        if force_excluded(absolute, excludes, respect_gitignore=respect_gitignore):
            return CheckResult([], [], selector=selector, project=Project([]))
    module, is_package = module_for(str(absolute))
    parsed = parse_module(filename, source, module, is_package)
    project = Project([summarize_module(parsed)])
    selector.finder.for_directory(str(absolute.parent))
    rules = _configured_rules(selector.finder, stdin_path=str(absolute))
    findings = check_module(parsed, project, rules, fixes=fixes)
    kept = [f for f in findings if selector.wanted(f, cwd)]
    file = SourceFile(filename, str(absolute))
    return CheckResult(kept, [file], selector=selector, project=project)


def check_source(
    source: str,
    *,
    path: str = "<string>",
    module: str = "__main__",
    select: Sequence[str] | None = None,
) -> list[Finding]:
    """Findings for one piece of source code on its own (no config, no other modules)."""
    selectors = list(select) if select is not None else ["LW"]
    selected = resolve_codes(selectors, CODES, "select", opt_in=OPT_IN)
    parsed = parse_module(path, source.encode("utf-8"), module, False)
    project = Project([summarize_module(parsed)])
    findings = check_module(parsed, project, [rule() for rule in ALL_RULES])
    return [f for f in findings if f.is_error or f.code in selected]
