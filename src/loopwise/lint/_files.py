"""Which files to check: walk the given paths, honouring excludes and ``.gitignore`` files."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from loopwise._exceptions import ConfigError

__all__ = ["DEFAULT_EXCLUDES", "IgnoreRules", "SourceFile", "discover", "module_for"]

DEFAULT_EXCLUDES = (
    ".bzr",
    ".direnv",
    ".eggs",
    ".git",
    ".hg",
    ".loopwise_cache",
    ".mypy_cache",
    ".nox",
    ".pytest_cache",
    ".ruff_cache",
    ".svn",
    ".tox",
    ".venv",
    "__pycache__",
    "__pypackages__",
    "*.egg-info",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file to check: ``display`` is how findings name it, ``path`` is absolute."""

    display: str
    path: Path


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """A gitignore glob as a regular expression over '/'-separated relative paths."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def _compile(line: str) -> _Pattern | None:
    line = line.rstrip("\n").rstrip("\r")
    if not line.strip() or line.startswith("#"):
        return None
    if not line.endswith("\\ "):
        line = line.rstrip()
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    prefix = "" if anchored else "(?:.*/)?"
    return _Pattern(re.compile(f"{prefix}{_translate(line)}"), negated, dir_only)


class IgnoreRules:
    """Gitignore-style patterns relative to ``base``: the last matching pattern wins."""

    def __init__(self, base: Path, lines: Iterable[str]) -> None:
        self.base = base
        self.patterns = [p for p in (_compile(line) for line in lines) if p is not None]

    @classmethod
    def from_file(cls, path: Path) -> IgnoreRules | None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        rules = cls(path.parent, text.splitlines())
        return rules if rules.patterns else None

    def decide(self, path: Path, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a ``!`` pattern; None: no pattern matched."""
        try:
            relative = path.relative_to(self.base).as_posix()
        except ValueError:
            relative = path.name
        if relative in ("", "."):
            return None
        verdict = None
        for pattern in self.patterns:
            if pattern.dir_only and not is_dir:
                continue
            if pattern.regex.fullmatch(relative):
                verdict = not pattern.negated
        return verdict


def _ignored(rule_sets: Sequence[IgnoreRules], path: Path, is_dir: bool) -> bool:
    verdict = False
    for rules in rule_sets:
        decided = rules.decide(path, is_dir)
        if decided is not None:
            verdict = decided
    return verdict


def _display(path: Path, cwd: Path) -> str:
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def discover(
    paths: Sequence[str],
    *,
    excludes: Sequence[IgnoreRules],
    respect_gitignore: bool = True,
    force_exclude: bool = False,
) -> list[SourceFile]:
    """The files to check, each once, in a stable order.

    Directories are walked for ``*.py`` files, skipping excluded and git-ignored ones. A file
    named explicitly is always checked unless ``force_exclude`` is set (as pre-commit hooks do).
    A path that does not exist raises :class:`ConfigError`.
    """
    cwd = Path.cwd()
    seen: set[Path] = set()
    found: list[SourceFile] = []
    for raw in paths:
        given = Path(raw)
        path = given if given.is_absolute() else cwd / given
        path = Path(os.path.normpath(path))
        if not path.exists():
            raise ConfigError(f"{raw}: no such file or directory")
        if path.is_file():
            if force_exclude and _excluded_by_ancestors(path, excludes, respect_gitignore):
                continue
            if path not in seen:
                seen.add(path)
                found.append(
                    SourceFile(_display(path, cwd) if not given.is_absolute() else raw, path)
                )
            continue
        gitignores = _ancestor_gitignores(path) if respect_gitignore else []
        for file in _walk(path, [*excludes], gitignores, respect_gitignore):
            if file not in seen:
                seen.add(file)
                display = _display(file, cwd) if not given.is_absolute() else file.as_posix()
                found.append(SourceFile(display, file))
    return found


def _ancestor_gitignores(directory: Path) -> list[IgnoreRules]:
    """The .gitignore files above ``directory`` up to the repository root."""
    found: list[IgnoreRules] = []
    for parent in [directory, *directory.parents]:
        rules = IgnoreRules.from_file(parent / ".gitignore") if parent != directory else None
        if rules is not None:
            found.append(rules)
        if (parent / ".git").exists():
            break
    return list(reversed(found))


def _excluded_by_ancestors(
    path: Path, excludes: Sequence[IgnoreRules], respect_gitignore: bool
) -> bool:
    rule_sets = [*excludes, *(_ancestor_gitignores(path.parent) if respect_gitignore else [])]
    if respect_gitignore:
        local = IgnoreRules.from_file(path.parent / ".gitignore")
        if local is not None:
            rule_sets.append(local)
    candidates = [path, *path.parents]
    return any(_ignored(rule_sets, candidate, candidate != path) for candidate in candidates)


def _walk(
    directory: Path,
    excludes: list[IgnoreRules],
    gitignores: list[IgnoreRules],
    respect_gitignore: bool,
) -> Iterator[Path]:
    rule_sets = [*excludes, *gitignores]
    if respect_gitignore:
        local = IgnoreRules.from_file(directory / ".gitignore")
        if local is not None:
            rule_sets = [*rule_sets, local]
            gitignores = [*gitignores, local]
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if _ignored(rule_sets, path, is_dir):
            continue
        if is_dir:
            yield from _walk(path, excludes, gitignores, respect_gitignore)
        elif entry.name.endswith(".py"):
            yield path


@lru_cache(maxsize=4096)
def _is_package_dir(directory: Path) -> bool:
    return (directory / "__init__.py").is_file()


def module_for(path: Path) -> tuple[str, bool]:
    """The dotted module name of a file (walking up through packages) and whether it is one."""
    parts = [path.name]
    directory = path.parent
    while _is_package_dir(directory) and directory.parent != directory:
        parts.append(directory.name)
        directory = directory.parent
    parts.reverse()
    *packages, filename = parts
    stem = filename[:-3] if filename.endswith(".py") else filename
    if stem == "__init__":
        return ".".join(packages) or "__init__", True
    return ".".join([*packages, stem]), False
