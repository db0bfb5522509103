"""Text from a client, made safe to write into a log line."""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """``text`` with every non-printable character (CR, LF, NUL, other controls, line and
    paragraph separators) written as a Python escape, so it cannot end or forge a log line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
