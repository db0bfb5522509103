"""Shared AST helpers: the node-type groups the lint modules test against, and the walkers.

The walkers step through a tree without ``ctx`` and operator nodes, in source order for
``child_nodes`` and in an unspecified (stack) order for ``walk_all``/``walk_shallow``;
"shallow" stops at nested ``def``, ``lambda`` and ``class`` (their bodies are other scopes).
Nothing here knows about names, scopes or types: that is ``_binder``, ``_types`` and
``_context``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

__all__ = [
    "ASSIGNING",
    "AWAIT_POINTS",
    "COMPREHENSIONS",
    "FUNCTIONS",
    "LOOPS",
    "NAMED_SCOPES",
    "SCOPE_NODES",
    "assignment_targets",
    "child_nodes",
    "decorator_names",
    "in_list",
    "is_property",
    "parameters_of",
    "self_parameter",
    "single_name_target",
    "statement_blocks",
    "stored_names",
    "walk_all",
    "walk_by_function",
    "walk_shallow",
]

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# What opens a new scope the walkers do not enter: its body runs elsewhere, or later.
SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
# Scopes that have a name (no lambda).
NAMED_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
LOOPS = (ast.For, ast.AsyncFor, ast.While)
# Where a coroutine may suspend, letting other tasks run.
AWAIT_POINTS = (ast.Await, ast.AsyncFor, ast.AsyncWith)

# What binds names by assigning to its targets (``assignment_targets`` lists them).
ASSIGNING = (
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.For,
    ast.AsyncFor,
    ast.With,
    ast.AsyncWith,
    ast.NamedExpr,
)


_NOT_CHILDREN = frozenset(
    {
        "arg", "asname", "attr", "conversion", "ctx", "id", "is_async", "kind", "level",
        "module", "name", "names", "op", "ops", "simple", "type_comment",
    }
)  # fmt: skip
_FIELD_SPEC = re.compile(r"(\w+)([*?]?) (\w+)")
# Per node type: (field name, whether it holds a list) for each field that may hold child nodes.
_CHILD_PLANS: dict[type[ast.AST], tuple[tuple[str, bool], ...] | None] = {}


def _child_plan(node_type: type[ast.AST]) -> tuple[tuple[str, bool], ...] | None:
    """Which fields of ``node_type`` hold child nodes, read from its grammar line (the class
    docstring, ``For(expr target, expr iter, stmt* body, ...)``); None when that cannot be read.

    A field holds nodes when its declared type is a node class; identifiers, strings, ints and
    constants do not, and neither do the skipped ``ctx``/operator fields.
    """
    if not node_type._fields:  # `pass`, `break`, operators, contexts
        return ()
    head = (node_type.__doc__ or "").strip().partition("\n")[0]
    if not head.startswith(f"{node_type.__name__}(") or not head.endswith(")"):
        return None
    specs = {name: (kind, suffix) for kind, suffix, name in _FIELD_SPEC.findall(head)}
    if set(specs) != set(node_type._fields):
        return None
    plan = []
    for name in node_type._fields:
        kind, suffix = specs[name]
        declared = getattr(ast, kind, None)
        is_node = isinstance(declared, type) and issubclass(declared, ast.AST)
        if is_node and name not in _NOT_CHILDREN:
            plan.append((name, suffix == "*"))
    return tuple(plan)


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """The direct children of ``node`` worth visiting (no ``ctx``/operator nodes), in order."""
    node_type = type(node)
    try:
        plan = _CHILD_PLANS[node_type]
    except KeyError:
        plan = _CHILD_PLANS[node_type] = _child_plan(node_type)
    if plan is None:
        return _generic_child_nodes(node)
    children: list[ast.AST] = []
    for name, is_list in plan:
        value = getattr(node, name, None)
        if value is None:
            continue
        if not is_list:
            children.append(value)
        elif None in value:  # `{**a}` keys, keyword-only parameters without a default
            children.extend(item for item in value if item is not None)
        else:
            children.extend(value)
    return children


def _generic_child_nodes(node: ast.AST) -> list[ast.AST]:
    """``child_nodes`` for a node type whose grammar line cannot be read: every field checked."""
    children: list[ast.AST] = []
    for name in node._fields:
        if name in _NOT_CHILDREN:
            continue
        value = getattr(node, name, None)
        if type(value) is list:
            children.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            children.append(value)
    return children


def walk_shallow(node: ast.AST) -> Iterator[ast.AST]:
    """Yield the descendants of ``node`` in its own scope (not in nested defs, lambdas, classes)."""
    stack = child_nodes(node)
    while stack:
        child = stack.pop()
        yield child
        if not isinstance(child, SCOPE_NODES):
            stack.extend(child_nodes(child))


def walk_all(node: ast.AST) -> Iterator[ast.AST]:
    """Every descendant of ``node`` (nested scopes included); faster than ``ast.walk``."""
    stack = child_nodes(node)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(child_nodes(child))


def statement_blocks(statement: ast.stmt) -> Iterator[list[ast.stmt]]:
    """The statement lists nested in ``statement``: bodies, ``else``/``finally`` blocks,
    ``except`` handlers and ``match`` cases, in source order."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(statement, name, None)
        if isinstance(block, list):
            yield block
    for handler in getattr(statement, "handlers", ()):
        yield handler.body
    for case in getattr(statement, "cases", ()):
        yield case.body


