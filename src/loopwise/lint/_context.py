"""What a rule knows about the code around a node: imports, aliases, scopes and simple value types.

Names resolve to *qualified names* such as ``asyncio.sleep``, ``requests.Session.get`` or
``pkg.mod.Client.fetch``. Anything that cannot be known for sure resolves to ``None``: the rules
are written so that ``None`` means "say nothing" (precision first).
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from loopwise.lint._project import Project

__all__ = [
    "LOOP_TYPE",
    "FileContext",
    "ModuleScope",
    "Scope",
    "walk_all",
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

_PATH = "pathlib.Path"
_NONE = "<None>"  # the type of the constant None: left out when bindings are compared
_UNBOUND = object()  # in the attribute cache: the class itself does not bind that name
_T = TypeVar("_T")

# What `Optional[X]` and `Union[X, Y]` are spelled as.
_OPTIONAL = frozenset({"typing.Optional", "typing_extensions.Optional"})
_UNION = frozenset({"typing.Union", "typing_extensions.Union"})
# Annotations that are never a project class whose attributes could be followed.
_NOT_CLASSES = ("builtins.", "typing.", "typing_extensions.", "collections.", "types.")
_IGNORED_BASES = frozenset({"builtins.object", "typing.Generic", "typing.Protocol", "abc.ABC"})
_PROPERTY_DECORATORS = frozenset({"property", "cached_property"})

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
        project: Project | None = None,
    ) -> None:
        self.tree = tree
        self.project = project  # other modules' summaries; None while summaries are made
        self.module = ModuleScope.build(tree, module, is_package)
        self.bindings = bindings if bindings is not None else _Binder(module, is_package).run(tree)
        self.scopes: list[Scope] = []
        self.classes: list[ast.ClassDef] = []
        self._owners: list[ast.AST] = []  # classes and scopes, in the order they were entered
        self._class_attr_origins: dict[ast.ClassDef, dict[str, str | object | None]] = {}
        self._class_attr_assignments: dict[ast.ClassDef, dict[str, list[_Assignment | None]]] = {}
        self._classes_by_name: dict[str, ast.ClassDef] | None = None
        self._method_scopes: dict[ast.AST, Scope] = {}
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
        """The type of the value ``expr`` evaluates to, when every binding agrees on it.

        Only the types rules know about are answered: an event loop and ``KNOWN_CLASSES``.
        Project classes are followed on the way (``self._pool._loop``, ``data_file(...)``
        declared ``-> Path``) but never returned.
        """
        found = self._type_of(expr)
        return found if _is_known(found) else None

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

    def class_attribute_types(self, node: ast.ClassDef, qualname: str) -> dict[str, str | None]:
        """The type of every attribute the class itself binds (for the project summary)."""
        names = set(self._attribute_assignments(node)) | set(_property_names(node))
        return {name: self._own_attribute(node, qualname, name)[1] for name in sorted(names)}

    def declared_return(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
        """The type a function's return annotation names (a known type or a class)."""
        return self._at_module_level(lambda: self._annotated(node.returns))

    # -- what a value is: known types and project classes ------------------------------------

    def _type_of(self, expr: ast.AST) -> str | None:
        """Like :meth:`origin`, but project classes (``pkg.mod.Pool``) and ``_NONE`` too."""
        if isinstance(expr, ast.Name):
            return self.self_class(expr) or self._name_origin(expr.id)
        if isinstance(expr, ast.Attribute):
            return self._attribute_type(expr)
        if isinstance(expr, ast.Call):
            return self._call_type(expr, awaited=False)
        if isinstance(expr, ast.Await):
            awaited = expr.value
            return self._call_type(awaited, awaited=True) if isinstance(awaited, ast.Call) else None
        if isinstance(expr, ast.Constant):
            return _NONE if expr.value is None else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div):
            return _PATH if self._type_of(expr.left) == _PATH else None
        if isinstance(expr, ast.IfExp):
            return self._alternatives_type([expr.body, expr.orelse])
        if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or):
            return self._alternatives_type(expr.values)
        return None

    def _alternatives_type(self, values: list[ast.expr]) -> str | None:
        """`a if c else b`, `a or b`: what the alternatives agree on, leaving out ``None`` and
        a parameter of unknown type being given a default (`loop or get_event_loop()`)."""
        return _agreed([self._type_of(v) for v in values if not self._is_open_parameter(v)])

    def _call_type(self, call: ast.Call, *, awaited: bool) -> str | None:
        callee = self.resolve_call(call)
        if callee is not None:
            if not awaited:
                constructed = self._constructed_type(callee)
                if constructed is not None:
                    return constructed
            return self._return_type(callee, awaited=awaited)
        func = call.func
        if isinstance(func, ast.Attribute):
            owner = self._type_of(func.value)
            if _is_project_class(owner):
                return self._return_type(f"{owner}.{func.attr}", awaited=awaited)
        return None

    def _constructed_type(self, callee: str) -> str | None:
        if callee in _FACTORY_RESULTS:
            return _FACTORY_RESULTS[callee]
        if callee in KNOWN_CLASSES:
            return callee
        owner, _, method = callee.rpartition(".")
        if owner == _PATH and method in _PATH_METHODS:
            return _PATH
        return callee if self._is_class(callee) else None

    def _return_type(self, qualname: str, *, awaited: bool) -> str | None:
        """The declared return type of a project function (of an ``async def`` when awaited)."""
        node = self.local_definition(qualname)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if isinstance(node, ast.AsyncFunctionDef) != awaited or _is_property(node):
                return None
            return self.declared_return(node)
        if node is None and self.project is not None:
            info = self.project.function(qualname)
            if info is not None and info.is_async == awaited:
                return info.returns
        return None

    def _attribute_type(self, expr: ast.Attribute) -> str | None:
        owner = self._type_of(expr.value)
        if owner == _PATH:
            return _PATH if expr.attr in _PATH_ATTRIBUTES else None
        if _is_project_class(owner):
            assert owner is not None
            return self._class_attribute(owner, expr.attr, set())[1]
        return None

    # -- names -------------------------------------------------------------------------------

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
                cache[name] = _agreed([self._binding_origin(n, name) for n in nodes])
            return cache[name]
        return None

    def _scope_origin(self, scope: Scope, name: str) -> str | None:
        if scope._origins is None:
            scope._origins = {}
        cache = scope._origins
        if name not in cache:
            cache[name] = None  # a binding that refers to itself (`x = f(x)`) stays unknown
            nodes = self._typed_bindings(scope, name)
            cache[name] = _agreed([self._binding_origin(node, name) for node in nodes])
        return cache[name]

    def _typed_bindings(self, scope: Scope, name: str) -> list[ast.AST]:
        """The bindings that decide the type of ``name``.

        A parameter of unknown type that the function only ever replaces by a value built from
        it or given when it is missing (`loop = loop or get_event_loop()`, `path = Path(path)`,
        `if loop is None: loop = ...`) has the type of those values: the methods a rule looks at
        are called on the replaced value.
        """
        nodes = self._scope_bindings(scope).get(name, [])
        open_params: list[ast.AST] = [
            n for n in nodes if isinstance(n, ast.arg) and n.annotation is None
        ]
        if not open_params:
            return nodes
        others = [n for n in nodes if not isinstance(n, ast.arg)]
        if len(open_params) > 1 or not others:
            return open_params
        guarded = _none_guarded_statements(scope.node, name)
        if all(id(n) in guarded or _mentions(n, name) for n in others):
            return others
        return open_params

    def _is_open_parameter(self, expr: ast.AST) -> bool:
        """Whether ``expr`` names a parameter without annotation (or is ``None``)."""
        if isinstance(expr, ast.Constant):
            return expr.value is None
        if not isinstance(expr, ast.Name):
            return False
        for scope in reversed(self.scopes):
            if expr.id in scope.declared_outer:
                return False
            if scope.binds(expr.id):
                nodes = self._scope_bindings(scope).get(expr.id, [])
                return any(isinstance(n, ast.arg) and n.annotation is None for n in nodes)
        return False

    def _scope_bindings(self, scope: Scope) -> dict[str, list[ast.AST]]:
        """Every node that binds each name in ``scope``: parameters and assignments."""
        return scope._bindings if scope._bindings is not None else {}

    def _binding_origin(self, node: ast.AST, name: str) -> str | None:
        if isinstance(node, ast.arg):
            return self._annotated(node.annotation)
        if isinstance(node, ast.Assign):
            if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                return self._type_of(node.value)
            return None
        if isinstance(node, ast.AnnAssign):
            return self._annotated(node.annotation) or (
                self._type_of(node.value) if node.value is not None else None
            )
        if isinstance(node, ast.NamedExpr):
            return self._type_of(node.value)
        if isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name) and item.optional_vars.id == name:
                    return self._type_of(item.context_expr)
        return None

    def _annotated(self, annotation: ast.AST | None) -> str | None:
        """The type an annotation names: a known type or a class; ``X | None`` is ``X``."""
        if annotation is None:
            return None
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        members = self._union_members(annotation)
        if members is not None:
            return _agreed([self._annotated(member) for member in members])
        if isinstance(annotation, ast.Constant) and annotation.value is None:
            return _NONE
        resolved = self.resolve(annotation)
        if resolved is None:
            return None
        resolved = _FACTORY_RESULTS.get(resolved, resolved)
        if _is_known(resolved) or not resolved.startswith(_NOT_CLASSES):
            return resolved
        return None

    def _union_members(self, annotation: ast.AST) -> list[ast.expr] | None:
        """The members of `X | Y`, `Optional[X]` (`X` and `None`) or `Union[X, Y]`."""
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            left = self._union_members(annotation.left) or [annotation.left]
            right = self._union_members(annotation.right) or [annotation.right]
            return [*left, *right]
        if isinstance(annotation, ast.Subscript):
            wrapper = self.resolve(annotation.value)
            if wrapper in _OPTIONAL:
                return [annotation.slice, ast.Constant(value=None)]
            if wrapper in _UNION:
                inner = annotation.slice
                return list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        return None

    # -- classes of this module and of the project -------------------------------------------

    def _is_class(self, qualname: str) -> bool:
        if qualname in self._local_classes():
            return True
        return self.project is not None and self.project.is_class(qualname)

    def _local_classes(self) -> dict[str, ast.ClassDef]:
        """Classes defined at module level (or in such a class), by qualified name."""
        if self._classes_by_name is None:
            found: dict[str, ast.ClassDef] = {}
            pending = [
                (f"{self.module.name}.{name}", node)
                for name, node in self.module.defs.items()
                if isinstance(node, ast.ClassDef) and name not in self.module.ambiguous
            ]
            while pending:
                qualname, node = pending.pop()
                found[qualname] = node
                for child in node.body:
                    if isinstance(child, ast.ClassDef):
                        pending.append((f"{qualname}.{child.name}", child))
            self._classes_by_name = found
        return self._classes_by_name

    def local_definition(self, qualname: str) -> ast.AST | None:
        """The def or class of this module that ``qualname`` names, if any."""
        owner, _, name = qualname.rpartition(".")
        if owner == self.module.name:
            if name in self.module.ambiguous:
                return None
            return self.module.defs.get(name)
        cls = self._local_classes().get(owner)
        if cls is None:
            return None
        found = [
            child
            for child in cls.body
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and child.name == name
        ]
        return found[0] if len(found) == 1 else None

    def _class_attribute(self, qualname: str, attr: str, seen: set[str]) -> tuple[bool, str | None]:
        """(whether the class or a base binds ``attr``, its type), along the bases in order."""
        if qualname in seen:
            return True, None
        seen.add(qualname)
        node = self._local_classes().get(qualname)
        if node is None:
            if self.project is None:
                return True, None
            return True, self.project.attribute_type(qualname, attr)
        bound, found = self._own_attribute(node, qualname, attr)
        if bound:
            return True, found
        for base in node.bases:
            base_name = self._at_module_level(functools.partial(self.resolve, base))
            if base_name is None:
                return True, None
            if base_name in _IGNORED_BASES:
                continue
            bound, found = self._class_attribute(base_name, attr, seen)
            if bound:
                return True, found
        return False, None

    def _own_attribute(
        self, node: ast.ClassDef, qualname: str, attr: str
    ) -> tuple[bool, str | None]:
        """(whether the class itself binds ``attr``, the type all its bindings agree on)."""
        cache = self._class_attr_origins.setdefault(node, {})
        if attr in cache:
            return cache[attr] is not _UNBOUND, _bound_value(cache[attr])
        cache[attr] = None  # guards against `self.x = self.x.f()` cycles
        properties = _property_names(node)
        if attr in properties:
            found = self.declared_return(properties[attr])
            result: str | object | None = found
        else:
            assignments = self._attribute_assignments(node).get(attr)
            if assignments is None:
                result = None if _defines_method(node, attr) else _UNBOUND
            else:
                values = [self._assigned_type(a, qualname) for a in assignments]
                result = _agreed(values)
        cache[attr] = result
        return result is not _UNBOUND, _bound_value(result)

    def _attribute_assignments(self, node: ast.ClassDef) -> dict[str, list[_Assignment | None]]:
        found = self._class_attr_assignments.get(node)
        if found is None:
            found = _collect_attribute_assignments(node)
            self._class_attr_assignments[node] = found
        return found

    def _assigned_type(self, assignment: _Assignment | None, qualname: str) -> str | None:
        """The type one `self.x = ...` (or class-level `x = ...`) gives the attribute."""
        if assignment is None:
            return None
        statement, method = assignment
        scopes = [self._method_scope(method, qualname)] if method is not None else []
        saved, self.scopes = self.scopes, scopes
        try:
            if isinstance(statement, ast.AnnAssign):
                annotated = self._annotated(statement.annotation)
                if annotated is not None and annotated != _NONE:
                    return annotated
            value = getattr(statement, "value", None)
            return self._type_of(value) if value is not None else None
        finally:
            self.scopes = saved

    def _method_scope(self, method: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> Scope:
        scope = self._method_scopes.get(method)
        if scope is None:
            found = self.bindings.get(method) or Bindings()
            scope = Scope(
                node=method,
                imports=found.imports,
                bound=found.bound,
                declared_outer=found.declared_outer,
                _bindings=found.nodes,
            )
            self_name = _self_parameter(method)
            if self_name is not None:
                scope.class_qualname = qualname
                scope.self_name = self_name
            self._method_scopes[method] = scope
        return scope

    def _at_module_level(self, compute: Callable[[], _T]) -> _T:
        """Run ``compute`` with names resolved at module level (for annotations and bases)."""
        saved, self.scopes = self.scopes, []
        try:
            return compute()
        finally:
            self.scopes = saved


def _is_known(found: str | None) -> bool:
    return found == LOOP_TYPE or found in KNOWN_CLASSES


def _is_project_class(found: str | None) -> bool:
    """Whether a type is a class to look into (not a known type, ``None`` or unknown)."""
    return found is not None and found != _NONE and not _is_known(found)


def _agreed(values: list[str | None]) -> str | None:
    """The one type all values agree on, leaving out ``None`` (the constant) values."""
    typed = [value for value in values if value != _NONE]
    first = typed[0] if typed else None
    return first if first is not None and all(value == first for value in typed) else None


def _bound_value(result: str | object | None) -> str | None:
    return result if isinstance(result, str) else None


def _mentions(node: ast.AST, name: str) -> bool:
    """Whether the value an assignment stores reads ``name`` (`x = x or y`, `x = Path(x)`)."""
    value = getattr(node, "value", None)
    if value is None:
        return False
    return any(isinstance(n, ast.Name) and n.id == name for n in walk_all(value))


def _none_guarded_statements(function: ast.AST, name: str) -> set[int]:
    """Ids of the statements run only when ``name`` is missing: `if name is None:` and
    `if not name:` blocks."""
    guarded: set[int] = set()
    for node in walk_shallow(function):
        if isinstance(node, ast.If) and _tests_missing(node.test, name):
            guarded.update(id(statement) for statement in node.body)
    return guarded


def _tests_missing(test: ast.expr, name: str) -> bool:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return isinstance(test.operand, ast.Name) and test.operand.id == name
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == name
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Is)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def walk_all(node: ast.AST) -> Iterator[ast.AST]:
    """Every descendant of ``node`` (nested scopes included); faster than ``ast.walk``."""
    stack = child_nodes(node)
    while stack:
        child = stack.pop()
        yield child
        stack.extend(child_nodes(child))


