"""Findings as text, JSON, SARIF 2.1.0 or GitHub Actions annotations."""

from __future__ import annotations

import json
from collections.abc import Sequence

from loopwise._version import __version__
from loopwise.lint._finding import Finding
from loopwise.lint._rule import Rule

__all__ = ["FORMATS", "render"]

FORMATS = ("text", "json", "sarif", "github")


def render(findings: Sequence[Finding], rules: Sequence[type[Rule]], fmt: str) -> str:
    """The findings in format ``fmt``; the text is empty when there is nothing to print."""
    if fmt == "json":
        return json.dumps([f.to_dict() for f in findings], indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(_sarif(findings, rules), indent=2) + "\n"
    if fmt == "github":
        return "".join(_github(f) + "\n" for f in findings)
    return "".join(_text(f) + "\n" for f in findings)


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


def _sarif(findings: Sequence[Finding], rules: Sequence[type[Rule]]) -> dict[str, object]:
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
                        "artifactLocation": {"uri": finding.path},
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
