"""What a rule knows about the code around a node: imports, aliases, scopes and simple value types.

Names resolve to *qualified names* such as ``asyncio.sleep``, ``requests.Session.get`` or
``pkg.mod.Client.fetch``. Anything that cannot be known for sure resolves to ``None``: the rules
are written so that ``None`` means "say nothing" (precision first).
"""

from __future__ import annotations

import ast
import builtins
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "LOOP_TYPE",
    "FileContext",
    "ModuleScope",
    "Scope",
    "walk_shallow",
]

LOOP_TYPE = "asyncio.AbstractEventLoop"

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

# Callables whose result has a known type (constructors of known classes map to themselves).
_FACTORY_RESULTS: dict[str, str] = {
    "asyncio.get_event_loop": LOOP_TYPE,
    "asyncio.get_running_loop": LOOP_TYPE,
    "asyncio.new_event_loop": LOOP_TYPE,
    "uvloop.new_event_loop": LOOP_TYPE,
    "uvloop.Loop": LOOP_TYPE,
    "asyncio.BaseEventLoop": LOOP_TYPE,
    "asyncio.EventLoop": LOOP_TYPE,
    "asyncio.SelectorEventLoop": LOOP_TYPE,
    "asyncio.ProactorEventLoop": LOOP_TYPE,
    "asyncio.Runner.get_loop": LOOP_TYPE,
    "requests.session": "requests.Session",
    "requests.sessions.Session": "requests.Session",
    "sqlite3.connect": "sqlite3.Connection",
    "socket.create_connection": "socket.socket",
    "socket.create_server": "socket.socket",
    "pathlib.Path.home": "pathlib.Path",
    "pathlib.Path.cwd": "pathlib.Path",
    "pathlib.PosixPath": "pathlib.Path",
    "pathlib.WindowsPath": "pathlib.Path",
}

KNOWN_CLASSES = frozenset(
    {
        "aiohttp.ClientSession",
        "aiohttp.TCPConnector",
        "asyncio.BoundedSemaphore",
        "asyncio.Condition",
        "asyncio.Event",
        "asyncio.LifoQueue",
        "asyncio.Lock",
        "asyncio.PriorityQueue",
        "asyncio.Queue",
        "asyncio.Runner",
        "asyncio.Semaphore",
        "asyncio.TaskGroup",
        "httpx.Client",
        "pathlib.Path",
        "requests.Session",
        "socket.socket",
        "subprocess.Popen",
    }
)

# Methods of pathlib.Path that return another Path.
_PATH_METHODS = frozenset(
    {"absolute", "expanduser", "joinpath", "resolve", "with_name", "with_stem", "with_suffix"}
)
_PATH_ATTRIBUTES = frozenset({"parent"})

_BUILTINS = frozenset(dir(builtins))

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
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def child_nodes(node: ast.AST) -> list[ast.AST]:
    """The direct children of ``node`` worth visiting (no ``ctx``/operator nodes), in order."""
    fields = _CHILD_FIELDS.get(type(node))
    if fields is None:
        fields = tuple(f for f in type(node)._fields if f not in _NOT_CHILDREN)
        _CHILD_FIELDS[type(node)] = fields
    children: list[ast.AST] = []
    for name in fields:
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


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
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
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
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
        elif isinstance(node, ast.Name):
            if not isinstance(node.ctx, ast.Load):
                current.bound.add(node.id)
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


