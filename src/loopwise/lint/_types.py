"""What type a value has, as far as the rules need to know: the type half of ``FileContext``.

What it decides: the type an expression evaluates to when every binding of the names it reads
agrees on it (a call's result, an awaited call's declared return, an attribute of a project
class, ``a or b``, ``Path / str``), the type an annotation names (``X | None`` is ``X``), and
which bindings of a parameter decide its type (``loop = loop or get_event_loop()``). Only an
event loop and ``KNOWN_CLASSES`` are ever answered to rules; project classes are followed on the
way. :class:`~loopwise.lint._context.FileContext` supplies the scopes and the name and class
lookups this inference stands on.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from loopwise.lint._ast import is_property, walk_all, walk_shallow
from loopwise.lint._binder import ModuleScope, Scope

if TYPE_CHECKING:
    from loopwise.lint._project import Project

LOOP_TYPE = "asyncio.AbstractEventLoop"

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
    "httpx2.Client": "httpx.Client",
    # File objects on disk: whatever opens one, and the annotations that name one.
    **dict.fromkeys(
        (
            "builtins.open",
            "io.open",
            "io.open_code",
            "os.fdopen",
            "pathlib.Path.open",
            "tempfile.TemporaryFile",
            "tempfile.NamedTemporaryFile",
            "io.TextIOWrapper",
            "io.BufferedReader",
            "io.BufferedWriter",
            "io.BufferedRandom",
            "io.FileIO",
        ),
        "io.IOBase",
    ),
    # urllib3's pools, by whichever module path they are named.
    "urllib3.poolmanager.PoolManager": "urllib3.PoolManager",
    "urllib3.poolmanager.ProxyManager": "urllib3.ProxyManager",
    "urllib3.proxy_from_url": "urllib3.ProxyManager",
    "urllib3.request.RequestMethods": "urllib3.PoolManager",
    "urllib3._request_methods.RequestMethods": "urllib3.PoolManager",
    "urllib3.connectionpool.ConnectionPool": "urllib3.HTTPConnectionPool",
    "urllib3.connectionpool.HTTPConnectionPool": "urllib3.HTTPConnectionPool",
    "urllib3.connectionpool.HTTPSConnectionPool": "urllib3.HTTPSConnectionPool",
    "urllib3.connection_from_url": "urllib3.HTTPConnectionPool",
    "urllib3.connectionpool.connection_from_url": "urllib3.HTTPConnectionPool",
}

# A file object on disk: from `open()`, `os.fdopen()`..., or annotated with a concrete class
# (`io.TextIOWrapper`, `io.BufferedReader`...). `typing.IO`, `TextIO` and `BinaryIO` name any
# file-like object, as often an in-memory `io.BytesIO` as a file: on the ecosystem check the one
# method call on such a parameter was a write into a caller's buffer.
FILE_TYPE = "io.IOBase"

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
        "io.IOBase",
        "pathlib.Path",
        "requests.Session",
        "socket.socket",
        "subprocess.Popen",
        "threading.BoundedSemaphore",
        "threading.Condition",
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
        "urllib3.HTTPConnectionPool",
        "urllib3.HTTPSConnectionPool",
        "urllib3.PoolManager",
        "urllib3.ProxyManager",
    }
)

_PATH = "pathlib.Path"
_NONE = "<None>"  # the type of the constant None: left out when bindings are compared

# What `Optional[X]` and `Union[X, Y]` are spelled as.
_OPTIONAL = frozenset({"typing.Optional", "typing_extensions.Optional"})
_UNION = frozenset({"typing.Union", "typing_extensions.Union"})
# Annotations that are never a project class whose attributes could be followed.
_NOT_CLASSES = ("builtins.", "typing.", "typing_extensions.", "collections.", "types.")
# Methods of pathlib.Path that return another Path.
_PATH_METHODS = frozenset(
    {"absolute", "expanduser", "joinpath", "resolve", "with_name", "with_stem", "with_suffix"}
)
_PATH_ATTRIBUTES = frozenset({"parent"})


class _ValueTypes:
    """The type inference of :class:`~loopwise.lint._context.FileContext`, which subclasses it."""

    # Classes of other libraries the configuration names (`extend-blocking-calls`): known like
    # KNOWN_CLASSES in this file. Set before any type is asked for.
    extra_classes: frozenset[str] = frozenset()

    # Provided by FileContext.
    scopes: list[Scope]
    module: ModuleScope
    project: Project | None
    _module_origins: dict[str, str | None]

    if TYPE_CHECKING:  # defined by FileContext

        def resolve(self, expr: ast.AST) -> str | None: ...
        def resolve_call(self, call: ast.Call) -> str | None: ...
        def self_class(self, expr: ast.AST) -> str | None: ...
        def declared_return(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None: ...
        def local_definition(self, qualname: str) -> ast.AST | None: ...
        def _is_class(self, qualname: str) -> bool: ...
        def _class_attribute(
            self, qualname: str, attr: str, seen: set[str]
        ) -> tuple[bool, str | None]: ...

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
        if callee in KNOWN_CLASSES or callee in self.extra_classes:
            return callee
        owner, _, method = callee.rpartition(".")
        if owner == _PATH and method in _PATH_METHODS:
            return _PATH
        return callee if self._is_class(callee) else None

    def _return_type(self, qualname: str, *, awaited: bool) -> str | None:
        """The declared return type of a project function (of an ``async def`` when awaited)."""
        node = self.local_definition(qualname)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if isinstance(node, ast.AsyncFunctionDef) != awaited or is_property(node):
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
