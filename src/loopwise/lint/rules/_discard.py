"""When a value is thrown away: shared by the rules on discarded tasks and results (LW004, LW006).

A value is discarded when it is the whole of an expression statement, when it is assigned to
``_``, or when it is assigned to a local variable of a function that never reads it. Anything
that might be a read (a nested function or class using the name, ``locals()``, ``eval``...)
counts as a read: precision first.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from loopwise.lint._ast import single_name_target
from loopwise.lint._checker import Checker

__all__ = ["Discard", "discarded_value"]

# Calls that can read any local by name: a function using one of these reads everything.
_READS_EVERY_LOCAL = frozenset({"locals", "vars", "eval", "exec"})


@dataclass(frozen=True, slots=True)
class Discard:
    """How a value was discarded: ``name`` is the variable it went to, or None for a statement."""

    value: ast.expr
    name: str | None


def discarded_value(node: ast.AST, checker: Checker) -> Discard | None:
    """The value that statement ``node`` throws away, if it certainly does.

    ``node`` is an ``Expr``, ``Assign`` or ``AnnAssign``: the statement forms that can discard.
    """
    if isinstance(node, ast.Expr):
        return Discard(node.value, None)
    if not isinstance(node, ast.Assign | ast.AnnAssign):
        return None
    target = single_name_target(node)
    if node.value is None or target is None:
        return None
    value = node.value
    if _never_read(target.id, checker):
        return Discard(value, target.id)
    return None


def _never_read(name: str, checker: Checker) -> bool:
    function = checker.function
    if function is not None and function.binds(name) and not _in_class_body(checker):
        return not _is_read(name, function.node)
    # Module or class level, or a global/nonlocal name: only `_` is certainly a throw-away.
    return name == "_"


def _in_class_body(checker: Checker) -> bool:
    """Whether the statement being visited sits in a class body nested in the function."""
    for parent in reversed(checker.parents):
        if isinstance(parent, ast.ClassDef):
            return True
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
    return False


def _is_read(name: str, function: ast.AST) -> bool:
    """Whether ``name`` may be read anywhere in ``function``, nested scopes included."""
    for child in ast.walk(function):
        if (
            isinstance(child, ast.Name)
            and isinstance(child.ctx, ast.Load)
            and (child.id == name or child.id in _READS_EVERY_LOCAL)
        ):
            return True
    return False
