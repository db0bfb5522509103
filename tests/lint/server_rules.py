"""Rules loaded into the server with the ``extraRules`` option, by the server tests."""

from __future__ import annotations

import ast

from loopwise.lint import Rule


class Exploding(Rule[ast.Call]):
    """Raises on every call, to check that one broken rule cannot take the others down."""

    code = "LW900"
    name = "exploding"
    summary = "raises on every call"
    node_types = (ast.Call,)

    def visit(self, node: ast.Call, checker: object) -> None:
        raise RuntimeError("boom")


class Counting(Rule[ast.Module]):
    """Reports each module once, numbering the checks it has seen: a new number is a new check."""

    code = "LW001"  # a selected code (the config refuses unknown ones); its message tells it apart
    name = "counting"
    summary = "numbers the checks"
    node_types = (ast.Module,)
    checks = 0

    def visit(self, node: ast.Module, checker: object) -> None:
        Counting.checks += 1
        checker.report(node.body[0], f"check #{Counting.checks}")  # type: ignore[attr-defined]


class ExplodingOptIn(Exploding):
    """The same, under an opt-in code: a rule the settings do not select must not run at all."""

    code = "LW016"
    name = "exploding-opt-in"
