"""What each scope of a module binds, gathered in one pass before the rules' walk.

What it decides: which names the module's top level binds (imports with their qualified
targets, definitions, other assignments, names bound in more than one way), which names every
function, lambda and comprehension binds (parameters, assignments, imports, ``global`` and
``nonlocal`` declarations) and which nodes bind each of them; which statements assign each
attribute of a class (``self.x = ...`` in its methods, ``x = ...`` in its body) and which of
its methods are properties; also how an import's private asyncio module path maps to the
public name (``normalize``). The walkers are in ``_ast``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from loopwise.lint._ast import (
    ASSIGNING,
    COMPREHENSIONS,
    SCOPE_NODES,
    assignment_targets,
    child_nodes,
    is_property,
    parameters_of,
    self_parameter,
    statement_blocks,
    stored_names,
)

_ASYNCIO_SUBMODULES = frozenset(
    {
        "base_events",
        "coroutines",
        "events",
        "exceptions",
        "futures",
        "locks",
        "queues",
        "runners",
        "streams",
        "subprocess",
        "taskgroups",
        "tasks",
        "threads",
        "timeouts",
    }
)


def normalize(qualname: str) -> str:
    """Map private module paths to public names: ``asyncio.tasks.sleep`` is ``asyncio.sleep``."""
    parts = qualname.split(".")
    if len(parts) > 2 and parts[0] == "asyncio" and parts[1] in _ASYNCIO_SUBMODULES:
        return "asyncio." + ".".join(parts[2:])
    return qualname


def _import_target(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    up = node.level - 1
    if up > len(package_parts):
        return None
    base = package_parts[: len(package_parts) - up]
    if node.module:
        base = [*base, node.module]
    return ".".join(base) if base else None


def import_bindings(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool
) -> Iterator[tuple[str, str | None]]:
    """(bound name, qualified target) for each name an import statement binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                root = alias.name.split(".")[0]
                yield root, root
        return
    target = _import_target(node, module, is_package)
    for alias in node.names:
        if alias.name == "*":
            continue
        bound = alias.asname or alias.name
        yield bound, normalize(f"{target}.{alias.name}") if target else None


@dataclass
class Scope:
    """A function, lambda or comprehension scope: the names it binds and what they hold.

    ``origins`` maps a bound name to the type its every binding agrees on, or ``None``.
    """

    node: ast.AST
    imports: dict[str, str | None] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    declared_outer: set[str] = field(default_factory=set)
    class_qualname: str | None = None  # set when this function is a method of that class
    self_name: str | None = None  # the first parameter of a method ("self"/"cls")
    _origins: dict[str, str | None] | None = None
    _bindings: dict[str, list[ast.AST]] | None = None

    @property
    def is_async(self) -> bool:
        return isinstance(self.node, ast.AsyncFunctionDef)

    @property
    def is_function(self) -> bool:
        return isinstance(self.node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)

    def binds(self, name: str) -> bool:
        return (name in self.bound or name in self.imports) and name not in self.declared_outer


@dataclass
class ModuleScope:
    """What the module's top level binds: imports, definitions and other assignments."""

    name: str
    is_package: bool
    imports: dict[str, str | None] = field(default_factory=dict)
    defs: dict[str, ast.AST] = field(default_factory=dict)
    assigned: set[str] = field(default_factory=set)
    ambiguous: set[str] = field(default_factory=set)
    assignments: dict[str, list[ast.AST]] = field(default_factory=dict)

    @classmethod
    def build(cls, tree: ast.Module, name: str, is_package: bool) -> ModuleScope:
        scope = cls(name=name, is_package=is_package)
        kinds: dict[str, set[str]] = {}
        for node in _top_level_statements(tree.body):
            for bound, kind in scope._bindings(node):
                kinds.setdefault(bound, set()).add(kind)
        for bound, found in kinds.items():
            if len(found) > 1:
                scope.ambiguous.add(bound)
        return scope

    def _bindings(self, node: ast.stmt) -> Iterator[tuple[str, str]]:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for bound, target in import_bindings(node, self.name, self.is_package):
                previous = self.imports.get(bound, target)
                self.imports[bound] = target if previous == target else None
                yield bound, "import"
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.defs[node.name] = node
            yield node.name, "class" if isinstance(node, ast.ClassDef) else "def"
        else:
            for assigned in assignment_targets(node):
                for bound in stored_names(assigned):
                    self.assigned.add(bound)
                    self.assignments.setdefault(bound, []).append(node)
                    yield bound, "assign"


def _top_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run at module level, including those under if/try/with blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.For | ast.While | ast.With | ast.AsyncWith | ast.AsyncFor):
            yield from _top_level_statements(node.body)
            yield from _top_level_statements(getattr(node, "orelse", []))
        elif isinstance(node, ast.Try | ast.TryStar):
            yield from _top_level_statements(node.body)
            for handler in node.handlers:
                yield from _top_level_statements(handler.body)
            yield from _top_level_statements(node.orelse)
            yield from _top_level_statements(node.finalbody)


