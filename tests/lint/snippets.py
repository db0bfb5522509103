"""Helpers for the per-rule test modules: one rule on a snippet, stdin fed with a text."""

from __future__ import annotations

import io
import sys
import textwrap

import pytest

from loopwise.lint import Finding, check_source


def check_rule(source: str, code: str) -> list[Finding]:
    """The findings of rule ``code`` alone for ``source`` (dedented), checked on its own."""
    return check_source(textwrap.dedent(source), path="mod.py", select=[code])


def feed_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Make ``text`` what the command reads from ``-``."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