def walk_by_function(tree: ast.AST) -> tuple[list[ast.AST], dict[ast.AST, list[ast.AST]]]:
    """``list(walk_all(tree))``, and for each ``def``/``async def`` in it ``list(walk_shallow(f))``.

    One walk instead of one per function; both come in the order those walkers yield them (a
    function's own nodes are a contiguous stretch of the whole walk, nested scopes left out).
    """
    everything: list[ast.AST] = []
    by_function: dict[ast.AST, list[ast.AST]] = {}
    stack = child_nodes(tree)
    owners: list[list[ast.AST] | None] = [None] * len(stack)  # whose own node each one is
    while stack:
        node = stack.pop()
        owner = owners.pop()
        everything.append(node)
        if owner is not None:
            owner.append(node)
        if isinstance(node, SCOPE_NODES):  # a nested scope's nodes are not its owner's own
            owner = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                owner = by_function[node] = []
        children = child_nodes(node)
        if children:
            stack += children
            owners += [owner] * len(children)
    return everything, by_function


def stored_names(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Starred) and isinstance(node.value, ast.Name):
            yield node.value.id


def single_name_target(node: ast.Assign | ast.AnnAssign) -> ast.Name | None:
    """The one plain name ``node`` assigns to; None for several targets, tuples, attributes."""
    if isinstance(node, ast.Assign):
        if len(node.targets) != 1:
            return None
        target: ast.expr = node.targets[0]
    else:
        target = node.target
    return target if isinstance(target, ast.Name) else None


def assignment_targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AnnAssign | ast.AugAssign):
        return [node.target]
    if isinstance(node, ast.For | ast.AsyncFor):
        return [node.target]
    if isinstance(node, ast.With | ast.AsyncWith):
        return [item.optional_vars for item in node.items if item.optional_vars is not None]
    if isinstance(node, ast.NamedExpr):
        return [node.target]
    if isinstance(node, ast.Delete):
        return list(node.targets)
    return []


def parameters_of(args: ast.arguments) -> list[ast.arg]:
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        params.append(args.vararg)
    if args.kwarg:
        params.append(args.kwarg)
    return params


def decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def in_list(node: ast.AST, nodes: list[ast.stmt]) -> bool:
    """Whether ``node`` itself (not an equal node) is one of ``nodes``."""
    return any(item is node for item in nodes)


_PROPERTY_DECORATORS = frozenset({"property", "cached_property"})


def is_property(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether ``node`` is decorated as a property (``property``/``cached_property``)."""
    return bool(decorator_names(node) & _PROPERTY_DECORATORS)


def self_parameter(method: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The name of a method's ``self``/``cls`` parameter (None for a static method)."""
    positional = [*method.args.posonlyargs, *method.args.args]
    if not positional or "staticmethod" in decorator_names(method):
        return None
    return positional[0].arg
