"""Helpers the rules' fixes share: source text and indentation of nodes, whole-line checks.

Every helper returns None when the code is laid out in a way a text edit cannot handle safely
(a statement sharing its line with another, a body on the header's line): no fix is better
than a wrong one.
"""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._fix import line_starts

__all__ = [
    "indentation",
    "line_count",
    "line_length",
    "owns_its_lines",
    "segment",
    "segment_before",
]


def _line(checker: Checker, number: int) -> bytes | None:
    starts = line_starts(checker.source)
    if not 0 < number <= len(starts):
        return None
    end = starts[number] if number < len(starts) else len(checker.source)
    return checker.source[starts[number - 1] : end].rstrip(b"\r\n")


def line_length(checker: Checker, number: int) -> int:
    """The length in bytes of line ``number``, without its line break."""
    line = _line(checker, number)
    return len(line) if line is not None else 0


def line_count(checker: Checker) -> int:
    return len(line_starts(checker.source))


def segment(checker: Checker, node: ast.AST) -> str | None:
    """The source text of ``node`` exactly as written."""
    line, column = getattr(node, "lineno", None), getattr(node, "col_offset", None)
    end_line, end_column = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
    if line is None or column is None or end_line is None or end_column is None:
        return None
    starts = line_starts(checker.source)
    if end_line > len(starts):
        return None
    start = starts[line - 1] + column
    end = starts[end_line - 1] + end_column
    return checker.source[start:end].decode("utf-8", errors="replace")


def segment_before(checker: Checker, line: int, column: int) -> str | None:
    """The text of line ``line`` before byte ``column``."""
    text = _line(checker, line)
    return None if text is None else text[:column].decode("utf-8", errors="replace")


def indentation(checker: Checker, node: ast.stmt) -> str | None:
    """The blank text before ``node`` on its first line (None: something else is there)."""
    line = _line(checker, node.lineno)
    if line is None:
        return None
    prefix = line[: node.col_offset]
    if prefix.strip(b" \t"):
        return None
    return prefix.decode("ascii", errors="replace")


def owns_its_lines(checker: Checker, node: ast.stmt) -> bool:
    """Whether nothing but blanks and a comment shares ``node``'s first and last lines."""
    if indentation(checker, node) is None or node.end_lineno is None:
        return False
    last = _line(checker, node.end_lineno)
    if last is None or node.end_col_offset is None:
        return False
    rest = last[node.end_col_offset :].strip()
    return not rest or rest.startswith(b"#")
