"""Which files to check: walk the given paths, honouring excludes and ``.gitignore`` files."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    path: str


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
        self._prefix = str(base).rstrip(os.sep) + os.sep
        self.patterns = [p for p in (_compile(line) for line in lines) if p is not None]
        # Without negations the order does not matter: one combined expression decides.
        self._combined: tuple[re.Pattern[str] | None, re.Pattern[str] | None] | None = None
        if not any(p.negated for p in self.patterns):
            files = [p.regex.pattern for p in self.patterns if not p.dir_only]
            every = [p.regex.pattern for p in self.patterns]
            self._combined = (_join(files), _join(every))

    @classmethod
    def from_file(cls, path: Path) -> IgnoreRules | None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        rules = cls(path.parent, text.splitlines())
        return rules if rules.patterns else None

    def decide(self, path: Path | str, is_dir: bool) -> bool | None:
        """True: ignored; False: re-included by a ``!`` pattern; None: no pattern matched."""
        text = str(path)
        if text.startswith(self._prefix):
            relative = text[len(self._prefix) :].replace(os.sep, "/")
        else:
            relative = os.path.basename(text)
        if not relative:
            return None
        if self._combined is not None:
            regex = self._combined[1] if is_dir else self._combined[0]
            return True if regex is not None and regex.fullmatch(relative) else None
        verdict = None
        for pattern in self.patterns:
            if pattern.dir_only and not is_dir:
                continue
            if pattern.regex.fullmatch(relative):
                verdict = not pattern.negated
        return verdict


def _join(patterns: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def _ignored(rule_sets: Sequence[IgnoreRules], path: Path | str, is_dir: bool) -> bool:
    verdict = False
    for rules in rule_sets:
        decided = rules.decide(path, is_dir)
        if decided is not None:
            verdict = decided
    return verdict


def _display(path: str, cwd_prefix: str) -> str:
    if path.startswith(cwd_prefix):
        path = path[len(cwd_prefix) :]
    return path.replace(os.sep, "/")


def discover(
    paths: Sequence[str],
    *,
    excludes: Sequence[IgnoreRules],
    respect_gitignore: bool = True,
    force_exclude: bool = False,
    config_excludes: Callable[[str], IgnoreRules] | None = None,
) -> list[SourceFile]:
    """The files to check, each once, in a stable order.

    Directories are walked for ``*.py`` files, skipping excluded and git-ignored ones. A file
    named explicitly is always checked unless ``force_exclude`` is set (as pre-commit hooks do).
    ``config_excludes(directory)`` gives the patterns of the configuration that governs a
    directory; they come before ``excludes``. A path that does not exist raises
    :class:`ConfigError`.
    """
    cwd = Path.cwd()
    cwd_prefix = str(cwd).rstrip(os.sep) + os.sep
    seen: set[str] = set()
    found: list[SourceFile] = []
    for raw in paths:
        given = Path(raw)
        path = given if given.is_absolute() else cwd / given
        path = Path(os.path.normpath(path))
        if not path.exists():
            raise ConfigError(f"{raw}: no such file or directory")
        if path.is_file():
            governing = [config_excludes(str(path.parent))] if config_excludes else []
            rule_sets = [*governing, *excludes]
            if force_exclude and _excluded_by_ancestors(path, rule_sets, respect_gitignore):
                continue
            if str(path) not in seen:
                seen.add(str(path))
                display = _display(str(path), cwd_prefix) if not given.is_absolute() else raw
                found.append(SourceFile(display, str(path)))
            continue
        gitignores = _ancestor_gitignores(path) if respect_gitignore else []
        walk = _walk(str(path), [*excludes], gitignores, respect_gitignore, config_excludes)
        for name in walk:
            if name not in seen:
                seen.add(name)
                display = _display(name, cwd_prefix) if not given.is_absolute() else name
                found.append(SourceFile(display, name))
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


def force_excluded(
    path: Path, excludes: Sequence[IgnoreRules], *, respect_gitignore: bool = True
) -> bool:
    """Whether ``--force-exclude`` leaves out the file ``path`` (which need not exist)."""
    return _excluded_by_ancestors(path, excludes, respect_gitignore)


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
    directory: str,
    excludes: list[IgnoreRules],
    gitignores: list[IgnoreRules],
    respect_gitignore: bool,
    config_excludes: Callable[[str], IgnoreRules] | None,
) -> Iterator[str]:
    governing = [config_excludes(directory)] if config_excludes else []
    rule_sets = [rules for rules in (*governing, *excludes, *gitignores) if rules.patterns]
    try:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    if respect_gitignore and any(entry.name == ".gitignore" for entry in entries):
        local = IgnoreRules.from_file(Path(directory) / ".gitignore")
        if local is not None:
            rule_sets.append(local)
            gitignores = [*gitignores, local]
    for entry in entries:
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if not is_dir and not entry.name.endswith(".py"):
            continue
        if _ignored(rule_sets, entry.path, is_dir):
            continue
        if is_dir:
            yield from _walk(entry.path, excludes, gitignores, respect_gitignore, config_excludes)
        else:
            yield entry.path


@lru_cache(maxsize=4096)
def _package_parts(directory: str) -> tuple[str, ...]:
    """The package names from the top package down to ``directory`` (empty when not one)."""
    if not os.path.isfile(os.path.join(directory, "__init__.py")):
        return ()
    parent = os.path.dirname(directory)
    if parent == directory:
        return ()
    return (*_package_parts(parent), os.path.basename(directory))


def module_for(path: str) -> tuple[str, bool]:
    """The dotted module name of a file (walking up through packages) and whether it is one."""
    text = path
    packages = _package_parts(os.path.dirname(text))
    filename = os.path.basename(text)
    stem = filename[:-3] if filename.endswith(".py") else filename
    if stem == "__init__":
        return ".".join(packages) or "__init__", True
    return ".".join([*packages, stem]), False
