"""The checker as a library: check paths or a source string, with the CLI's selection rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from loopwise._exceptions import ConfigError
from loopwise.lint._config import Config, find_config, load_config, resolve_codes
from loopwise.lint._engine import Cache, Progress, check_files
from loopwise.lint._files import DEFAULT_EXCLUDES, IgnoreRules, SourceFile, discover
from loopwise.lint._finding import Finding
from loopwise.lint._project import Project
from loopwise.lint._runner import check_module, parse_module, summarize_module
from loopwise.lint.rules import ALL_RULES

__all__ = ["CheckResult", "check", "check_source"]

CODES = tuple(rule.code for rule in ALL_RULES)
OPT_IN = frozenset(rule.code for rule in ALL_RULES if not rule.default)
QUIET_IN_TESTS = frozenset(rule.code for rule in ALL_RULES if not rule.in_tests)


class CheckResult:
    """The outcome of :func:`check`: the findings kept after selection, and what was checked."""

    def __init__(self, findings: list[Finding], files: list[SourceFile]) -> None:
        self.findings = findings
        self.files = files

    def __repr__(self) -> str:
        return f"<CheckResult findings={len(self.findings)} files={len(self.files)}>"


def check(
    paths: Sequence[str | Path] = (".",),
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    config: str | Path | None = None,
    jobs: int = 1,
    cache: bool = False,
    force_exclude: bool = False,
    respect_gitignore: bool = True,
    progress: Callable[[int], Progress | None] | None = None,
) -> CheckResult:
    """Check Python files under ``paths`` the way ``loopwise check`` does.

    ``select`` replaces the configured selection; ``ignore`` and ``exclude`` add to it. The
    configuration is the nearest pyproject.toml with ``[tool.loopwise]`` unless ``config``
    names one. Raises :class:`~loopwise.ConfigError` for a bad path, code or config.
    """
    cwd = Path.cwd()
    config_path = Path(config) if config is not None else find_config(cwd)
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"{config_path}: config file not found")
    settings = load_config(config_path, CODES)
    selected = resolve_codes(
        list(select) if select is not None else settings.select, CODES, "select", opt_in=OPT_IN
    )
    selected -= resolve_codes(settings.ignore, CODES, "ignore")
    selected -= resolve_codes(ignore, CODES, "--ignore")
    exclude_rules = [
        IgnoreRules(settings.root, [*DEFAULT_EXCLUDES, *settings.exclude]),
        IgnoreRules(cwd, exclude),
    ]
    files = discover(
        [str(p) for p in paths],
        excludes=exclude_rules,
        respect_gitignore=respect_gitignore,
        force_exclude=force_exclude,
    )
    store = Cache.load(settings.root / ".loopwise_cache") if cache else None
    rules = [rule() for rule in ALL_RULES]
    findings = check_files(files, rules, jobs=jobs, cache=store, progress=progress)
    per_file = _per_file_ignores(settings)
    kept = [f for f in findings if f.is_error or _wanted(f, selected, per_file, cwd)]
    return CheckResult(kept, files)


def _per_file_ignores(settings: Config) -> list[tuple[IgnoreRules, set[str]]]:
    ignores = [
        (IgnoreRules(settings.root, [pattern]), resolve_codes(codes, CODES, pattern))
        for pattern, codes in settings.per_file_ignores.items()
    ]
    if settings.test_paths:
        ignores.append((IgnoreRules(settings.root, settings.test_paths), set(QUIET_IN_TESTS)))
    return ignores


def _wanted(
    finding: Finding, selected: set[str], per_file: list[tuple[IgnoreRules, set[str]]], cwd: Path
) -> bool:
    if finding.code not in selected:
        return False
    path = Path(finding.path)
    path = path if path.is_absolute() else cwd / path
    return not any(
        finding.code in codes and rules.decide(path, is_dir=False) for rules, codes in per_file
    )


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
