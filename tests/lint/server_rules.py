"""A rule that always raises: loaded into the server with the ``extraRules`` option."""

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
