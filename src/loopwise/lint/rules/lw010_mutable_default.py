"""LW010: mutable default argument that the function mutates or lets escape."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from loopwise.lint._ast import SCOPE_NODES
from loopwise.lint._checker import Checker
from loopwise.lint._fix import Edit, Fix
from loopwise.lint._rule import Rule
from loopwise.lint.rules._definitions import _Module
from loopwise.lint.rules._escape import _Escape, _Tracker
from loopwise.lint.rules._fixes import indentation, segment

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


class MutableDefaultArgument(Rule[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]):
    """## What it does
    Checks for parameter defaults that are mutable containers — `[]`, `{}`, set displays,
    list/dict/set comprehensions, and calls to `list()`, `dict()`, `set()`, `bytearray()`,
    `collections.defaultdict()`, `OrderedDict()`, `Counter()`, `deque()`, `ChainMap()`,
    `UserDict()` and `UserList()` through any import alias — in a `def`, `async def` or
    `lambda`, **when the function changes the default or lets it escape**:

    - it mutates it: `append`, `extend`, `insert`, `update`, `setdefault`, `pop`, `clear`, `add`,
      `remove`, `discard`, `sort`, `reverse` and the like, `x[k] = v`, `del x[k]`, `x[k] += 1`,
      `x += [...]`/`x |= {...}` (in place for every mutable container), `x[k]` on a
      `defaultdict` default (a missing key is inserted), or a standard library function that
      changes its first argument in place: `heapq.heappush()`, `heappop()`, `heapify()`,
      `heapreplace()`, `heappushpop()`, `bisect.insort()` (and `_left`/`_right`),
      `random.shuffle()`, `operator.setitem()`/`delitem()`;
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
      `del x[k]`, `x -= s`, `heapq.heappop()`, `random.shuffle()`...): that changes nothing or
      raises; whatever filled it first would be reported itself;
    - storing it in a local container that does not escape (`params["headers"] = headers`);
    - handing it to code the checker cannot see: a function of another module or library
      (other than the standard library mutators above; `heapq.nsmallest()`, `bisect.bisect()`,
      `random.choice()` only read), or a method of an object of unknown type. Whether that
      code keeps or changes its argument is unknown, and flagging every forwarded default
      would bring back B006's noise. Nor is a callee's return value followed:
      `self.x = helper(items)` is not traced through `helper`.
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

    ## Fix safety
    Safe when the parameter has no annotation, is never assigned in the function, its name
    does not start with `_` and its default is an empty `[]`, `{}`, `list()`, `dict()`,
    `set()`...: the default becomes `None` and `if name is None: name = <the old default>` is
    added at the top of the body, so each call gets its own container. Unsafe otherwise (the
    annotation gains `| None`; a non-empty default is evaluated at every call, not once, and
    names in it are looked up then; `_memo={}` is the idiom of a cache shared on purpose, which
    the fix would drop). No fix for a lambda, a body written on the `def` line, or a default
    naming something the function itself binds (`list=list()`: in the body, `list` is the
    parameter).
    """

    code = "LW010"
    name = "mutable-default-argument"
    summary = "mutable default argument that the function mutates, returns or stores"
    node_types = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    fix_safety = "sometimes"

    def visit(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, checker: Checker
    ) -> None:
        args = node.args
        if not args.defaults and not any(args.kw_defaults):
            return
        module: _Module | None = None
        for parameter, default in _defaults(args):
            kind = _mutable_kind(default, checker)
            if kind is None:
                continue
            if module is None:
                module = checker.per_module(_Module)
            cls = _direct_class(checker)
            tracker = _Tracker(module, node, cls, parameter, _is_empty(default, kind), kind)
            escape = tracker.first_escape()
            if escape is not None:
                fix = _sentinel_fix(node, parameter, default, checker) if checker.fixes else None
                message = _message(node, parameter, default, kind, escape)
                checker.report(default, message, fix=fix)


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
        if not isinstance(node, SCOPE_NODES):
            stack.extend(ast.iter_child_nodes(node))


def _direct_class(checker: Checker) -> ast.ClassDef | None:
    """The class whose body holds the function being visited (its parent in the walk)."""
    parent = checker.parent
    return parent if isinstance(parent, ast.ClassDef) else None


def _sentinel_fix(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda,
    parameter: str,
    default: ast.expr,
    checker: Checker,
) -> Fix | None:
    """Default to ``None`` and create the container at the top of the body."""
    if isinstance(node, ast.Lambda):
        return None
    body = node.body
    first = body[0]
    if _is_docstring(first):
        if len(body) < 2:
            return None
        first = body[1]
    indent = indentation(checker, first)
    text = segment(checker, default)
    if first.lineno == node.lineno or indent is None or text is None:
        return None
    if _names_in(default) & _bound_in(node):
        return None  # in the body, a name of the default is the parameter or a local
    annotation = _annotation(node.args, parameter)
    safe = (
        annotation is None
        and not parameter.startswith("_")  # `_cache={}`: shared on purpose, as a memo
        and _plain_empty(default, node)
        and not _assigned(node, parameter)
    )
    end = default.end_col_offset or 0
    end_line = default.end_lineno or default.lineno
    edits = [Edit(default.lineno, default.col_offset, end_line, end, "None")]
    if annotation is not None:
        if isinstance(annotation, ast.Constant):
            return None  # a string annotation: leave it to a person
        end = annotation.end_col_offset or 0
        end_line = annotation.end_lineno or annotation.lineno
        edits.append(Edit.insert(end_line, end, " | None"))
    creation = f"{indent}if {parameter} is None:\n{indent}    {parameter} = {text}\n"
    decorators = getattr(first, "decorator_list", None)
    line = decorators[0].lineno if decorators else first.lineno  # before its `@`, not its `def`
    edits.append(Edit.insert(line, 0, creation))
    return Fix(f"default `{parameter}` to `None`", tuple(edits), safe=safe)


def _names_in(expr: ast.expr) -> set[str]:
    return {node.id for node in ast.walk(expr) if isinstance(node, ast.Name)}


def _bound_in(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """The names the function's own scope binds: parameters, assignments, imports, defs."""
    arguments = node.args
    bound = {
        a.arg
        for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    }
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
            bound.add(child.id)
        elif isinstance(child, ast.alias):
            bound.add((child.asname or child.name).split(".")[0])
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(child.name)
            continue  # their bodies are other scopes
        if not isinstance(child, ast.Lambda):
            stack.extend(ast.iter_child_nodes(child))
    return bound


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _annotation(args: ast.arguments, parameter: str) -> ast.expr | None:
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        if arg.arg == parameter:
            return arg.annotation
    return None


def _plain_empty(default: ast.expr, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """An empty display, or a call without arguments of a name no parameter shadows."""
    if isinstance(default, ast.List | ast.Set):
        return not default.elts
    if isinstance(default, ast.Dict):
        return not default.keys
    if isinstance(default, ast.Call) and not default.args and not default.keywords:
        root = _root_name(default.func)
        arguments = node.args
        names = {a.arg for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]}
        return root is not None and root not in names
    return False


def _assigned(node: ast.FunctionDef | ast.AsyncFunctionDef, parameter: str) -> bool:
    """Whether the function (or a function in it) binds ``parameter`` anywhere."""
    for child in ast.walk(node):
        if (
            isinstance(child, ast.Name)
            and child.id == parameter
            and not isinstance(child.ctx, ast.Load)
        ):
            return True
        if isinstance(child, ast.Global | ast.Nonlocal) and parameter in child.names:
            return True
    return False
