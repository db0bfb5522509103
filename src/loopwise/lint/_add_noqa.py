"""``--add-noqa``: write ``# noqa: CODE`` on the line of every current finding."""

from __future__ import annotations

import io
import tokenize
from collections.abc import Sequence

from loopwise.lint._finding import Finding
from loopwise.lint._fix import _parses, line_starts
from loopwise.lint._noqa import _NOQA

__all__ = ["add_noqa"]


def _scan(source: bytes) -> tuple[set[int], dict[int, tuple[int, str]]]:
    """(lines where a comment cannot go at the end: inside a string or continued with ``\\``,
    the comment of each line as (column, text)), columns in the text decoded as ``add_noqa``
    decodes it."""
    text = source.decode("utf-8", errors="surrogateescape")
    bom = 1 if text.startswith("\ufeff") else 0  # a column on line 1 counts it
    unsafe: set[int] = set()
    comments: dict[int, tuple[int, str]] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text[bom:]).readline):
            if token.type == tokenize.STRING or token.type == getattr(
                tokenize, "FSTRING_MIDDLE", -1
            ):
                unsafe.update(range(token.start[0], token.end[0]))
            elif token.type == tokenize.COMMENT:
                row, column = token.start
                comments[row] = (column + (bom if row == 1 else 0), token.string)
    except (tokenize.TokenError, SyntaxError):
        return set(range(1, source.count(b"\n") + 2)), {}
    for number, line in enumerate(source.splitlines(), start=1):
        if line.rstrip().endswith(b"\\"):
            unsafe.add(number)
    return unsafe, comments


def add_noqa(source: bytes, findings: Sequence[Finding]) -> tuple[bytes, int]:
    """``source`` with the findings' codes added to a ``# noqa`` on their line, and how many
    comments were added or extended. A line that already has a bare ``# noqa`` is left as it
    is; the result always parses (otherwise ``source`` comes back unchanged)."""
    unsafe, comments = _scan(source)
    wanted: dict[int, set[str]] = {}
    for finding in findings:
        line = next((n for n in (finding.line, finding.end_line) if n not in unsafe), None)
        if line is not None:
            wanted.setdefault(line, set()).add(finding.code)
    starts = line_starts(source)
    lines = [
        source[start:end] for start, end in zip(starts, [*starts[1:], len(source)], strict=True)
    ]
    changed = 0
    for number, codes in wanted.items():
        if number > len(lines):
            continue
        raw = lines[number - 1]
        body = raw.rstrip(b"\r\n")
        ending = raw[len(body) :]
        text = body.decode("utf-8", errors="surrogateescape")
        # Only a real comment counts: a noqa written inside a string on the line is data.
        column, comment = comments.get(number, (len(text), ""))
        match = _NOQA.search(comment)
        if match is not None:
            start, end = column + match.start(), column + match.end()
        if match is not None and match.group("codes") is None:
            continue
        if match is not None:
            present = [c.strip().upper() for c in match.group("codes").split(",")]
            merged = present + sorted(codes - set(present))
            if merged == present:
                continue
            text = text[:start] + "# noqa: " + ", ".join(merged) + text[end:]
        else:
            text = text.rstrip() + "  # noqa: " + ", ".join(sorted(codes))
        lines[number - 1] = text.encode("utf-8", errors="surrogateescape") + ending
        changed += 1
    result = b"".join(lines)
    if changed and not _parses(result):
        return source, 0
    return result, changed
