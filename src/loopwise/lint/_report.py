"""Findings in every output format: full, concise, JSON, JSON lines, SARIF 2.1.0, GitHub
Actions annotations, GitLab Code Quality and JUnit XML."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loopwise._version import __version__
from loopwise.lint._finding import Finding
from loopwise.lint._rule import Rule

__all__ = ["FORMATS", "render"]

FORMATS = ("full", "concise", "text", "json", "json-lines", "sarif", "github", "gitlab", "junit")

SourceLines = Callable[[str], list[str] | None]
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def render(
    findings: Sequence[Finding],
    rules: Sequence[type[Rule[Any]]],
    fmt: str,
    *,
    color: bool = False,
    source_lines: SourceLines | None = None,
) -> str:
    """The findings in format ``fmt``; the text is empty when there is nothing to print.

    ``full`` shows each flagged line (read through ``source_lines(path)``) with a caret under
    the flagged code; ``color`` adds ANSI colours to it. ``text`` is ``concise``'s old name.
    """
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    if fmt == "json-lines":
        return "".join(json.dumps(f.to_dict()) + "\n" for f in findings)
    if fmt == "sarif":
        return json.dumps(_sarif(findings, rules), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
    if fmt == "gitlab":
        return json.dumps(_gitlab(findings, source_lines), indent=2) + "\n"
    if fmt == "junit":
        return _junit(findings)
    if fmt == "full":
        by_code = {rule.code: rule for rule in rules}
        return "".join(_full(f, by_code, color, source_lines) for f in findings)
    return "".join(_text(f) + "\n" for f in findings)


_BOLD, _RED, _CYAN, _BLUE, _DIM, _RESET = (
    "\x1b[1m",
    "\x1b[1;31m",
    "\x1b[36m",
    "\x1b[1;34m",
    "\x1b[2m",
    "\x1b[0m",
)


def _full(
    finding: Finding,
    rules: dict[str, type[Rule[Any]]],
    color: bool,
    source_lines: SourceLines | None,
) -> str:
    def paint(style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    location = paint(_BOLD, f"{finding.path}:{finding.line}:{finding.column}:")
    rule = rules.get(finding.code)
    if finding.is_error or rule is None:
        return f"{location} {paint(_RED, finding.message)}\n\n"
    fixable = " [*]" if rule.fix_safety in ("safe", "sometimes") else ""
    head = f"{location} {paint(_RED, finding.code)}{fixable} {finding.message}\n"
    lines = source_lines(finding.path) if source_lines else None
    if not lines or not 0 < finding.line <= len(lines):
        return head + "\n"
    raw = lines[finding.line - 1].rstrip()
    text = raw.expandtabs(4)
    number = str(finding.line)
    gutter = " " * len(number)
    start = _display_column(raw, finding.column - 1)
    if finding.end_line == finding.line:
        end = _display_column(raw, finding.end_column - 1)
    else:
        end = len(text)
    width = max(end - start, 1)
    fix_note = {
        "safe": "fix: `--fix`",
        "sometimes": "fix: `--fix`, or `--fix --unsafe-fixes` for some",
        "unsafe": "fix: `--fix --unsafe-fixes`",
    }.get(rule.fix_safety or "", "no automatic fix")
    return (
        head
        + paint(_BLUE, f"{gutter} |")
        + "\n"
        + paint(_BLUE, f"{number} |")
        + f" {text}\n"
        + paint(_BLUE, f"{gutter} |")
        + " "
        + " " * start
        + paint(_RED, "^" * width)
        + " "
        + paint(_CYAN, rule.name)
        + paint(_DIM, f" ({fix_note})")
        + "\n\n"
    )


def _display_column(line: str, byte_column: int) -> int:
    """Where a UTF-8 byte offset of ``line`` (the parser's columns) shows, tabs expanded."""
    prefix = line.encode("utf-8")[: max(byte_column, 0)].decode("utf-8", errors="ignore")
    return len(prefix.expandtabs(4))


def _gitlab(
    findings: Sequence[Finding], source_lines: SourceLines | None
) -> list[dict[str, object]]:
    """Code Quality issues. A fingerprint is made of the path, the code and the flagged line's
    text (whitespace normalised), numbered among identical ones: it survives lines added or
    removed elsewhere, which GitLab needs to match a merge request's issues to the target's.
    (Not the message: some name a line number.)"""
    seen: dict[str, int] = {}
    issues: list[dict[str, object]] = []
    lines_of: dict[str, list[str] | None] = {}
    for finding in findings:
        if source_lines is not None and finding.path not in lines_of:
            lines_of[finding.path] = source_lines(finding.path)
        lines = lines_of.get(finding.path)
        if lines is not None and 0 < finding.line <= len(lines):
            flagged = " ".join(lines[finding.line - 1].split())
        else:
            flagged = finding.message
        raw = f"{finding.path}:{finding.code}:{flagged}"
        seen[raw] = seen.get(raw, 0) + 1
        fingerprint = hashlib.md5(f"{raw}:{seen[raw]}".encode(), usedforsecurity=False)
        issues.append(
            {
                "description": f"{finding.code} {finding.message}",
                "check_name": finding.code,
                "fingerprint": fingerprint.hexdigest(),
                "severity": "major" if finding.is_error else "minor",
                "location": {
                    "path": finding.path,
                    "lines": {"begin": finding.line, "end": finding.end_line},
                },
            }
        )
    return issues


def quoteattr(value: str) -> str:
    """``value`` as a double-quoted XML attribute (xml.sax.saxutils costs ~80 ms to import).

    Characters XML 1.0 cannot hold at all (control characters, in a file name say) become
    U+FFFD, so the document stays well-formed.
    """
    escaped = (
        _XML_INVALID.sub("\ufffd", value)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )
    escaped = escaped.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;")
    return f'"{escaped}"'


def _junit(findings: Sequence[Finding]) -> str:
    by_file: dict[str, list[Finding]] = {}
    for finding in findings:
        by_file.setdefault(finding.path, []).append(finding)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="loopwise" tests="{len(findings)}" failures="{len(findings)}">',
    ]
    for path, found in by_file.items():
        out.append(
            f'  <testsuite name={quoteattr(path)} tests="{len(found)}" failures="{len(found)}">'
        )
        for finding in found:
            where = f"{finding.path}:{finding.line}:{finding.column}"
            out.append(
                f"    <testcase name={quoteattr(f'{finding.code} {where}')} "
                f'classname={quoteattr(path)} line="{finding.line}">'
            )
            message = quoteattr(f"{finding.code} {finding.message}")
            out.append(f"      <failure message={message} type={quoteattr(finding.code)}/>")
            out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _text(finding: Finding) -> str:
    location = f"{finding.path}:{finding.line}:{finding.column}:"
    if finding.is_error:
        return f"{location} {finding.message}"
    return f"{location} {finding.code} {finding.message}"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _github(finding: Finding) -> str:
    level = "error" if finding.is_error else "warning"
    properties = ",".join(
        [
            f"file={_escape_property(finding.path)}",
            f"line={finding.line}",
            f"col={finding.column}",
            f"endLine={finding.end_line}",
            f"endColumn={finding.end_column}",
            f"title={_escape_property(finding.code)}",
        ]
    )
    return f"::{level} {properties}::{_escape_data(finding.code + ' ' + finding.message)}"


