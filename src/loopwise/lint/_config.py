"""Settings: ``[tool.loopwise]`` in pyproject.toml or a loopwise.toml, merged with the command line.

Each checked file is governed by the nearest configuration file at or above it (like ruff):
a ``loopwise.toml`` (keys at the top level), or a ``pyproject.toml`` that has a
``[tool.loopwise]`` table. A nearer file replaces a farther one; nothing is inherited.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise._exceptions import ConfigError

__all__ = [
    "DEFAULT_TEST_PATHS",
    "Config",
    "ConfigFinder",
    "find_config",
    "load_config",
    "resolve_codes",
]

KNOWN_KEYS = (
    "baseline",
    "exclude",
    "extend-blocking-calls",
    "extend-exclude",
    "extend-ignore",
    "extend-select",
    "ignore",
    "per-file-ignores",
    "select",
    "test-paths",
)
_PATH_KEYS = frozenset({"exclude", "extend-exclude", "test-paths"})
CONFIG_NAMES = ("loopwise.toml", "pyproject.toml")
# A module function or a method: at least two dotted identifiers.
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
# Test code, gitignore-style: rules whose findings there are noise (a blocking call or a
# `sleep(0)` in a test stalls nothing that matters) stay quiet in these files.
DEFAULT_TEST_PATHS = (
    "**/tests/**",
    "**/test/**",
    "**/testing/**",
    "test_*.py",
    "*_test.py",
    "conftest.py",
)


@dataclass(frozen=True)
class Config:
    """Settings for a check. Patterns are gitignore-style, relative to ``root``."""

    root: Path
    source: Path | None = None
    select: tuple[str, ...] = ("LW",)
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    test_paths: tuple[str, ...] = DEFAULT_TEST_PATHS
    baseline: Path | None = None
    # Qualified names LW005 reports as blocking, besides its own: `mylib.sync_fetch`,
    # `db.Session.query` (a method of the class `db.Session`).
    extend_blocking_calls: tuple[str, ...] = ()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def _table(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """The settings table of a config file's data (None: a pyproject.toml without one)."""
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or "loopwise" not in tool:
            return None
        table = tool["loopwise"]
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [tool.loopwise] must be a table")
        return table
    return data


def find_config(start: Path) -> Path | None:
    """The config file that governs ``start`` (a directory): see the module docstring.

    A candidate that cannot be read or parsed raises :class:`ConfigError`: the settings the
    user meant to apply are never silently skipped.
    """
    for directory in [start, *start.parents]:
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file() and _table(candidate, _read_toml(candidate)) is not None:
                return candidate
    return None


def load_config(path: Path | None, codes: Sequence[str]) -> Config:
    """Read and validate the settings in ``path`` (defaults rooted at the cwd when None).

    Raises :class:`ConfigError` with one line naming the file, the key and what is accepted;
    a pyproject.toml without a ``[tool.loopwise]`` table is an error too.
    """
    if path is None:
        return Config(root=Path.cwd())
    table = _table(path, _read_toml(path))
    if table is None:
        raise ConfigError(
            f"{path}: no [tool.loopwise] table (add one, or name a loopwise.toml instead)"
        )
    return _parse(path, table, codes)


