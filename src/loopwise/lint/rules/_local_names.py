"""Where a local name is read in its function: for rules about a value that must be consumed."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from loopwise.lint._ast import SCOPE_NODES, child_nodes

__all__ = ["INERT_PARENTS", "all_name_uses", "name_uses"]

# Where a read of a name neither consumes nor hands on the value it holds: a comparison,
# `not x`, an f-string, or the bare test of an `if`/`while`/`assert`.
INERT_PARENTS = (ast.Compare, ast.UnaryOp, ast.FormattedValue, ast.If, ast.While, ast.Assert)


def name_uses(
    function: ast.FunctionDef | ast.AsyncFunctionDef, name: str
) -> Iterator[tuple[ast.Name, ast.AST, bool]]:
    """Each ``Name`` node for ``name`` in ``function``'s body, its parent node, and whether it
    sits in a nested function, lambda or class (which may run at any time, or never)."""
    for found in all_name_uses(function):
        if found[0].id == name:
            yield found


def all_name_uses(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
) -> Iterator[tuple[ast.Name, ast.AST, bool]]:
    """Every ``Name`` node in ``function``'s body, as :func:`name_uses` gives them."""
    stack: list[tuple[ast.AST, ast.AST, bool]] = [
        (statement, function, False) for statement in function.body
    ]
    while stack:
        node, parent, nested = stack.pop()
        if isinstance(node, ast.Name):
            yield node, parent, nested
            continue
        inner = nested or isinstance(node, SCOPE_NODES)
        stack.extend((child, node, inner) for child in child_nodes(node))
