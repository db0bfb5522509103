"""A rule that always raises: loaded into the server with the ``extraRules`` option."""

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
