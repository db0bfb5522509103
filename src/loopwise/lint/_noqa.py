"""``# noqa`` comments: which findings they suppress, and the ones that are wrong or unused.

Only real comments count: ``"# noqa"`` inside a string suppresses nothing. Codes of other
tools (``# noqa: E501``) are left to them: only ``LW`` codes are checked for being known
(LW101) or used (LW100).
"""

from __future__ import annotations

import re
import tokenize
from collections.abc import Collection
from dataclasses import dataclass

from loopwise.lint._finding import Finding
from loopwise.lint._fix import Edit, Fix

__all__ = ["UNKNOWN_NOQA", "UNUSED_NOQA", "apply_noqa"]

UNUSED_NOQA = "LW100"
UNKNOWN_NOQA = "LW101"

_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:\s*,\s*[A-Za-z]+[0-9]+)*))?", re.IGNORECASE
)
_CODE = re.compile(r"[A-Za-z]+[0-9]+")
# a noqa that names an LW code somewhere on its line: only then can LW100/LW101 have work
_OUR_NOQA = re.compile(rb"noqa[ \t]*:[^\r\n]*?lw[0-9]", re.IGNORECASE)
_NOQA_TEXT = re.compile(rb"noqa", re.IGNORECASE)


def _on_noqa_line(findings: list[Finding], source: bytes) -> bool:
    """Whether a finding starts or ends on a line with "noqa" in its text."""
    if not findings:
        return False
    lines = source.splitlines()
    return any(
        0 < number <= len(lines) and _NOQA_TEXT.search(lines[number - 1])
        for finding in findings
        for number in (finding.line, finding.end_line)
    )


@dataclass(slots=True)
class _Directive:
    """One ``# noqa`` comment: where it is and which codes it names (None: every code)."""

    line: int
    column: int  # byte column of the comment's `#`
    comment: str
    match: re.Match[str]
    codes: list[str] | None
    used: set[str]
    blank_before: int  # bytes of blank space between the code and the comment


def _directives(source: bytes) -> dict[int, _Directive]:
    """The ``# noqa`` comments of the file, by line, read from its tokens."""
    found: dict[int, _Directive] = {}
    lines = source.splitlines()
    try:
        # the parser's line breaks (`\r` alone too), not those of `BytesIO.readline` (`\n`)
        readline = iter(source.splitlines(keepends=True)).__next__
        comments = [
            (token.start, token.string)
            for token in tokenize.tokenize(readline)
            if token.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
        # It parsed, so this is rare: read each line's text as if it were a comment, as the
        # checker did before comments were read from tokens.
        comments = []
        for number, raw in enumerate(lines, start=1):
            text = raw.decode("utf-8", errors="replace")
            hit = _NOQA.search(text)
            if hit is not None:
                comments.append(((number, hit.start()), text[hit.start() :]))
    for (line, column), comment in comments:
        match = _NOQA.search(comment)
        if match is None:
            continue
        prefix = lines[line - 1].decode("utf-8", errors="replace")[:column]
        listed = match.group("codes")
        codes = None if listed is None else [c.upper() for c in _CODE.findall(listed)]
        blank = len(prefix) - len(prefix.rstrip(" \t")) if prefix.strip() else 0
        found[line] = _Directive(
            line, len(prefix.encode("utf-8")), comment, match, codes, set(), blank
        )
    return found


def apply_noqa(
    findings: list[Finding],
    source: bytes,
    known: Collection[str],
    path: str,
    *,
    fixes: bool = False,
) -> list[Finding]:
    """The findings no ``# noqa`` on their first or last line suppresses, plus the directives'
    own findings: an unknown ``LW`` code (LW101) and an ``LW`` code that suppressed nothing
    (LW100, with a fix that removes it when ``fixes`` is asked for).

    Tokenizing is slow next to the rest of the check, so a file without "noqa" in its text
    costs one substring search.
    """
    if b"oqa" not in source and b"OQA" not in source:
        return findings
    if _OUR_NOQA.search(source) is None and not _on_noqa_line(findings, source):
        return findings  # no LW code in any noqa, and no finding's line has one: nothing to do
    directives = _directives(source)
    if not directives:
        return findings
    kept = []
    for finding in findings:
        suppressed = False
        for number in {finding.line, finding.end_line}:
            directive = directives.get(number)
            if directive is not None and (
                directive.codes is None or finding.code in directive.codes
            ):
                directive.used.add(finding.code)
                suppressed = True
        if not suppressed:
            kept.append(finding)
    for directive in directives.values():
        kept += _directive_findings(directive, path, known, fixes)
    return kept


def _directive_findings(
    directive: _Directive, path: str, known: Collection[str], fixes: bool
) -> list[Finding]:
    if directive.codes is None:
        return []
    ours = [code for code in directive.codes if code.startswith("LW")]
    unknown = [code for code in ours if code not in known]
    unused = [code for code in ours if code in known and code not in directive.used]
    found = []
    line = directive.line
    column = directive.column + 1
    end_column = column + len(directive.comment.encode("utf-8"))
    for code in unknown:
        message = f"`# noqa` names `{code}`, which is no loopwise rule: it suppresses nothing"
        found.append(Finding(path, line, column, UNKNOWN_NOQA, message, line, end_column))
    if unused:
        names = ", ".join(f"`{code}`" for code in unused)
        message = f"unused `# noqa` code{'s' if len(unused) > 1 else ''} {names}: nothing to hide"
        fix = _removal(directive, set(unused)) if fixes else None
        found.append(Finding(path, line, column, UNUSED_NOQA, message, line, end_column, fix))
    return found


def _removal(directive: _Directive, unused: set[str]) -> Fix:
    """Drop the unused codes from the comment, or the ``# noqa`` itself when none is left."""
    assert directive.codes is not None
    left = [code for code in directive.codes if code not in unused]
    match = directive.match
    comment = directive.comment
    if left:
        replacement = comment[: match.start()] + "# noqa: " + ", ".join(left)
        replacement += comment[match.end() :]
    else:
        rest = (comment[: match.start()] + comment[match.end() :]).strip()
        replacement = rest if rest.startswith("#") else ("# " + rest if rest else "")
    start = directive.column
    end = start + len(comment.encode("utf-8"))
    if not replacement:
        start -= directive.blank_before
    return Fix(
        "remove the unused `# noqa` codes",
        (Edit(directive.line, start, directive.line, end, replacement),),
        safe=True,
    )
