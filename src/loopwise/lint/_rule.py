"""The shape of a rule: what it declares and what the checker calls (the registry of all rules
is ``loopwise.lint.rules.ALL_RULES``)."""

from __future__ import annotations

import ast
import inspect
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from loopwise.lint._checker import Checker

__all__ = ["Rule"]

# The node classes a rule is handed (a union for a rule that wants several).
NodeT = TypeVar("NodeT", bound=ast.AST)


class Rule(Generic[NodeT]):
    """A check run during the single walk over a module's tree.

    Subclasses set ``code`` (``LWnnn``, fixed forever), ``name`` (kebab-case), ``summary`` (one
    line), ``node_types`` (the node classes they want to see) and implement :meth:`visit`, typed
    for those classes: a ``Rule[ast.Call]`` is handed only ``ast.Call`` nodes, and a rule that
    wants several classes is a ``Rule[ast.If | ast.While]`` listing both. The class docstring
    is the rule's documentation, in ruff's sections: *What it does*, *Why is this bad?*,
    *Example*, *Use instead*, *Fix safety*. Rules keep no state between calls: the checker
    carries it.
    A rule that needs to look at a whole function from inside its scope lists the function
    types in ``scopes`` (typed like ``node_types``) and implements :meth:`visit_scope` instead.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    # The checker hands a node to `visit` only when its exact class is listed here.
    node_types: tuple[type[NodeT], ...] = ()
    # Scope nodes (functions, lambdas, classes) for which `visit_scope` is called once the
    # walker is inside them: `checker.function` is then that function's own scope.
    scopes: tuple[type[NodeT], ...] = ()
    # False for a rule outside the default set: only `--select LWnnn` (its full code) turns it
    # on, because on real code it is right too rarely to run unasked.
    default: ClassVar[bool] = True
    # False for a rule whose findings in test code (the config's `test-paths`) are noise: tests
    # drive one task at a time against fakes, so what stalls or leaks there harms nothing.
    in_tests: ClassVar[bool] = True
    # What `--fix` can do for this rule's findings: None (no fix), "safe" (applied by `--fix`),
    # "unsafe" (only with `--unsafe-fixes`) or "sometimes" (safe for some findings only). A
    # rule builds a fix only when `checker.fixes` is true, so plain checking pays nothing.
    fix_safety: ClassVar[str | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "nodes" in vars(cls):  # the earlier name: such a rule would silently never run
            raise TypeError(
                f"rule {cls.__qualname__} sets `nodes`, which the checker no longer reads: "
                "rename it `node_types` (and subclass `Rule[<node class>]`)"
            )

    def visit(self, node: NodeT, checker: Checker) -> None:
        raise NotImplementedError

    def settings_key(self) -> str:
        """What the rule's settings for this run are, as text (empty: none): findings cached
        under other settings are checked again."""
        return ""

    def classes_for(self, path: str) -> frozenset[str]:
        """Classes of other libraries that the rule's settings name for the file ``path`` (none
        by default): the checker then knows values built from them or annotated with them."""
        return frozenset()

    def visit_scope(self, node: NodeT, checker: Checker) -> None:
        raise NotImplementedError

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")
