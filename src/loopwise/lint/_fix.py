"""Fixes: text edits at ``ast`` positions, applied without overlap, checked by re-parsing.

A fix is a set of edits (replace a span of the source bytes) that a rule offers with a finding.
Positions are the parser's own (1-based lines, UTF-8 byte columns), so an edit touches exactly
the flagged code and everything else in the file, comments and formatting included, stays as
it was.
"""

from __future__ import annotations

import ast
import itertools
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Edit", "Fix", "apply_fixes", "line_starts"]

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace the source from (line, column) up to (end_line, end_column) with ``text``.

    Lines are 1-based and columns are 0-based UTF-8 byte offsets, as in ``ast`` nodes; an
    insertion has equal start and end.
    """

    line: int
    column: int
    end_line: int
    end_column: int
    text: str

    @classmethod
    def insert(cls, line: int, column: int, text: str) -> Edit:
        return cls(line, column, line, column, text)


@dataclass(frozen=True, slots=True)
class Fix:
    """What a finding's fix does: its edits, a one-line description, and whether it is safe.

    A *safe* fix keeps the program's meaning everywhere except the flagged bug; an *unsafe* one
    may change behaviour a reader must review, and is applied only with ``--unsafe-fixes``.
    """

    description: str
    edits: tuple[Edit, ...]
    safe: bool


def line_starts(source: bytes) -> list[int]:
    """The byte offset where each line starts (index 0 is line 1), with the parser's breaks."""
    return [0, *(match.end() for match in _LINE_BREAK.finditer(source))]


def _offset(starts: list[int], line: int, column: int, size: int) -> int:
    if line - 1 >= len(starts):
        return size
    return min(starts[line - 1] + column, size)


def _parses(source: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def apply_fixes(source: bytes, fixes: Iterable[Fix]) -> tuple[bytes, list[Fix]]:
    """``source`` with as many of ``fixes`` applied as do not overlap, and those applied.

    Line breaks in the edits' text become the file's own (``\r\n`` stays ``\r\n``). Fixes are
    taken in order; one whose span touches a span already taken is left for the
    next round (the caller re-checks and asks again). Two insertions at the same point count
    as touching, so their order is never a guess. A fix that would leave the file unparsable
    is dropped; the result always parses when ``source`` did.
    """
    fixes = list(fixes)
    together = _apply(source, fixes, check_each=False)
    if _parses(together[0]):
        return together  # one parse of the file, not one per fix (fix-all on a big file)
    return _apply(source, fixes, check_each=True)


def _apply(source: bytes, fixes: list[Fix], *, check_each: bool) -> tuple[bytes, list[Fix]]:
    starts = line_starts(source)
    size = len(source)
    newline = _newline(source)
    taken: list[tuple[int, int]] = []
    chosen: list[tuple[int, int, bytes]] = []
    applied: list[Fix] = []
    for fix in fixes:
        spans = [
            (
                _offset(starts, edit.line, edit.column, size),
                _offset(starts, edit.end_line, edit.end_column, size),
                edit.text.replace("\n", newline).encode("utf-8"),
            )
            for edit in fix.edits
        ]
        if not spans or any(_touches(start, end, taken) for start, end, _ in spans):
            continue
        if _touches_each_other(spans):
            continue
        if check_each and not _parses(_splice(source, [*chosen, *spans])):
            continue
        taken += [(start, end) for start, end, _ in spans]
        chosen += spans
        applied.append(fix)
    return _splice(source, chosen), applied


def _newline(source: bytes) -> str:
    """The file's own line break, so that inserted lines match it."""
    match = _LINE_BREAK.search(source)
    return match.group().decode("ascii") if match else "\n"


def _touches(start: int, end: int, taken: Sequence[tuple[int, int]]) -> bool:
    return any(start <= other_end and other_start <= end for other_start, other_end in taken)


def _touches_each_other(spans: list[tuple[int, int, bytes]]) -> bool:
    ordered = sorted(spans)
    return any(a[1] >= b[0] for a, b in itertools.pairwise(ordered))


def _splice(source: bytes, spans: list[tuple[int, int, bytes]]) -> bytes:
    out = []
    position = 0
    for start, end, text in sorted(spans, key=lambda span: (span[0], span[1])):
        out.append(source[position:start])
        out.append(text)
        position = end
    out.append(source[position:])
    return b"".join(out)
