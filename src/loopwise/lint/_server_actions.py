"""What the editor server offers on a finding: its diagnostic, code actions and hover text.

Findings carry the parser's positions (1-based lines, UTF-8 byte columns); the client counts
in the position encoding agreed at start-up (UTF-16 unless it asked otherwise), so every
position is converted through the line's text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Protocol

from lsprotocol import types

from loopwise.lint._add_noqa import add_noqa
from loopwise.lint._docs import rule_page
from loopwise.lint._finding import Finding
from loopwise.lint._fix import apply_fixes
from loopwise.lint.rules import rule_by_code

__all__ = [
    "FIX_ALL_KIND",
    "Lines",
    "code_actions",
    "diagnostic",
    "docs_url",
    "hover_text",
]

FIX_ALL_KIND = "source.fixAll.loopwise"
SOURCE = "loopwise"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class _Codec(Protocol):
    def client_num_units(self, string: str) -> int: ...


class Lines:
    """A text's lines, to turn parser positions into the client's and back."""

    def __init__(self, text: str, codec: _Codec) -> None:
        self.text = text
        self.codec = codec
        self.starts = [0, *(match.end() for match in _LINE_BREAK.finditer(text))]

    def line(self, number: int) -> str:
        """Line ``number`` (0-based) without its line break ("" past the end)."""
        if number >= len(self.starts):
            return ""
        end = self.starts[number + 1] if number + 1 < len(self.starts) else len(self.text)
        return self.text[self.starts[number] : end].rstrip("\r\n")

    def position(self, line: int, byte_column: int) -> types.Position:
        """The client position of a 1-based line and a 0-based UTF-8 byte column."""
        index = max(min(line - 1, len(self.starts) - 1), 0)
        prefix = _prefix_of_bytes(self.line(index), byte_column)
        return types.Position(line=index, character=self.codec.client_num_units(prefix))

    def offset_position(self, offset: int) -> types.Position:
        """The client position of a character offset into the text."""
        index = max(i for i, start in enumerate(self.starts) if start <= offset)
        prefix = self.text[self.starts[index] : offset]
        return types.Position(line=index, character=self.codec.client_num_units(prefix))

    def finding_range(self, finding: Finding) -> types.Range:
        start = self.position(finding.line, finding.column - 1)
        end = self.position(finding.end_line, finding.end_column - 1)
        if (end.line, end.character) <= (start.line, start.character):
            # a point (syntax errors): mark to the end of the line, or one character
            length = self.codec.client_num_units(self.line(start.line))
            character = length if length > start.character else start.character + 1
            end = types.Position(line=start.line, character=character)
        return types.Range(start=start, end=end)

    def edit_to(self, new_text: str) -> types.TextEdit:
        """One edit turning this text into ``new_text``: the changed middle only."""
        old = self.text
        prefix = 0
        limit = min(len(old), len(new_text))
        while prefix < limit and old[prefix] == new_text[prefix]:
            prefix += 1
        suffix = 0
        while (
            suffix < limit - prefix
            and old[len(old) - 1 - suffix] == new_text[len(new_text) - 1 - suffix]
        ):
            suffix += 1
        start = self.offset_position(prefix)
        end = self.offset_position(len(old) - suffix)
        return types.TextEdit(
            range=types.Range(start=start, end=end),
            new_text=new_text[prefix : len(new_text) - suffix],
        )


def _prefix_of_bytes(line: str, byte_column: int) -> str:
    """The characters of ``line`` within its first ``byte_column`` UTF-8 bytes.

    The buffer went to the parser encoded with ``surrogatepass`` (an editor may send lone
    surrogates), so its characters are counted the same way here.
    """
    if line.isascii():
        return line[: max(byte_column, 0)]
    count = 0
    for index, char in enumerate(line):
        count += len(char.encode("utf-8", "surrogatepass"))
        if count > byte_column:
            return line[:index]
    return line


@functools.cache
def _repository() -> str | None:
    """loopwise's repository address from its package metadata, when it names one."""
    try:
        urls = metadata.metadata("loopwise").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() in ("repository", "source", "source code", "homepage"):
            return str(url).strip().rstrip("/")
    return None


def _docs_directory() -> Path | None:
    """docs/rules of a source checkout (an editable install), when it is there."""
    candidate = Path(__file__).resolve().parents[3] / "docs" / "rules"
    return candidate if candidate.is_dir() else None


