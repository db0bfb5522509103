"""LW010: mutable default argument that the function mutates or lets escape."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_DISPLAY_KINDS: dict[type[ast.AST], str] = {
    ast.List: "list",
    ast.ListComp: "list",
    ast.Dict: "dict",
    ast.DictComp: "dict",
    ast.Set: "set",
    ast.SetComp: "set",
}

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

# Methods that change the container they are called on, and how the message says so.
_MUTATORS = {
    "__delitem__": "has an item deleted",
    "__iadd__": "is extended in place",
    "__setitem__": "has an item assigned",
    "add": "is added to",
    "append": "is appended to",
    "appendleft": "is appended to",
    "clear": "is cleared",
    "difference_update": "is updated in place",
    "discard": "has an item discarded",
    "extend": "is extended",
    "extendleft": "is extended",
    "insert": "is inserted into",
    "intersection_update": "is updated in place",
    "move_to_end": "is reordered",
    "pop": "is popped from",
    "popitem": "is popped from",
    "popleft": "is popped from",
    "remove": "has an item removed",
    "reverse": "is reversed in place",
    "rotate": "is rotated in place",
    "setdefault": "gets keys set by `setdefault()`",
    "sort": "is sorted in place",
    "subtract": "is updated in place",
    "symmetric_difference_update": "is updated in place",
    "update": "is updated",
}

# Mutations that cannot change an empty container: they remove or reorder items (or raise).
# Anything that could have filled the default first is reported on its own.
_SHRINKING = frozenset(
    {
        "__delitem__",
        "clear",
        "difference_update",
        "discard",
        "intersection_update",
        "move_to_end",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "sort",
    }
)
_SHRINKING_OPERATORS = (ast.BitAnd, ast.Mult, ast.Sub)  # `x &= s`, `x *= n`, `x -= s`

# Container methods that keep an argument: name -> (positional arguments, which one is kept).
# Only a call of exactly that shape counts (`builder.append(key, value, headers=h)` is some
# other method). `extend`/`update` copy the items instead: handing the default to them reads it.
_STORERS = {
    "add": (1, 0),
    "append": (1, 0),
    "appendleft": (1, 0),
    "insert": (2, 1),
    "put": (1, 0),
    "put_nowait": (1, 0),
    "setdefault": (2, 1),
}

_AUGMENTED = {
    ast.Add: "+=",
    ast.BitAnd: "&=",
    ast.BitOr: "|=",
    ast.BitXor: "^=",
    ast.Mult: "*=",
    ast.Sub: "-=",
}

_MAX_CALL_DEPTH = 3


class MutableDefaultArgument(Rule):
    """## What it does
    Checks for parameter defaults that are mutable containers — `[]`, `{}`, set displays,
    list/dict/set comprehensions, and calls to `list()`, `dict()`, `set()`, `bytearray()`,
    `collections.defaultdict()`, `OrderedDict()`, `Counter()`, `deque()`, `ChainMap()`,
    `UserDict()` and `UserList()` through any import alias — in a `def`, `async def` or
    `lambda`, **when the function changes the default or lets it escape**:

    - it mutates it: `append`, `extend`, `insert`, `update`, `setdefault`, `pop`, `clear`, `add`,
      `remove`, `discard`, `sort`, `reverse` and the like, `x[k] = v`, `del x[k]`, `x[k] += 1`,
      `x += [...]`/`x |= {...}` (in place for every mutable container), or `x[k]` on a
      `defaultdict` default (a missing key is inserted);
    - it returns or yields it, alone or inside a tuple, list or dict display;
    - it stores it: on an attribute (`self.items = items`), in a container that outlives the call
      (`self.cache[k] = items`, `registry.append(items)`), or in a `global`/`nonlocal` name;
    - it hands it to a function, method (`self.helper(items)`, `super().start(items)`) or class
      of the same module whose code changes or stores it (followed three calls deep), or to a
      `@dataclass` of the module, which keeps it as a field.

    Local aliases are followed (`seen = items; seen.add(x)`), and so are closures. The message
    says what happens to the default and on which line.

    ## What it does not flag
    A mutable default that the function only reads is harmless, and it is by far the common
    case: in 21 real asyncio projects, 2 of the 35 mutable defaults (all of which
    flake8-bugbear's B006 reports) are ever changed. So these are not findings:

    - reading it: iterating, `in` tests, `len()`, truthiness, indexing, `.get()`, `.copy()`,
      `**kwargs`/`*args` unpacking, `yield from`, handing it to `sorted()`, `"".join()`,
      `other.extend()`, `other.update()` and other calls that copy or read;
    - a parameter rebound before it could be changed (`items = list(items)`,
      `kwargs = kwargs or {}` for an empty default, the copy in both branches of an `if`);
    - removing or reordering items of an empty default (`pop`, `clear`, `discard`, `sort`,
      `del x[k]`, `x -= s`...): that changes nothing or raises; whatever filled it first would be
      reported itself;
    - storing it in a local container that does not escape (`params["headers"] = headers`);
    - handing it to code the checker cannot see: a function of another module or library, or
      a method of an object of unknown type. Whether that code keeps or changes its argument is
      unknown, and flagging every forwarded default would bring back B006's noise. Nor is a
      callee's return value followed: `self.x = helper(items)` is not traced through `helper`.
    - `@overload` stubs and other bodies that never use the parameter.

    Names are resolved: a class of your own that happens to be called `list` is not the builtin.
    `None`, tuples, `frozenset()`, strings, numbers and other immutable values are fine.

    ## Why is this bad?
    A default is evaluated once, when the `def` statement runs, and the same object is handed to
    every call that does not pass the argument. Whatever one call adds to it is still there for
    the next one; a default that is returned or stored can be changed by whoever receives it.

    With coroutines it is worse: the calls need not even come one after another. Two concurrent
    `async def` calls that both use the default share one list *at the same time*, and every
    `await` in between is a point where the other coroutine can append to it, clear it or
    iterate over it. Results of one request leak into the response to another, and the bug
    only appears under load. Plain functions are checked too: in an asyncio program they are
    called from many tasks, and the default is just as shared.

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
    summary = "mutable default argument that the function mutates, returns or stores"
    nodes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        args = node.args
        if not args.defaults and not any(args.kw_defaults):
            return
        module: _Module | None = None
        for parameter, default in _defaults(args):
            kind = _mutable_kind(default, checker)
            if kind is None:
                continue
            if module is None:
                module = _Module(checker.tree)
            cls = _direct_class(checker)
            tracker = _Tracker(module, node, cls, parameter, _is_empty(default, kind), kind)
            escape = tracker.first_escape()
            if escape is not None:
                checker.report(default, _message(node, parameter, default, kind, escape))


def _message(node: ast.AST, parameter: str, default: ast.expr, kind: str, escape: _Escape) -> str:
    text = ast.unparse(default)
    if len(text) > 30:
        text = text[:27] + "..."
    shared = f"every call shares one {kind}"
    if isinstance(node, ast.AsyncFunctionDef):
        shared += ", concurrent calls too"
    return (
        f"default `{text}` of `{parameter}` {escape.what} (line {escape.line}): {shared}; "
        "default to `None` and create it in the body"
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


def _mutable_kind(default: ast.expr, checker: Checker) -> str | None:
    """``list``, ``dict``, ``defaultdict``...: what mutable container ``default`` builds, if any."""
    display = _DISPLAY_KINDS.get(type(default))
    if display is not None:
        return display
    if isinstance(default, ast.Call) and isinstance(default.func, ast.Name | ast.Attribute):
        callee = checker.ctx.resolve_call(default)
        if callee not in _MUTABLE_FACTORIES or _class_body_binds(checker, _root_name(default.func)):
            return None
        return callee.rpartition(".")[2]
    return None


def _is_empty(default: ast.expr, kind: str) -> bool:
    """Whether the default starts out empty (falsy), so ``x or {}`` never yields it."""
    if isinstance(default, ast.List | ast.Set):
        return not default.elts
    if isinstance(default, ast.Dict):
        return not default.keys
    if isinstance(default, ast.Call):
        factory_only = kind == "defaultdict" and len(default.args) <= 1
        keywords = {keyword.arg for keyword in default.keywords}
        return (not default.args or factory_only) and keywords <= {"maxlen"}
    return False


def _root_name(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute | ast.Subscript):
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


def _direct_class(checker: Checker) -> ast.ClassDef | None:
    """The class whose body holds the function being visited (its parent in the walk)."""
    parent = checker.parent
    return parent if isinstance(parent, ast.ClassDef) else None


# -- following the default through the function ---------------------------------------------

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
_Live = frozenset[str]  # the local names that may still hold the default at a point


@dataclass(frozen=True, slots=True)
class _Escape:
    """What the function does with the default: ``at`` is where, ``line`` the innermost line."""

    at: ast.AST
    line: int
    what: str


class _Module:
    """The module's top-level functions and classes, which calls can be followed into."""

    def __init__(self, tree: ast.Module) -> None:
        self.definitions: dict[str, list[ast.stmt]] = {}
        stack: list[ast.stmt] = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
                self.definitions.setdefault(node.name, []).insert(0, node)
            elif isinstance(node, ast.If | ast.Try):
                stack.extend(_nested_statements(node))

    def classes(self, name: str) -> list[ast.ClassDef]:
        return [d for d in self.definitions.get(name, ()) if isinstance(d, ast.ClassDef)]

    def functions(self, name: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [d for d in self.definitions.get(name, ()) if isinstance(d, _FUNCTIONS)]

    def method(
        self, cls: ast.ClassDef, name: str, seen: frozenset[str] = frozenset()
    ) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.ClassDef] | None:
        """``name`` as defined by ``cls`` or, along its bases, by a class of this module."""
        found = [n for n in cls.body if isinstance(n, _FUNCTIONS) and n.name == name]
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


@dataclass
class _Tracker:
    """Follows one parameter's default through a function body, in order, branch by branch."""

    module: _Module
    function: _Function
    cls: ast.ClassDef | None
    parameter: str
    empty: bool
    kind: str
    depth: int = 0
    visiting: frozenset[tuple[int, str]] = frozenset()
    # True in a function the default was handed to: what it returns goes back to the caller,
    # which is where that value is followed (or not), so returning it is no escape there.
    handed: bool = False
    escapes: dict[tuple[int, str], _Escape] = field(default_factory=dict)
    parameters: frozenset[str] = field(init=False)
    outer: dict[str, str] = field(init=False)  # global/nonlocal names: which of the two
    locals: frozenset[str] = field(init=False)  # names bound in the body (parameters are not)
    self_name: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = _parameter_names(self.function.args)
        self.outer = _declared_outer(self.function)
        self.locals = _local_names(self.function) - frozenset(self.outer)
        self.self_name = _self_name(self.function, self.cls)

    def first_escape(self, live: _Live | None = None) -> _Escape | None:
        """The first place the default is changed or escapes, following ``live`` names."""
        if live is None:
            live = frozenset({self.parameter})
        if isinstance(self.function, ast.Lambda):
            self._returned(self.function.body, self.function.body, live)
        else:
            self._block(self.function.body, live)
        if not self.escapes:
            return None
        return min(self.escapes.values(), key=lambda e: (_position(e.at), e.line))

    def _escape(self, at: ast.AST, what: str) -> None:
        line = getattr(at, "lineno", 0)
        self.escapes.setdefault((id(at), what), _Escape(at, line, what))

    # -- statements ----------------------------------------------------------------------

    def _block(self, statements: list[ast.stmt], live: _Live) -> _Live:
        for statement in statements:
            if not live:
                break
            live = self._statement(statement, live)
        return live

    def _statement(self, stmt: ast.stmt, live: _Live) -> _Live:
        if isinstance(stmt, ast.Assign):
            return self._assign(stmt.targets, stmt.value, live, stmt)
        if isinstance(stmt, ast.AnnAssign):
            return (
                live if stmt.value is None else self._assign([stmt.target], stmt.value, live, stmt)
            )
        if isinstance(stmt, ast.AugAssign):
            return self._augmented(stmt, live)
        if isinstance(stmt, ast.Return):
            if stmt.value is not None:
                self._returned(stmt.value, stmt, live)
            return frozenset()
        if isinstance(stmt, ast.Raise):
            self._expressions(stmt, live)
            return frozenset()
        if isinstance(stmt, ast.If):
            self._expression(stmt.test, live)
            return self._block(stmt.body, live) | self._block(stmt.orelse, live)
        if isinstance(stmt, ast.For | ast.AsyncFor):
            self._expression(stmt.iter, live)
            inside = self._unbind(stmt.target, live)
            after = live | self._loop_body(stmt.body, inside)
            return after | self._block(stmt.orelse, after)
        if isinstance(stmt, ast.While):
            self._expression(stmt.test, live)
            after = live | self._loop_body(stmt.body, live)
            return after | self._block(stmt.orelse, after)
        if isinstance(stmt, ast.Try | ast.TryStar):
            return self._try(stmt, live)
        if isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                self._expression(item.context_expr, live)
                if item.optional_vars is not None:
                    live = self._unbind(item.optional_vars, live)
            return self._block(stmt.body, live)
        if isinstance(stmt, ast.Match):
            self._expression(stmt.subject, live)
            after = live
            for case in stmt.cases:
                if case.guard is not None:
                    self._expression(case.guard, live)
                after |= self._block(case.body, live)
            return after
        if isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                live = self._unbind(target, live)
            return live
        if isinstance(stmt, (*_FUNCTIONS, ast.ClassDef)):
            return self._definition(stmt, live)
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            bound = {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
            return live - bound
        return self._expressions(stmt, live)

    def _loop_body(self, body: list[ast.stmt], live: _Live) -> _Live:
        """The body once, and again when it made new aliases a second pass could see."""
        once = self._block(body, live)
        if once - live:
            return once | self._block(body, live | once)
        return once

    def _expressions(self, stmt: ast.stmt, live: _Live) -> _Live:
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.expr):
                live = self._expression(child, live)
        return live

    def _try(self, stmt: ast.Try | ast.TryStar, live: _Live) -> _Live:
        body = self._block(stmt.body, live)
        after = self._block(stmt.orelse, body)
        for handler in stmt.handlers:
            if handler.type is not None:
                self._expression(handler.type, live | body)
            inside = live | body
            if handler.name is not None:
                inside -= {handler.name}
            after |= self._block(handler.body, inside)
        if stmt.finalbody:
            final = self._block(stmt.finalbody, after | live | body)
            return final if after else frozenset()
        return after

    def _assign(
        self, targets: list[ast.expr], value: ast.expr, live: _Live, stmt: ast.stmt
    ) -> _Live:
        live = self._expression(value, live)
        for target in targets:
            live = self._bind(target, value, live, stmt)
        return live

    def _bind(self, target: ast.expr, value: ast.expr | None, live: _Live, stmt: ast.stmt) -> _Live:
        holds = value is not None and bool(self._contained(value) & live)
        if isinstance(target, ast.Name):
            if target.id in self.outer:
                if holds:
                    self._escape(stmt, f"is stored in the {self.outer[target.id]} `{target.id}`")
                return live
            aliases = value is not None and bool(self._aliases(value) & live)
            return (live - {target.id}) | ({target.id} if aliases else frozenset())
        if isinstance(target, ast.Attribute):
            live = self._expression(target.value, live)
            if holds:
                self._escape(stmt, f"is stored in `{_short(target)}`")
            return live
        if isinstance(target, ast.Subscript):
            live = self._expression(target, live)
            if holds and self._shared_container(target.value, live):
                self._escape(stmt, f"is stored in `{_short(target.value)}`")
            return live
        if isinstance(target, ast.Tuple | ast.List):
            pairs = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
            for index, element in enumerate(target.elts):
                paired = (
                    value.elts[index] if pairs and isinstance(value, ast.Tuple | ast.List) else None
                )
                live = self._bind(element, paired, live, stmt)
            return live
        if isinstance(target, ast.Starred):
            return self._bind(target.value, None, live, stmt)
        return self._expression(target, live)

    def _unbind(self, target: ast.expr, live: _Live) -> _Live:
        names = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if isinstance(target, ast.Name | ast.Tuple | ast.List | ast.Starred):
            return live - names
        return self._expression(target, live)

    def _augmented(self, stmt: ast.AugAssign, live: _Live) -> _Live:
        live = self._expression(stmt.value, live)
        target = stmt.target
        if isinstance(target, ast.Name):
            shrinking = self.empty and isinstance(stmt.op, _SHRINKING_OPERATORS)
            if target.id in live and not shrinking:
                operator = _AUGMENTED.get(type(stmt.op), "an augmented assignment")
                self._escape(stmt, f"is changed in place by `{operator}`")
            return live
        return self._expression(target, live)

    def _returned(self, value: ast.expr, at: ast.AST, live: _Live) -> None:
        self._expression(value, live)
        if not self.handed and self._contained(value) & live:
            self._escape(at, "is returned")

    def _definition(
        self, stmt: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, live: _Live
    ) -> _Live:
        for decorator in stmt.decorator_list:
            self._expression(decorator, live)
        if isinstance(stmt, ast.ClassDef):
            return live - {stmt.name}
        for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
            if default is not None:
                self._expression(default, live)
        self._closure(stmt, live)
        return live - {stmt.name}

    def _closure(self, function: _Function, live: _Live) -> None:
        """A nested function that uses the default changes it whenever it is called."""
        inner = _Tracker(
            self.module, function, None, self.parameter, self.empty, self.kind, self.depth,
            self.visiting, handed=self.handed,
        )  # fmt: skip
        captured = live - inner.parameters - inner.locals
        if captured:
            inner.first_escape(captured)
            for key, escape in inner.escapes.items():
                self.escapes.setdefault(key, escape)

    # -- expressions ---------------------------------------------------------------------

    def _expression(self, expr: ast.expr, live: _Live) -> _Live:
        """Classify every use of a live name in ``expr``; return ``live`` after its walruses."""
        stack: list[tuple[ast.AST, tuple[ast.AST, ...]]] = [(expr, ())]
        while stack:
            node, parents = stack.pop()
            if isinstance(node, ast.Name):
                if node.id in live and isinstance(node.ctx, ast.Load):
                    self._use(node, parents, live)
                continue
            if isinstance(node, ast.Lambda):
                self._closure(node, live)
                continue
            if isinstance(node, ast.Yield) and node.value is not None:
                self._yielded(node, node.value, live)
            if isinstance(node, ast.NamedExpr):
                aliases = bool(self._aliases(node.value) & live)
                name = node.target.id
                live = (live - {name}) | ({name} if aliases else frozenset())
            inner = (*parents, node)
            stack.extend((child, inner) for child in ast.iter_child_nodes(node))
        return live

    def _yielded(self, node: ast.Yield, value: ast.expr, live: _Live) -> None:
        if not self.handed and self._contained(value) & live:
            self._escape(node, "is yielded")

    def _use(self, name: ast.Name, parents: tuple[ast.AST, ...], live: _Live) -> None:
        parent = parents[-1] if parents else None
        grandparent = parents[-2] if len(parents) > 1 else None
        if isinstance(parent, ast.Attribute) and parent.value is name:
            if isinstance(grandparent, ast.Call) and grandparent.func is parent:
                verb = _MUTATORS.get(parent.attr)
                if verb is not None and not (self.empty and parent.attr in _SHRINKING):
                    self._escape(grandparent, verb)
        elif isinstance(parent, ast.Subscript) and parent.value is name:
            self._item_use(parent, parents[:-1])
        elif isinstance(parent, ast.Call) and any(arg is name for arg in parent.args):
            self._argument(parent, _position_of(name, parent), None, live)
        elif isinstance(parent, ast.keyword) and parent.arg is not None:  # not `**items`
            assert isinstance(grandparent, ast.Call)
            self._argument(grandparent, None, parent.arg, live)

    def _item_use(self, subscript: ast.Subscript, parents: tuple[ast.AST, ...]) -> None:
        if isinstance(subscript.ctx, ast.Store):
            self._escape(subscript, "has an item assigned")
        elif isinstance(subscript.ctx, ast.Del):
            if not self.empty:
                self._escape(subscript, "has an item deleted")
        elif self.kind == "defaultdict":
            self._escape(subscript, "gets missing keys inserted by `[...]` (a defaultdict)")
        elif not self.empty:  # an empty default has no items to change
            self._nested_item_use(subscript, parents)

    def _nested_item_use(self, item: ast.expr, parents: tuple[ast.AST, ...]) -> None:
        """``x[k][j] = v`` or ``x[k].append(v)``: an object inside the default is changed."""
        for parent in reversed(parents):
            if isinstance(parent, ast.Call) and isinstance(item, ast.Attribute):
                if parent.func is item and item.attr in _MUTATORS:
                    self._escape(parent, "has an item changed")
                return
            if not isinstance(parent, ast.Subscript | ast.Attribute) or parent.value is not item:
                return
            if not isinstance(parent.ctx, ast.Load):
                self._escape(parent, "has an item changed")
                return
            item = parent

    # -- calls ---------------------------------------------------------------------------

    def _argument(
        self, call: ast.Call, index: int | None, keyword: str | None, live: _Live
    ) -> None:
        func = call.func
        if isinstance(func, ast.Attribute) and _kept_by_method(call, func.attr, index):
            if self._shared_container(func.value, live):
                self._escape(call, f"is stored in `{_short(func.value)}` by `.{func.attr}()`")
            return
        if self.depth >= _MAX_CALL_DEPTH:
            return
        for callee in self._callees(call):
            if callee.function is None:
                if index is not None or keyword is not None:
                    self._escape(call, f"is passed to `{callee.label}`, which stores it")
                    return
                continue
            parameter = _parameter_for(callee.function, callee.skipped, index, keyword)
            key = (id(callee.function), parameter or "")
            if parameter is None or key in self.visiting:
                continue
            tracker = _Tracker(
                self.module,
                callee.function,
                callee.cls,
                parameter,
                self.empty,
                self.kind,
                self.depth + 1,
                self.visiting | {key, (id(self.function), self.parameter)},
                handed=True,
            )
            inner = tracker.first_escape()
            if inner is not None:
                what = f"is passed to `{callee.label}`, where it {inner.what}"
                self.escapes.setdefault((id(call), what), _Escape(call, inner.line, what))
                return

    def _shared_container(self, container: ast.expr, live: _Live) -> bool:
        """Whether a container outlives the call: anything but a plain local variable."""
        if isinstance(container, ast.Name):
            return container.id not in self.locals or container.id in live
        return True

    def _callees(self, call: ast.Call) -> list[_Callee]:
        func = call.func
        label = f"{_short(func)}()"
        if isinstance(func, ast.Name):
            if func.id in self.locals or func.id in self.parameters:
                return []
            callees = [_Callee(f, None, 0, label) for f in self.module.functions(func.id)]
            for cls in self.module.classes(func.id):
                init = self.module.method(cls, "__init__")
                if init is not None:
                    callees.append(_Callee(init[0], init[1], 1, label))
                elif _has_decorator(cls, "dataclass"):
                    callees.append(_Callee(None, cls, 0, label))
            return callees
        if not isinstance(func, ast.Attribute) or self.cls is None:
            return []
        owner = func.value
        found = None
        if isinstance(owner, ast.Name) and owner.id == self.self_name:
            found = self.module.method(self.cls, func.attr)
        elif _is_super_call(owner):
            found = self.module.inherited(self.cls, func.attr)
        if found is None:
            return []
        function, cls = found
        skipped = 0 if _has_decorator(function, "staticmethod") else 1
        return [_Callee(function, cls, skipped, label)]

    # -- values --------------------------------------------------------------------------

    def _aliases(self, value: ast.expr) -> set[str]:
        """The names whose object ``value`` may be: ``x``, ``x if c else y``, ``x or y``."""
        if isinstance(value, ast.Name):
            return {value.id}
        if isinstance(value, ast.NamedExpr):
            return self._aliases(value.value)
        if isinstance(value, ast.IfExp):
            return self._aliases(value.body) | self._aliases(value.orelse)
        if isinstance(value, ast.BoolOp):
            names: set[str] = set()
            last = len(value.values) - 1
            for position, operand in enumerate(value.values):
                # `x or {}` never yields an empty default: it is falsy
                skip = isinstance(value.op, ast.Or) and self.empty and position < last
                if not (skip and isinstance(operand, ast.Name)):
                    names |= self._aliases(operand)
            return names
        return set()

    def _contained(self, value: ast.expr) -> set[str]:
        """The names whose object ``value`` is or holds (as an element of a display)."""
        names = self._aliases(value)
        if isinstance(value, ast.Tuple | ast.List | ast.Set):
            for element in value.elts:
                if not isinstance(element, ast.Starred):
                    names |= self._contained(element)
        elif isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if key is not None:
                    names |= self._contained(item)
        return names


def _kept_by_method(call: ast.Call, method: str, index: int | None) -> bool:
    shape = _STORERS.get(method)
    return shape == (len(call.args), index) and not call.keywords


def _position_of(argument: ast.expr, call: ast.Call) -> int | None:
    """The index of a positional argument, unless a ``*args`` before it hides the mapping."""
    for index, arg in enumerate(call.args):
        if arg is argument:
            return index
        if isinstance(arg, ast.Starred):
            return None
    return None


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


def _has_decorator(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, name: str) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name) and target.id == name:
            return True
        if isinstance(target, ast.Attribute) and target.attr == name:
            return True
    return False


def _is_super_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
    )


def _parameter_names(args: ast.arguments) -> frozenset[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return frozenset(arg.arg for arg in every if arg is not None)


def _self_name(function: _Function, cls: ast.ClassDef | None) -> str | None:
    if cls is None or not isinstance(function, _FUNCTIONS):
        return None
    if _has_decorator(function, "staticmethod"):
        return None
    positional = [*function.args.posonlyargs, *function.args.args]
    return positional[0].arg if positional else None


def _scope_nodes(function: _Function) -> Iterator[ast.AST]:
    """The nodes of ``function``'s own scope (not those of nested functions and classes)."""
    stack: list[ast.AST] = (
        [function.body] if isinstance(function, ast.Lambda) else list(function.body)
    )
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
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
        elif isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return frozenset(names)


def _short(expr: ast.expr) -> str:
    text = ast.unparse(expr)
    return text if len(text) <= 30 else text[:27] + "..."


def _position(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
