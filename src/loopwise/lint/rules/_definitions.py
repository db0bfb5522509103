"""The code of a module that a call can be followed into, for LW010's escape analysis.

What it decides: which top-level function, class or method (along a class's bases in the
module) a call runs, which parameter of the callee receives a given argument, and what a
function's own scope binds: its parameters, local names, ``global``/``nonlocal`` names and the
name of its ``self``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from loopwise.lint._ast import FUNCTIONS, SCOPE_NODES

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


class _Module:
    """The module's top-level functions and classes, which calls can be followed into."""

    def __init__(self, tree: ast.Module) -> None:
        self.definitions: dict[str, list[ast.stmt]] = {}
        self.imports: dict[str, str] = {}  # a top-level imported name -> what it names
        stack: list[ast.stmt] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (*FUNCTIONS, ast.ClassDef)):
                self.definitions.setdefault(node.name, []).insert(0, node)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                for name, target in _imported_names(node).items():
                    self.imports.setdefault(name, target)  # the walk runs backwards
            elif isinstance(node, ast.If | ast.Try):
                stack.extend(_nested_statements(node))

    def classes(self, name: str) -> list[ast.ClassDef]:
        return [d for d in self.definitions.get(name, ()) if isinstance(d, ast.ClassDef)]

    def functions(self, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [d for d in self.definitions.get(name, ()) if isinstance(d, FUNCTIONS)]

    def method(
        self, cls: ast.ClassDef, name: str, seen: frozenset[str] = frozenset()
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef] | None:
        """``name`` as defined by ``cls`` or, along its bases, by a class of this module."""
        found = [n for n in cls.body if isinstance(n, FUNCTIONS) and n.name == name]
        if found:
            return found[-1], cls
        return self.inherited(cls, name, seen | {cls.name})

    def inherited(
        self, cls: ast.ClassDef, name: str, seen: frozenset[str] = frozenset()
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef] | None:
        for base in cls.bases:
            if not isinstance(base, ast.Name) or base.id in seen:
                continue
            for base_class in self.classes(base.id):
                found = self.method(base_class, name, seen | {base.id})
                if found is not None:
                    return found
        return None


def _imported_names(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """The names an import binds, mapped to the module or module member each one is."""
    if isinstance(node, ast.Import):
        bound = {}
        for alias in node.names:
            top = alias.name.split(".")[0]
            bound[alias.asname or top] = alias.name if alias.asname else top
        return bound
    if node.level or node.module is None:
        return {}
    return {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}


def _function_imports(function: _Function) -> dict[str, str]:
    """The names ``function``'s own scope imports, mapped to what each one is."""
    names: dict[str, str] = {}
    for node in _scope_nodes(function):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update(_imported_names(node))
    return names


def _nested_statements(node: ast.If | ast.Try) -> list[ast.stmt]:
    if isinstance(node, ast.If):
        return [*node.body, *node.orelse]
    handlers = [stmt for handler in node.handlers for stmt in handler.body]
    return [*node.body, *handlers, *node.orelse, *node.finalbody]


@dataclass(frozen=True, slots=True)
class _Callee:
    """A function a call runs, and how the call's arguments line up with its parameters."""

    function: ast.FunctionDef | ast.AsyncFunctionDef | None  # None: a dataclass's own __init__
    cls: ast.ClassDef | None
    skipped: int  # leading parameters the call does not pass (`self`, `cls`)
    label: str  # for the message: `helper()`, `self.save()`, `Store()`


def _parameter_for(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    skipped: int,
    index: int | None,
    keyword: str | None,
) -> str | None:
    """The parameter of ``function`` that receives the argument at ``index`` or ``keyword``."""
    args = function.args
    positional = [*args.posonlyargs, *args.args][skipped:]
    if index is not None:
        return positional[index].arg if index < len(positional) else None
    names = {arg.arg for arg in [*args.args, *args.kwonlyargs]}
    return keyword if keyword in names else None


def _scope_nodes(function: _Function) -> Iterator[ast.AST]:
    """The nodes of ``function``'s own scope (not those of nested functions and classes)."""
    stack: list[ast.AST] = (
        [function.body] if isinstance(function, ast.Lambda) else list(function.body)
    )
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, SCOPE_NODES):
            stack.extend(ast.iter_child_nodes(node))


def _declared_outer(function: _Function) -> dict[str, str]:
    """``global``/``nonlocal`` names of ``function``, mapped to which of the two they are."""
    declared: dict[str, str] = {}
    for node in _scope_nodes(function):
        if isinstance(node, ast.Global | ast.Nonlocal):
            kind = "global" if isinstance(node, ast.Global) else "nonlocal"
            declared.update(dict.fromkeys(node.names, kind))
    return declared


def _local_names(function: _Function) -> frozenset[str]:
    """The names ``function`` binds itself (assignments, loops, imports, nested defs)."""
    names: set[str] = set()
    for node in _scope_nodes(function):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (*FUNCTIONS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return frozenset(names)
