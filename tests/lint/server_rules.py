"""Rules loaded into the server with the ``extraRules`` option, by the server tests."""

from __future__ import annotations

import ast

from loopwise.lint import Rule


class Exploding(Rule):
    """Raises on every call, to check that one broken rule cannot take the others down."""

    code = "LW900"
    name = "exploding"
    summary = "raises on every call"
    nodes = (ast.Call,)

    def visit(self, node: ast.AST, checker: object) -> None:
        raise RuntimeError("boom")


class Counting(Rule):
    """Reports each module once, numbering the checks it has seen: a new number is a new check."""

    code = "LW001"  # a selected code (the config refuses unknown ones); its message tells it apart
    name = "counting"
    summary = "numbers the checks"
    nodes = (ast.Module,)
    checks = 0

    def visit(self, node: ast.AST, checker: object) -> None:
        Counting.checks += 1
        checker.report(node.body[0], f"check #{Counting.checks}")  # type: ignore[attr-defined]