def _uri(path: str) -> str:
    """A SARIF ``artifactLocation.uri``: a URI reference, percent-encoded (`my%20app/a.py`)."""
    import urllib.parse  # only SARIF needs it

    if os.path.isabs(path):
        return Path(path).as_uri()
    return urllib.parse.quote(path.replace(os.sep, "/"))


def _sarif(findings: Sequence[Finding], rules: Sequence[type[Rule[Any]]]) -> dict[str, object]:
    rule_index = {rule.code: index for index, rule in enumerate(rules)}
    results = []
    for finding in findings:
        result: dict[str, object] = {
            "ruleId": finding.code,
            "level": "error" if finding.is_error else "warning",
            "message": {"text": finding.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(finding.path)},
                        "region": {
                            "startLine": finding.line,
                            "startColumn": finding.column,
                            "endLine": finding.end_line,
                            "endColumn": finding.end_column,
                        },
                    }
                }
            ],
        }
        if finding.code in rule_index:
            result["ruleIndex"] = rule_index[finding.code]
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "loopwise",
                        "version": __version__,
                        "rules": [
                            {
                                "id": rule.code,
                                "name": rule.name,
                                "shortDescription": {"text": rule.summary},
                                "fullDescription": {"text": rule.documentation()},
                                "help": {"text": f"loopwise rule {rule.code}"},
                                "defaultConfiguration": {"level": "warning"},
                            }
                            for rule in rules
                        ],
                    }
                },
                "results": results,
            }
        ],
    }