def _parse(path: Path, table: dict[str, Any], codes: Sequence[str]) -> Config:
    where = f"{path}: [tool.loopwise]" if path.name == "pyproject.toml" else str(path) + ":"
    unknown = sorted(set(table) - set(KNOWN_KEYS))
    if unknown == ["tool"] and path.name != "pyproject.toml":
        raise ConfigError(f"{where} keys go at the top level here, not under [tool.loopwise]")
    if unknown:
        raise ConfigError(
            f"{where} unknown key '{unknown[0]}' (known keys: {', '.join(KNOWN_KEYS)})"
        )
    select = _strings(table, "select", where) or ("LW",)
    extend_select = _strings(table, "extend-select", where)
    ignore = _strings(table, "ignore", where) + _strings(table, "extend-ignore", where)
    for key, value in (("select", select), ("extend-select", extend_select), ("ignore", ignore)):
        resolve_codes(value, codes, f"{where} {key}")
    exclude = _strings(table, "exclude", where) + _strings(table, "extend-exclude", where)
    per_file: dict[str, tuple[str, ...]] = {}
    raw_per_file = table.get("per-file-ignores", {})
    if not isinstance(raw_per_file, dict):
        raise ConfigError(f"{where} per-file-ignores must be a table of pattern = [codes]")
    for pattern in raw_per_file:
        entry = _strings(raw_per_file, pattern, f"{where} per-file-ignores")
        resolve_codes(entry, codes, f"{where} per-file-ignores '{pattern}'")
        per_file[pattern] = entry
    test_paths = (
        _strings(table, "test-paths", where) if "test-paths" in table else DEFAULT_TEST_PATHS
    )
    blocking = _strings(table, "extend-blocking-calls", where)
    for call in blocking:
        if not _DOTTED.fullmatch(call):
            raise ConfigError(
                f"{where} extend-blocking-calls: '{call}' is not the dotted name of a function "
                'or method, like "mylib.sync_fetch" or "db.Session.query"'
            )
    baseline = table.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise ConfigError(f'{where} baseline must be a string, like "loopwise-baseline.json"')
    return Config(
        root=path.parent,
        source=path,
        select=select,
        extend_select=extend_select,
        ignore=ignore,
        exclude=exclude,
        per_file_ignores=per_file,
        test_paths=test_paths,
        baseline=path.parent / baseline if baseline else None,
        extend_blocking_calls=blocking,
    )


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        example = '["tests/fixtures", "legacy/**"]' if key in _PATH_KEYS else '["LW001"]'
        if key == "extend-blocking-calls":
            example = '["mylib.sync_fetch", "db.Session.query"]'
        raise ConfigError(f"{where} {key} must be a list of strings, like {example}")
    return tuple(value)


class ConfigFinder:
    """The settings that govern each directory, found once per directory.

    ``override`` (``--config``) governs everything; ``isolated`` uses the defaults everywhere.
    """

    def __init__(
        self, codes: Sequence[str], *, override: Path | None = None, isolated: bool = False
    ) -> None:
        self.codes = codes
        self.isolated = isolated
        self.override = load_config(override, codes) if override is not None else None
        self._defaults = Config(root=Path.cwd())
        self._by_directory: dict[str, Config] = {}
        self._by_file: dict[Path, Config] = {}

    def for_directory(self, directory: Path | str) -> Config:
        """The settings for the files directly in ``directory`` (an absolute path)."""
        if self.override is not None:
            return self.override
        if self.isolated:
            return self._defaults
        key = str(directory)
        known = self._by_directory.get(key)
        if known is not None:
            return known
        found: Config | None = None
        for name in CONFIG_NAMES:
            candidate = os.path.join(key, name)
            if os.path.isfile(candidate):
                found = self._load(Path(candidate))
                if found is not None:
                    break
        if found is None:
            parent = os.path.dirname(key)
            found = self._defaults if parent == key else self.for_directory(parent)
        self._by_directory[key] = found
        return found

    def _load(self, path: Path) -> Config | None:
        known = self._by_file.get(path)
        if known is None:
            table = _table(path, _read_toml(path))
            if table is None:
                return None
            known = _parse(path, table, self.codes)
            self._by_file[path] = known
        return known

    def all(self) -> list[Config]:
        """Every configuration met so far (the override or defaults included when used)."""
        found = {id(config): config for config in self._by_directory.values()}
        if self.override is not None:
            found[id(self.override)] = self.override
        return list(found.values())


def resolve_codes(
    selectors: Sequence[str],
    codes: Sequence[str],
    where: str,
    *,
    opt_in: Collection[str] = (),
) -> set[str]:
    """The rule codes a list of codes or prefixes (``LW``, ``LW00``, ``LW005``) selects.

    A prefix leaves out the ``opt_in`` rules (those outside the default set): only their full
    code selects them.
    """
    chosen: set[str] = set()
    for selector in selectors:
        normalized = selector.strip().upper()
        if normalized == "ALL":
            normalized = "LW"
        matched = {code for code in codes if code.startswith(normalized)} if normalized else set()
        if not matched:
            raise ConfigError(
                f"{where}: unknown rule code '{selector}' "
                f"(known: {', '.join(sorted(codes))}; prefixes such as LW00 work too)"
            )
        if normalized not in codes:
            matched -= set(opt_in)
        chosen |= matched
    return chosen