def _self_parameter(method: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    positional = [*method.args.posonlyargs, *method.args.args]
    if not positional or "staticmethod" in _decorator_names(method):
        return None
    return positional[0].arg


def _is_property(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return bool(_decorator_names(node) & _PROPERTY_DECORATORS)


def _property_names(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The getters of the class's properties, by name."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for statement in cls.body:
        if (
            isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef)
            and _is_property(statement)
            and statement.name not in found
        ):
            found[statement.name] = statement
    return found


def _defines_method(cls: ast.ClassDef, name: str) -> bool:
    return any(
        isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name == name
        for statement in cls.body
    )


# One `self.x = ...` statement and the method it is directly in (None: the class body, or a
# function nested in a method, whose locals are not followed).
_Assignment = tuple[ast.AST, ast.FunctionDef | ast.AsyncFunctionDef | None]


def _collect_attribute_assignments(cls: ast.ClassDef) -> dict[str, list[_Assignment | None]]:
    """For each attribute, the statements that assign it: `self.<attr> = ...` in the methods
    (`cls.<attr>` in class methods) and `<attr> = ...` or `<attr>: T` in the class body.

    An assignment whose type cannot be read off (tuple unpacking, ``+=``, ``for self.x in``)
    is recorded as ``None``.
    """
    found: dict[str, list[_Assignment | None]] = defaultdict(list)
    for statement in cls.body:
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            found[statement.target.id].append((statement, None))
        elif isinstance(statement, ast.Assign):
            direct = len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name)
            for assigned in statement.targets:
                for name in _stored_names(assigned):
                    found[name].append((statement, None) if direct else None)
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        self_name = _self_parameter(method)
        if self_name is None:
            continue
        for child, nested in _statements(method.body, nested=False):
            if not isinstance(child, _ASSIGNING):
                continue
            direct = isinstance(child, ast.AnnAssign) or (
                isinstance(child, ast.Assign) and len(child.targets) == 1
            )
            scope = None if nested else method
            for target in _assignment_targets(child):
                for attribute in _self_attributes(target, self_name):
                    simple = direct and attribute is target
                    found[attribute.attr].append((child, scope) if simple else None)
    return found


def _statements(body: list[ast.stmt], *, nested: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement in ``body`` and the blocks under it, and whether it sits in a nested
    def or class (only statements can assign an attribute, so expressions are not walked)."""
    for statement in body:
        yield statement, nested
        inner = nested or isinstance(statement, _SCOPE_NODES)
        for block in _blocks(statement):
            yield from _statements(block, nested=inner)


def _blocks(statement: ast.stmt) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        block = getattr(statement, name, None)
        if isinstance(block, list):
            yield block
    for handler in getattr(statement, "handlers", ()):
        yield handler.body
    for case in getattr(statement, "cases", ()):
        yield case.body


def _self_attributes(target: ast.AST, self_name: str) -> Iterator[ast.Attribute]:
    if isinstance(target, ast.Attribute):
        if isinstance(target.value, ast.Name) and target.value.id == self_name:
            yield target
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _self_attributes(element, self_name)
    elif isinstance(target, ast.Starred):
        yield from _self_attributes(target.value, self_name)
