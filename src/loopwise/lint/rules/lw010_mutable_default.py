"""LW010: mutable default argument."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_MUTABLE_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)

# Callables that build a new mutable container.
_MUTABLE_FACTORIES = frozenset(
    {
        "builtins.bytearray",
        "builtins.dict",
        "builtins.list",
        "builtins.set",
        "collections.ChainMap",
        "collections.Counter",
        "collections.OrderedDict",
        "collections.UserDict",
        "collections.UserList",
        "collections.defaultdict",
        "collections.deque",
    }
)


class MutableDefaultArgument(Rule):
    """## What it does
    Checks for parameter defaults that are mutable containers, in any `def`, `async def` or
    `lambda`, positional or keyword-only: `[]`, `{}`, set displays, list/dict/set
    comprehensions, and calls to `list()`, `dict()`, `set()`, `bytearray()`,
    `collections.defaultdict()`, `OrderedDict()`, `Counter()`, `deque()`, `ChainMap()`,
    `UserDict()` and `UserList()`, through any import alias.

    Names are resolved: a class of your own that happens to be called `list` is not the builtin.
    `None`, tuples, `frozenset()`, strings, numbers and other immutable values are fine.

    ## Why is this bad?
    A default is evaluated once, when the `def` statement runs, and the same object is handed to
    every call that does not pass the argument. Whatever one call adds to it is still there for
    the next one.

    With coroutines it is worse: the calls need not even come one after another. Two concurrent
    `async def` calls that both use the default share one list *at the same time*, and every
    `await` in between is a point where the other coroutine can append to it, clear it or
    iterate over it. Results of one request leak into the response to another, and the bug
    only appears under load.

    ## Example
    ```python
    async def fetch_all(session, urls, results=[]):
        for url in urls:
            async with session.get(url) as response:
                results.append(await response.json())
        return results
    ```

    ## Use instead
    ```python
    async def fetch_all(session, urls, results=None):
        if results is None:
            results = []
        for url in urls:
            async with session.get(url) as response:
                results.append(await response.json())
        return results
    ```
    If the default is never mutated, an immutable value says so: a tuple or a `frozenset`.
    """

    code = "LW010"
    name = "mutable-default-argument"
    summary = "mutable default argument shared by every call"
    nodes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        args = node.args
        if not args.defaults and not any(args.kw_defaults):
            return
        shared = (
            "every call, concurrent ones too"
            if isinstance(node, ast.AsyncFunctionDef)
            else "every call"
        )
        for parameter, default in _defaults(args):
            if _is_mutable(default, checker):
                text = ast.unparse(default)
                if len(text) > 30:
                    text = text[:27] + "..."
                checker.report(
                    default,
                    f"mutable default `{text}` for `{parameter}` is shared by {shared}: "
                    "default to `None` and create it in the body",
                )


def _defaults(args: ast.arguments) -> Iterator[tuple[str, ast.expr]]:
    """(parameter name, default) for every parameter that has a default."""
    positional = [*args.posonlyargs, *args.args]
    with_defaults = positional[len(positional) - len(args.defaults) :]
    for arg, default in zip(with_defaults, args.defaults, strict=True):
        yield arg.arg, default
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        if kw_default is not None:
            yield arg.arg, kw_default


def _is_mutable(default: ast.expr, checker: Checker) -> bool:
    if isinstance(default, _MUTABLE_DISPLAYS):
        return True
    if isinstance(default, ast.Call) and isinstance(default.func, ast.Name | ast.Attribute):
        if checker.ctx.resolve_call(default) not in _MUTABLE_FACTORIES:
            return False
        return not _class_body_binds(checker, _root_name(default.func))
    return False


def _root_name(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _class_body_binds(checker: Checker, name: str | None) -> bool:
    """Whether a class body the ``def`` sits in binds ``name`` (defaults are evaluated there)."""
    for parent in reversed(checker.parents):
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(parent, ast.ClassDef):
            return name is None or any(_binds(node, name) for node in _class_body_nodes(parent))
    return False


def _binds(node: ast.AST, name: str) -> bool:
    if isinstance(node, ast.Name):
        return node.id == name and not isinstance(node.ctx, ast.Load)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == name
    if isinstance(node, ast.alias):
        return (node.asname or node.name.split(".")[0]) == name
    return False


def _class_body_nodes(cls: ast.ClassDef) -> Iterator[ast.AST]:
    """The nodes of a class body that run in the class scope (not in its methods' bodies)."""
    stack: list[ast.AST] = list(cls.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))
