"""The shape of a rule and the registry of all of them."""

from __future__ import annotations

import ast
import inspect
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from loopwise.lint._runner import Checker

__all__ = ["Rule"]


class Rule:
    """A check run during the single walk over a module's tree.

    Subclasses set ``code`` (``LWnnn``, fixed forever), ``name`` (kebab-case), ``summary`` (one
    line), ``nodes`` (the node types they want to see) and implement :meth:`visit`. The class
    docstring is the rule's documentation, in ruff's sections: *What it does*, *Why is this bad?*,
    *Example*, *Use instead*. Rules keep no state between calls: the checker carries it.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    nodes: ClassVar[tuple[type[ast.AST], ...]]

    def visit(self, node: ast.AST, checker: Checker) -> None:
        raise NotImplementedError

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")