def _declared_name(node: ast.AST) -> str | None:
    """The name a def, class, ``except ... as``, or match capture binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        return node.name
    if isinstance(node, ast.MatchMapping):
        return node.rest
    return None


@dataclass(slots=True)
class Bindings:
    """What one function, lambda or comprehension binds, gathered before the walk."""

    imports: dict[str, str | None] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    declared_outer: set[str] = field(default_factory=set)
    nodes: defaultdict[str, list[ast.AST]] = field(default_factory=lambda: defaultdict(list))


# Every node type the binder does more with than visit the children: anything else binds nothing.
_BINDING_NODES = (
    ast.Name,
    *SCOPE_NODES,
    *COMPREHENSIONS,
    ast.Import,
    ast.ImportFrom,
    ast.Global,
    ast.Nonlocal,
    *ASSIGNING,
    ast.ExceptHandler,
    ast.MatchAs,
    ast.MatchStar,
    ast.MatchMapping,
)


class _Binder:
    """One pass over a module recording, for every scope node, the names it binds."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.table: dict[ast.AST, Bindings] = {}

    def run(self, tree: ast.Module) -> dict[ast.AST, Bindings]:
        top = Bindings()  # module level is described by ModuleScope instead
        for statement in tree.body:
            self._visit(statement, top)
        return self.table

    def _function(self, node: ast.AST, args: ast.arguments, current: Bindings) -> Bindings:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self._visit(default, current)
        inner = Bindings()
        for param in parameters_of(args):
            if param.annotation is not None:
                self._visit(param.annotation, current)
            inner.bound.add(param.arg)
            inner.nodes[param.arg].append(param)
        self.table[node] = inner
        return inner

    def _visit(self, node: ast.AST, current: Bindings) -> None:
        if not isinstance(node, _BINDING_NODES):  # most nodes: only their children to visit
            for child in child_nodes(node):
                self._visit(child, current)
        elif isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                current.bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            current.bound.add(node.name)
            for decorator in node.decorator_list:
                self._visit(decorator, current)
            if node.returns is not None:
                self._visit(node.returns, current)
            inner = self._function(node, node.args, current)
            for statement in node.body:
                self._visit(statement, inner)
        elif isinstance(node, ast.Lambda):
            self._visit(node.body, self._function(node, node.args, current))
        elif isinstance(node, ast.ClassDef):
            current.bound.add(node.name)
            for child in [*node.decorator_list, *node.bases, *node.keywords]:
                self._visit(child, current)
            class_body = Bindings()  # class-level names are not visible inside methods
            for statement in node.body:
                self._visit(statement, class_body)
        elif isinstance(node, COMPREHENSIONS):
            inner = Bindings()
            for generator in node.generators:
                inner.bound.update(stored_names(generator.target))
            self.table[node] = inner
            for child in child_nodes(node):
                self._visit(child, inner)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for bound, target in import_bindings(node, self.module, self.is_package):
                current.imports[bound] = target
        elif isinstance(node, ast.Global | ast.Nonlocal):
            current.declared_outer.update(node.names)
        else:
            if isinstance(node, ASSIGNING):
                for assigned in assignment_targets(node):
                    for stored in stored_names(assigned):
                        current.nodes[stored].append(node)
            else:
                declared = _declared_name(node)
                if declared:
                    current.bound.add(declared)
            for child in child_nodes(node):
                self._visit(child, current)


# -- what a class binds to its attributes ------------------------------------------------


def property_getters(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The getters of the class's properties, by name."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for statement in cls.body:
        if (
            isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and is_property(statement)
            and statement.name not in found
        ):
            found[statement.name] = statement
    return found


def defines_method(cls: ast.ClassDef, name: str) -> bool:
    return any(
        isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name == name
        for statement in cls.body
    )


# One `self.x = ...` statement and the method it is directly in (None: the class body, or a
# function nested in a method, whose locals are not followed).
AttributeAssignment = tuple[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None]
# For each attribute of a class, its assignments (None: one whose type cannot be read off).
AttributeAssignments = dict[str, list[AttributeAssignment | None]]


def attribute_assignments(cls: ast.ClassDef) -> AttributeAssignments:
    """For each attribute, the statements that assign it: `self.<attr> = ...` in the methods
    (`cls.<attr>` in class methods) and `<attr> = ...` or `<attr>: T` in the class body.

    An assignment whose type cannot be read off (tuple unpacking, ``+=``, ``for self.x in``)
    is recorded as ``None``.
    """
    found: dict[str, list[AttributeAssignment | None]] = defaultdict(list)
    for statement in cls.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            found[statement.target.id].append((statement, None))
        elif isinstance(statement, ast.Assign):
            direct = len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)
            for assigned in statement.targets:
                for name in stored_names(assigned):
                    found[name].append((statement, None) if direct else None)
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        self_name = self_parameter(method)
        if self_name is None:
            continue
        for child, nested in _statements(method.body, nested=False):
            if not isinstance(child, ASSIGNING):
                continue
            direct = isinstance(child, ast.AnnAssign) or (
                isinstance(child, ast.Assign) and len(child.targets) == 1
            )
            scope = None if nested else method
            for target in assignment_targets(child):
                for attribute in _self_attributes(target, self_name):
                    simple = direct and attribute is target
                    found[attribute.attr].append((child, scope) if simple else None)
    return found


def _statements(body: list[ast.stmt], *, nested: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement in ``body`` and the blocks under it, and whether it sits in a nested
    def or class (only statements can assign an attribute, so expressions are not walked)."""
    for statement in body:
        yield statement, nested
        inner = nested or isinstance(statement, SCOPE_NODES)
        for block in statement_blocks(statement):
            yield from _statements(block, nested=inner)


def _self_attributes(target: ast.AST, self_name: str) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id == self_name:
            yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _self_attributes(element, self_name)
    elif isinstance(target, ast.Starred):
        yield from _self_attributes(target.value, self_name)
