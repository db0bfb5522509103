"""``[tool.loopwise]`` in pyproject.toml, merged with the command line."""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise._exceptions import ConfigError

__all__ = ["DEFAULT_TEST_PATHS", "Config", "find_config", "load_config", "resolve_codes"]

KNOWN_KEYS = ("exclude", "extend-exclude", "ignore", "per-file-ignores", "select", "test-paths")
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
    """Settings for a check. Exclude patterns are gitignore-style, relative to ``root``."""

    root: Path
    source: Path | None = None
    select: tuple[str, ...] = ("LW",)
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    test_paths: tuple[str, ...] = DEFAULT_TEST_PATHS


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start`` that has a ``[tool.loopwise]`` table."""
    for directory in [start, *start.parents]:
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if "loopwise" in data.get("tool", {}):
                return candidate
    return None


def load_config(path: Path | None, codes: Sequence[str]) -> Config:
    """Read and validate ``[tool.loopwise]`` from ``path`` (defaults when None).

    Raises :class:`ConfigError` with one line naming the file, the key and what is accepted.
    """
    if path is None:
        return Config(root=Path.cwd())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("loopwise", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.loopwise] must be a table")
    unknown = sorted(set(table) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key '{unknown[0]}' in [tool.loopwise] "
            f"(known keys: {', '.join(KNOWN_KEYS)})"
        )
    where = f"{path}: [tool.loopwise]"
    select = _strings(table, "select", where) or ("LW",)
    ignore = _strings(table, "ignore", where)
    resolve_codes(select, codes, f"{where} select")
    resolve_codes(ignore, codes, f"{where} ignore")
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
    return Config(
        root=path.parent,
        test_paths=test_paths,
        source=path,
        select=select,
        ignore=ignore,
        exclude=exclude,
        per_file_ignores=per_file,
    )


def _strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f'{where} {key} must be a list of strings, like ["LW001"]')
    return tuple(value)


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