def docs_url(code: str) -> str | None:
    """The address of a rule's docs page: on the repository, or a local file; None if neither."""
    repository = _repository()
    if repository is not None:
        return f"{repository}/blob/main/docs/rules/{code}.md"
    directory = _docs_directory()
    if directory is not None and (directory / f"{code}.md").is_file():
        return (directory / f"{code}.md").as_uri()
    return None


def diagnostic(finding: Finding, lines: Lines) -> types.Diagnostic:
    url = docs_url(finding.code) if not finding.is_error else None
    return types.Diagnostic(
        range=lines.finding_range(finding),
        message=finding.message,
        severity=types.DiagnosticSeverity.Error
        if finding.is_error
        else types.DiagnosticSeverity.Warning,
        code=finding.code,
        code_description=types.CodeDescription(href=url) if url else None,
        source=SOURCE,
        data={"line": finding.line, "column": finding.column, "code": finding.code},
    )


def _overlaps(finding_range: types.Range, wanted: types.Range) -> bool:
    start = (finding_range.start.line, finding_range.start.character)
    end = (finding_range.end.line, finding_range.end.character)
    return (
        start <= (wanted.end.line, wanted.end.character)
        and (
            wanted.start.line,
            wanted.start.character,
        )
        <= end
    )


def code_actions(
    uri: str,
    lines: Lines,
    findings: Sequence[Finding],
    fix_all_text: str | None,
    wanted: types.Range,
    only: Sequence[str] | None,
) -> list[types.CodeAction]:
    """The quick fixes for the findings under ``wanted`` and the file's "fix all" action.

    ``findings`` carry their fixes; ``fix_all_text`` is the text with every safe fix applied
    (None when nothing would change). ``only`` is the client's filter of action kinds.
    """
    text = lines.text
    source = text.encode("utf-8", "surrogatepass")
    actions: list[types.CodeAction] = []

    def wants(kind: str) -> bool:
        return only is None or any(kind == k or kind.startswith(k + ".") for k in only)

    def action(
        title: str, kind: str, new_source: bytes, found: Finding | None, preferred: bool
    ) -> types.CodeAction:
        new_text = new_source.decode("utf-8", errors="surrogateescape")
        edit = types.WorkspaceEdit(changes={uri: [lines.edit_to(new_text)]})
        return types.CodeAction(
            title=title,
            kind=kind,
            diagnostics=[diagnostic(found, lines)] if found else None,
            edit=edit,
            is_preferred=preferred or None,
        )

    if wants(types.CodeActionKind.QuickFix):
        for finding in findings:
            if finding.is_error or not _overlaps(lines.finding_range(finding), wanted):
                continue
            if finding.fix is not None:
                fixed, applied = apply_fixes(source, [finding.fix])
                if applied:
                    safety = "" if finding.fix.safe else " (unsafe: review it)"
                    title = f"Fix {finding.code}: {finding.fix.description}{safety}"
                    actions.append(
                        action(title, types.CodeActionKind.QuickFix, fixed, finding, True)
                    )
            noqa, added = add_noqa(source, [finding])
            if added:
                title = f"Add `# noqa: {finding.code}`"
                actions.append(action(title, types.CodeActionKind.QuickFix, noqa, finding, False))
    if fix_all_text is not None and (wants(FIX_ALL_KIND) or wants(types.CodeActionKind.QuickFix)):
        title = "Fix all safe loopwise fixes in this file"
        kind = FIX_ALL_KIND if wants(FIX_ALL_KIND) else types.CodeActionKind.QuickFix
        actions.append(action(title, kind, fix_all_text.encode("utf-8"), None, False))
    return actions


def hover_text(findings: Sequence[Finding], lines: Lines, at: types.Position) -> str | None:
    """The docs of the rules whose findings cover ``at``, as Markdown (None: no finding)."""
    pages = []
    seen = set()
    point = types.Range(start=at, end=at)
    for finding in findings:
        if finding.is_error or finding.code in seen:
            continue
        if not _overlaps(lines.finding_range(finding), point):
            continue
        rule = rule_by_code(finding.code)
        if rule is None:
            continue
        seen.add(finding.code)
        pages.append(rule_page(rule).split("\n<!--", 1)[0].rstrip())
    return "\n\n---\n\n".join(pages) if pages else None