class FileContext:
    """Name resolution for one module, following the scopes the walker is currently inside."""

    def __init__(
        self,
        tree: ast.Module,
        module: str,
        is_package: bool,
        bindings: dict[ast.AST, Bindings] | None = None,
    ) -> None:
        self.tree = tree
        self.module = ModuleScope.build(tree, module, is_package)
        self.bindings = bindings if bindings is not None else _Binder(module, is_package).run(tree)
        self.scopes: list[Scope] = []
        self.classes: list[ast.ClassDef] = []
        self._owners: list[ast.AST] = []  # classes and scopes, in the order they were entered
        self._class_attr_origins: dict[ast.ClassDef, dict[str, str | None]] = {}
        self._class_attr_assignments: dict[ast.ClassDef, dict[str, list[ast.AST | None]]] = {}
        self._module_origins: dict[str, str | None] = {}

    # -- scope bookkeeping -------------------------------------------------------------------

    def enter(self, node: ast.AST) -> None:
        if isinstance(node, ast.ClassDef):
            self.classes.append(node)
            self._owners.append(node)
            return
        found = self.bindings.get(node) or Bindings()
        scope = Scope(
            node=node,
            imports=found.imports,
            bound=found.bound,
            declared_outer=found.declared_outer,
            _bindings=found.nodes,
        )
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._mark_method(scope, node)
        self.scopes.append(scope)
        self._owners.append(node)

    def leave(self, node: ast.AST) -> None:
        self._owners.pop()
        if isinstance(node, ast.ClassDef):
            self.classes.pop()
        else:
            self.scopes.pop()

    def _mark_method(self, scope: Scope, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self._direct_class_of(node) is None:
            return
        positional = [*node.args.posonlyargs, *node.args.args]
        if "staticmethod" not in _decorator_names(node) and positional:
            scope.class_qualname = self.class_qualname()
            scope.self_name = positional[0].arg

    def _direct_class_of(self, node: ast.AST) -> ast.ClassDef | None:
        """The class whose body defines ``node`` directly (the walker entered it last)."""
        owner = self._owners[-1] if self._owners else None
        return owner if isinstance(owner, ast.ClassDef) and node in owner.body else None

    def class_qualname(self) -> str | None:
        """Qualified name of the innermost class, when it is defined at module/class level."""
        if not self.classes or not all(isinstance(o, ast.ClassDef) for o in self._owners):
            return None
        return ".".join([self.module.name, *(cls.name for cls in self.classes)])

    # -- queries used by rules ---------------------------------------------------------------

    @property
    def function(self) -> Scope | None:
        """The innermost function or lambda scope (comprehensions are skipped)."""
        for scope in reversed(self.scopes):
            if scope.is_function:
                return scope
        return None

    @property
    def in_async_function(self) -> bool:
        """True when the nearest enclosing function is an ``async def`` (a lambda is not)."""
        function = self.function
        return function is not None and function.is_async

    def resolve(self, expr: ast.AST) -> str | None:
        """Qualified name of a ``Name``/``Attribute`` chain rooted in a module, class or builtin."""
        if isinstance(expr, ast.Name):
            return self._resolve_name(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            if base is None:
                return None
            return normalize(f"{base}.{expr.attr}")
        return None

    def _resolve_name(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope.declared_outer:
                break
            if name in scope.imports:
                return scope.imports[name]
            if name in scope.bound:
                return None
        module = self.module
        if name in module.ambiguous:
            return None
        if name in module.imports:
            return module.imports[name]
        if name in module.defs:
            return f"{module.name}.{name}"
        if name in module.assigned:
            return None
        if name in _BUILTINS:
            return f"builtins.{name}"
        return None

    def resolve_call(self, call: ast.Call) -> str | None:
        """Qualified name of what ``call`` calls: a function, a class, or ``Type.method``."""
        func = call.func
        direct = self.resolve(func)
        if direct is not None:
            return direct
        if isinstance(func, ast.Attribute):
            owner = self.origin(func.value)
            if owner is not None:
                return normalize(f"{owner}.{func.attr}")
        return None

    def origin(self, expr: ast.AST) -> str | None:
        """The type of the value ``expr`` evaluates to, when every binding agrees on it."""
        if isinstance(expr, ast.Call):
            callee = self.resolve_call(expr)
            if callee is None:
                return None
            if callee in _FACTORY_RESULTS:
                return _FACTORY_RESULTS[callee]
            if callee in KNOWN_CLASSES:
                return callee
            owner, _, method = callee.rpartition(".")
            if owner == "pathlib.Path" and method in _PATH_METHODS:
                return "pathlib.Path"
            return None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return "pathlib.Path" if self.origin(expr.left) == "pathlib.Path" else None
        if isinstance(expr, ast.Name):
            return self._name_origin(expr.id)
        if isinstance(expr, ast.Attribute):
            if expr.attr in _PATH_ATTRIBUTES and self.origin(expr.value) == "pathlib.Path":
                return "pathlib.Path"
            return self._self_attribute_origin(expr)
        return None

    def self_class(self, expr: ast.AST) -> str | None:
        """The class qualname when ``expr`` is the ``self``/``cls`` parameter of a method."""
        if not isinstance(expr, ast.Name):
            return None
        for scope in reversed(self.scopes):
            if scope.binds(expr.id):
                if scope.self_name == expr.id:
                    return scope.class_qualname
                return None
        return None

    def _name_origin(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope.declared_outer:
                break
            if scope.binds(name):
                if name in scope.imports:
                    return None
                return self._scope_origin(scope, name)
        if name in self.module.assignments and name not in self.module.ambiguous:
            cache = self._module_origins
            if name not in cache:
                cache[name] = None  # a binding that refers to itself stays unknown
                nodes = self.module.assignments[name]
                cache[name] = self._agreed_origin([self._binding_origin(n, name) for n in nodes])
            return cache[name]
        return None

    def _scope_origin(self, scope: Scope, name: str) -> str | None:
        if scope._origins is None:
            scope._origins = {}
        cache = scope._origins
        if name not in cache:
            cache[name] = None  # a binding that refers to itself (`x = f(x)`) stays unknown
            values = [
                self._binding_origin(node, name) for node in self._scope_bindings(scope)[name]
            ]
            cache[name] = self._agreed_origin(values)
        return cache[name]

    def _scope_bindings(self, scope: Scope) -> dict[str, list[ast.AST]]:
        """Every node that binds each name in ``scope``: parameters and assignments."""
        return scope._bindings if scope._bindings is not None else {}

    @staticmethod
    def _agreed_origin(values: list[str | None]) -> str | None:
        first = values[0] if values else None
        return first if first is not None and all(v == first for v in values) else None

    def _binding_origin(self, node: ast.AST, name: str) -> str | None:
        if isinstance(node, ast.arg):
            return self._annotation_type(node.annotation)
        if isinstance(node, ast.Assign):
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                return self.origin(node.value)
            return None
        if isinstance(node, ast.AnnAssign):
            return self._annotation_type(node.annotation) or (
                self.origin(node.value) if node.value is not None else None
            )
        if isinstance(node, ast.NamedExpr):
            return self.origin(node.value)
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name) and item.optional_vars.id == name:
                    return self.origin(item.context_expr)
        return None

    def _annotation_type(self, annotation: ast.AST | None) -> str | None:
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        resolved = self.resolve(annotation)
        if resolved is None:
            return None
        resolved = _FACTORY_RESULTS.get(resolved, resolved)
        if resolved == "asyncio.AbstractEventLoop" or resolved in KNOWN_CLASSES:
            return resolved
        return None

    def _self_attribute_origin(self, expr: ast.Attribute) -> str | None:
        if not isinstance(expr.value, ast.Name) or self.self_class(expr.value) is None:
            return None
        cls = self.classes[-1] if self.classes else None
        if cls is None:
            return None
        assignments = self._class_attr_assignments.get(cls)
        if assignments is None:
            assignments = _collect_self_assignments(cls)
            self._class_attr_assignments[cls] = assignments
        cache = self._class_attr_origins.setdefault(cls, {})
        if expr.attr not in cache:
            cache[expr.attr] = None  # guards against `self.x = self.x.f()` cycles
            values = [self._attribute_value_origin(node) for node in assignments.get(expr.attr, [])]
            cache[expr.attr] = self._agreed_origin(values)
        return cache[expr.attr]

    def _attribute_value_origin(self, node: ast.AST | None) -> str | None:
        """The type assigned by one ``self.x = ...`` (None for tuple targets, ``+=``, ...)."""
        if isinstance(node, ast.AnnAssign):
            annotated = self._annotation_type(node.annotation)
            if annotated is not None:
                return annotated
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            return None
        value = node.value
        if value is None or not isinstance(value, ast.Call):
            return None
        # Resolve in module scope only: locals of another method are not visible here.
        saved, self.scopes = self.scopes, []
        try:
            return self.origin(value)
        finally:
            self.scopes = saved


def walk_all(node: ast.AST) -> Iterator[ast.AST]:
    """Every descendant of ``node`` (nested scopes included); faster than ``ast.walk``."""
    stack = child_nodes(node)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(child_nodes(child))


def _collect_self_assignments(cls: ast.ClassDef) -> dict[str, list[ast.AST | None]]:
    """For each ``self.<attr>``, the statements of the class's methods that assign it.

    A class-level annotation counts as an assignment; an assignment whose type cannot be
    read off (tuple unpacking, ``+=``, ``for self.x in``) is recorded as ``None``.
    """
    found: dict[str, list[ast.AST | None]] = defaultdict(list)
    for statement in cls.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            found[statement.target.id].append(statement)
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        positional = [*method.args.posonlyargs, *method.args.args]
        if not positional:
            continue
        self_name = positional[0].arg
        for child in walk_all(method):
            if not isinstance(child, _ASSIGNING):
                continue
            direct = isinstance(child, ast.AnnAssign) or (
                isinstance(child, ast.Assign) and len(child.targets) == 1
            )
            for target in _assignment_targets(child):
                for attribute in _self_attributes(target, self_name):
                    found[attribute.attr].append(child if direct and attribute is target else None)
    return found


def _self_attributes(target: ast.AST, self_name: str) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id == self_name:
            yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _self_attributes(element, self_name)
    elif isinstance(target, ast.Starred):
        yield from _self_attributes(target.value, self_name)
