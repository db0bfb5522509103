"""Baselines: today's findings recorded, so that only new ones are reported.

A finding is recorded by its fingerprint: the file, the code, the qualified name of the
enclosing function or class, and the flagged statement as the parser sees it (formatting and
comments do not matter), with a count for identical ones. So a finding keeps matching when
lines are added or removed above it and when other statements of the function change; it
stops matching when its own statement changes.
"""

from __future__ import annotations

import ast
import json
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopwise._exceptions import ConfigError
from loopwise.lint._ast import NAMED_SCOPES
from loopwise.lint._finding import Finding

__all__ = ["Baseline", "fingerprints"]

_VERSION = 1
_Key = tuple[str, str, str, str]  # path (relative to the baseline), code, scope, statement


def _relative(path: str, base: Path) -> str:
    absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    try:
        return Path(os.path.relpath(absolute, base)).as_posix()
    except ValueError:  # another drive on Windows
        return absolute.as_posix()


def fingerprints(
    findings: Sequence[Finding], base: Path, sources: Mapping[str, bytes] | None = None
) -> list[_Key]:
    """The fingerprint of each finding (same order), paths relative to ``base``.

    A file's text is read from disk unless ``sources`` has it (stdin: an editor's buffer).
    """
    trees: dict[str, tuple[ast.Module | None, list[str]]] = {}
    keys = []
    for finding in findings:
        if finding.path not in trees:
            trees[finding.path] = _parse(finding.path, (sources or {}).get(finding.path))
        tree, lines = trees[finding.path]
        scope, statement = _locate(tree, lines, finding)
        keys.append((_relative(finding.path, base), finding.code, scope, statement))
    return keys


def _parse(path: str, source: bytes | None) -> tuple[ast.Module | None, list[str]]:
    if source is None:
        try:
            source = Path(path).read_bytes()
        except OSError:
            return None, []
    lines = source.decode("utf-8", errors="replace").splitlines()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source), lines
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, lines


def _contains(node: ast.AST, finding: Finding) -> bool:
    start = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0) + 1)
    end = (getattr(node, "end_lineno", 0) or 0, (getattr(node, "end_col_offset", 0) or 0) + 1)
    return start <= (finding.line, finding.column) and (finding.end_line, finding.end_column) <= end


def _locate(tree: ast.Module | None, lines: list[str], finding: Finding) -> tuple[str, str]:
    """The enclosing scope's qualified name and the normalised flagged statement."""
    fallback = " ".join(lines[finding.line - 1].split()) if 0 < finding.line <= len(lines) else ""
    if tree is None:
        return "", fallback
    scope: list[str] = []
    statement: ast.stmt | None = None
    node: ast.AST = tree
    while True:
        inner = next(
            (
                child
                for child in ast.iter_child_nodes(node)
                if hasattr(child, "lineno") and _contains(child, finding)
            ),
            None,
        )
        if inner is None:
            break
        if isinstance(inner, NAMED_SCOPES):
            scope.append(inner.name)
        if isinstance(inner, ast.stmt):
            statement = inner
        node = inner
    simple = statement is not None and not hasattr(statement, "body")
    text = ast.unparse(statement) if simple and statement is not None else fallback
    return ".".join(scope), text


@dataclass
class Baseline:
    """Recorded fingerprints with counts; paths in the file are relative to its directory."""

    path: Path
    counts: Counter[_Key]

    @classmethod
    def load(cls, path: Path) -> Baseline:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the baseline: {exc.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError(
                f"{path}: not a loopwise baseline (write one with --write-baseline)"
            ) from None
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > _VERSION:
            raise ConfigError(
                f"{path}: written by a newer loopwise (format {version}; this one reads format "
                f"{_VERSION}): upgrade loopwise or write the baseline again"
            )
        if version != _VERSION:
            raise ConfigError(f"{path}: not a loopwise baseline (write one with --write-baseline)")
        counts: Counter[_Key] = Counter()
        try:
            for file, entries in data["findings"].items():
                for entry in entries:
                    key = (file, entry["code"], entry["scope"], entry["statement"])
                    counts[key] += int(entry.get("count", 1))
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: a baseline entry is malformed") from None
        return cls(path, counts)

    @classmethod
    def record(cls, path: Path, findings: Sequence[Finding]) -> Baseline:
        rule_findings = [f for f in findings if not f.is_error]
        return cls(path, Counter(fingerprints(rule_findings, path.resolve().parent)))

    def save(self) -> None:
        by_file: dict[str, list[dict[str, object]]] = {}
        for (file, code, scope, statement), count in sorted(self.counts.items()):
            entry: dict[str, object] = {"code": code, "scope": scope, "statement": statement}
            if count > 1:
                entry["count"] = count
            by_file.setdefault(file, []).append(entry)
        text = json.dumps({"version": _VERSION, "findings": by_file}, indent=2) + "\n"
        try:
            self.path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the baseline: {exc.strerror}") from None

    def filter(
        self,
        findings: Sequence[Finding],
        checked: Sequence[str],
        sources: Mapping[str, bytes] | None = None,
    ) -> tuple[list[Finding], int, list[_Key]]:
        """(the findings not in the baseline, how many were hidden, the stale entries).

        An entry is stale when its file was among the ``checked`` paths and nothing matched it.
        ``sources`` gives the text of files not read from disk (stdin).
        """
        left = Counter(self.counts)
        base = self.path.resolve().parent
        rule_findings = [f for f in findings if not f.is_error]
        keys = fingerprints(rule_findings, base, sources)
        hidden_ids = set()
        for finding, key in zip(rule_findings, keys, strict=True):
            if left[key] > 0:
                left[key] -= 1
                hidden_ids.add(id(finding))
        new = [f for f in findings if id(f) not in hidden_ids]
        files = {_relative(path, base) for path in checked}
        stale = sorted(key for key, count in left.items() if key[0] in files for _ in range(count))
        return new, len(hidden_ids), stale

    def __len__(self) -> int:
        return sum(self.counts.values())
