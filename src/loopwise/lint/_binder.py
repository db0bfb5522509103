"""What each scope of a module binds, gathered in one pass before the rules' walk.

What it decides: which names the module's top level binds (imports with their qualified
targets, definitions, other assignments, names bound in more than one way), which names every
function, lambda and comprehension binds (parameters, assignments, imports, ``global`` and
``nonlocal`` declarations) and which nodes bind each of them; also how the walkers step through
a tree (``child_nodes``, ``walk_shallow`` in one scope, ``walk_all``, ``walk_by_function``) and
how an import's private asyncio module path maps to the public name (``normalize``).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

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

_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def normalize(qualname: str) -> str:
    """Map private module paths to public names: ``asyncio.tasks.sleep`` is ``asyncio.sleep``."""
    parts = qualname.split(".")
    if len(parts) > 2 and parts[0] == "asyncio" and parts[1] in _ASYNCIO_SUBMODULES:
        return "asyncio." + ".".join(parts[2:])
    return qualname


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
        if not isinstance(child, _SCOPE_NODES):
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
        if isinstance(node, _SCOPE_NODES):  # a nested scope's nodes are not its owner's own
            owner = None
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                owner = by_function[node] = []
        children = child_nodes(node)
        if children:
            stack += children
            owners += [owner] * len(children)
    return everything, by_function


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


def _stored_names(target: ast.AST) -> Iterator[str]:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Starred) and isinstance(node.value, ast.Name):
            yield node.value.id


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
            for assigned in _assignment_targets(node):
                for bound in _stored_names(assigned):
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


def _assignment_targets(node: ast.AST) -> list[ast.AST]:
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


def _declared_name(node: ast.AST) -> str | None:
    """The name a def, class, ``except ... as``, or match capture binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        return node.name
    if isinstance(node, ast.MatchMapping):
        return node.rest
    return None


def _param_names(args: ast.arguments) -> list[ast.arg]:
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        params.append(args.vararg)
    if args.kwarg:
        params.append(args.kwarg)
    return params


_TRANSPARENT_DECORATORS = frozenset({"staticmethod", "classmethod"})


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


@dataclass(slots=True)
class Bindings:
    """What one function, lambda or comprehension binds, gathered before the walk."""

    imports: dict[str, str | None] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    declared_outer: set[str] = field(default_factory=set)
    nodes: defaultdict[str, list[ast.AST]] = field(default_factory=lambda: defaultdict(list))


_ASSIGNING = (
    ast.Assign,
    ast.AnnAssign,
    ast.AugAssign,
    ast.For,
    ast.AsyncFor,
    ast.With,
    ast.AsyncWith,
    ast.NamedExpr,
)

# Every node type the binder does more with than visit the children: anything else binds nothing.
_BINDING_NODES = (
    ast.Name,
    *_SCOPE_NODES,
    *_COMPREHENSIONS,
    ast.Import,
    ast.ImportFrom,
    ast.Global,
    ast.Nonlocal,
    *_ASSIGNING,
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
        for param in _param_names(args):
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
        elif isinstance(node, _COMPREHENSIONS):
            inner = Bindings()
            for generator in node.generators:
                inner.bound.update(_stored_names(generator.target))
            self.table[node] = inner
            for child in child_nodes(node):
                self._visit(child, inner)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for bound, target in import_bindings(node, self.module, self.is_package):
                current.imports[bound] = target
        elif isinstance(node, ast.Global | ast.Nonlocal):
            current.declared_outer.update(node.names)
        else:
            if isinstance(node, _ASSIGNING):
                for assigned in _assignment_targets(node):
                    for stored in _stored_names(assigned):
                        current.nodes[stored].append(node)
            else:
                declared = _declared_name(node)
                if declared:
                    current.bound.add(declared)
            for child in child_nodes(node):
                self._visit(child, current)
