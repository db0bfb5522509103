"""The cross-module symbol table: which project functions are coroutines, run a loop, and so on.

Every file is first reduced to a :class:`ModuleSummary` (small, picklable, cacheable); the
:class:`Project` joins them so a rule in one module can ask about a name defined in another,
following imports, re-exports and project base classes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from loopwise.lint._ast import statement_blocks, walk_by_function, walk_shallow
from loopwise.lint._awaits import _awaited, _awaiting_helpers, _detached, _makes_a_task
from loopwise.lint._context import FileContext

__all__ = ["ClassInfo", "FunctionInfo", "ModuleSummary", "Project", "summarize"]

# Decorators that keep an ``async def`` a coroutine function.
_TRANSPARENT_DECORATORS = frozenset(
    {
        "abc.abstractmethod",
        "builtins.classmethod",
        "builtins.staticmethod",
        "functools.wraps",
        "typing.final",
        "typing.override",
        "typing_extensions.final",
        "typing_extensions.override",
    }
)

_LOOP_RUNNERS = frozenset(
    {"asyncio.run", "asyncio.Runner.run", "asyncio.AbstractEventLoop.run_until_complete"}
)
_URL_PARAM = re.compile(r"(?:^|_)(?:url|uri|href|link|endpoint)$", re.IGNORECASE)
_SESSION_PARAM = re.compile(r"(?:^|_)(?:session|client)$", re.IGNORECASE)
_SESSION_CLASSES = frozenset({"aiohttp.ClientSession", "aiohttp.client.ClientSession"})


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """Facts about one ``def``/``async def`` that other modules may need.

    ``coroutine`` is true only for an ``async def`` whose decorators are known to keep it one.
    ``runs_loop`` is true for a sync function that itself starts an event loop.
    ``calls`` lists the qualified names it calls (for transitive facts).
    ``session_per_call`` is true when it takes a URL parameter and creates an
    ``aiohttp.ClientSession`` each time it runs, closed before it returns (``async with`` or
    ``.close()``); not when it is handed a session (a ``session``/``client`` parameter, or one
    annotated ``ClientSession``) nor when the session it makes outlives the call.
    ``returns`` is the type its return annotation names (a known type or a class), if any.
    ``loop_free_returns`` has, for each ``return <value>`` of a sync function that no direct
    loop start (``asyncio.run``, ``run_until_complete``...) certainly precedes, the qualified
    names called on the way to it (to tell whether one of them starts a loop).
    """

    is_async: bool
    coroutine: bool
    runs_loop: bool = False
    calls: tuple[str, ...] = ()
    session_per_call: bool = False
    returns: str | None = None
    loop_free_returns: tuple[tuple[str, ...], ...] = ()
    # Of a sync function: each call LW005 would flag (qualified name, line), in order, and the
    # line of the first call of each other callee (for chains through helpers); and whether a
    # cache decorator (`functools.cache`, `lru_cache`) makes repeated calls skip its body.
    blocking: tuple[tuple[str, int], ...] = ()
    call_lines: tuple[tuple[str, int], ...] = ()
    cached: bool = False


@dataclass(frozen=True, slots=True)
class ClassInfo:
    """``attributes``: the type of each attribute the class binds itself (None: unknown)."""

    bases: tuple[str | None, ...]
    methods: dict[str, FunctionInfo]
    attributes: dict[str, str | None] = field(default_factory=dict)


@dataclass(slots=True)
class ModuleSummary:
    name: str
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    # Names of functions this module runs as tasks or hands over uncalled (see `_awaits._detached`),
    # and of those it awaits in line (`await self.close()`: "close"; `await mod.f()`: "pkg.mod.f").
    detached: frozenset[str] = frozenset()
    awaited: frozenset[str] = frozenset()
    # The module's file as a message names it: `pkg/config.py`, `pkg/__init__.py`.
    file: str = ""
    # `with_retries(fetch_page, url)`: ("with_retries", "fetch_page"), an own `async def` handed
    # uncalled to something that is not a task starter; and the functions defined here that
    # await a call of one of their parameters (`return await fn(*args)`).
    handed_over: frozenset[tuple[str, str]] = frozenset()
    awaiting_helpers: frozenset[str] = frozenset()


def summarize(ctx: FileContext) -> ModuleSummary:
    """Reduce a parsed module to what other modules need to know about it."""
    summary = ModuleSummary(name=ctx.module.name)
    scope = ctx.module
    # one walk shared by every summary below: the whole module, and each function's own nodes
    nodes, own_nodes = walk_by_function(ctx.tree)
    for bound, target in scope.imports.items():
        if target is not None and bound not in scope.ambiguous:
            summary.aliases[bound] = target
    for name, node in scope.defs.items():
        if name in scope.ambiguous:
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            summary.functions[name] = _function_info(ctx, node, own_nodes[node])
        elif isinstance(node, ast.ClassDef):
            summary.classes[name] = _class_info(ctx, node, own_nodes)
    summary.detached, summary.handed_over = _detached(nodes, own_nodes)
    makes_tasks = _makes_a_task(nodes)
    summary.awaited = _awaited(ctx, nodes, own_nodes, makes_tasks)
    summary.awaiting_helpers = _awaiting_helpers(nodes, own_nodes, makes_tasks)
    return summary


def _class_info(
    ctx: FileContext, node: ast.ClassDef, own_nodes: dict[ast.AST, list[ast.AST]]
) -> ClassInfo:
    ctx.enter(node)
    try:
        methods: dict[str, FunctionInfo] = {}
        conflicting: set[str] = set()
        for statement in node.body:
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                if statement.name in methods:
                    previous = methods[statement.name]
                    if previous.is_async != isinstance(statement, ast.AsyncFunctionDef):
                        conflicting.add(statement.name)
                    if _is_overload_or_property(statement):
                        continue
                methods[statement.name] = _function_info(ctx, statement, own_nodes[statement])
            elif isinstance(statement, ast.Assign | ast.AnnAssign):
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                )
                conflicting.update(t.id for t in targets if isinstance(t, ast.Name))
        for name in conflicting:
            methods.pop(name, None)
        bases = tuple(ctx.resolve(base) for base in node.bases)
        qualname = f"{ctx.module.name}.{node.name}"
        attributes = ctx.class_attribute_types(node, qualname)
        return ClassInfo(bases=bases, methods=methods, attributes=attributes)
    finally:
        ctx.leave(node)


def _is_overload_or_property(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    names = {getattr(d, "attr", getattr(d, "id", "")) for d in node.decorator_list}
    return bool(names & {"overload", "setter", "getter", "deleter"})


def _function_info(
    ctx: FileContext, node: ast.FunctionDef | ast.AsyncFunctionDef, own_nodes: list[ast.AST]
) -> FunctionInfo:
    """The facts about ``node``; ``own_nodes``: what ``walk_shallow(node)`` yields."""
    is_async = isinstance(node, ast.AsyncFunctionDef)
    transparent = all(
        (ctx.resolve(d.func if isinstance(d, ast.Call) else d) or "") in _TRANSPARENT_DECORATORS
        for d in node.decorator_list
    )
    returns = ctx.declared_return(node)
    # Imported here: the rules import this module (through the runner) when they load.
    from loopwise.lint.rules.lw005_blocking_call import blocks_in_any_context

    ctx.enter(node)
    try:
        calls: list[str] = []
        call_lines: dict[str, int] = {}
        blocking: list[tuple[str, int]] = []
        runs_loop = False
        sessions: list[ast.Call] = []
        loop_free_returns = () if is_async else tuple(_loop_free_returns(node.body, _Ran(ctx)))
        for child in own_nodes:
            if not isinstance(child, ast.Call):
                continue
            callee = ctx.resolve_call(child)
            if callee is None:
                if (
                    isinstance(child.func, ast.Attribute)
                    and child.func.attr == "run_until_complete"
                ):
                    runs_loop = True
                continue
            calls.append(callee)
            if not is_async:
                call_lines.setdefault(callee, child.lineno)
                if blocks_in_any_context(child, callee):
                    blocking.append((callee, child.lineno))
            runs_loop = runs_loop or callee in _LOOP_RUNNERS
            if callee in _SESSION_CLASSES:
                sessions.append(child)
    finally:
        ctx.leave(node)
    params = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    takes_url = any(_URL_PARAM.search(arg.arg) for arg in params)
    return FunctionInfo(
        is_async=is_async,
        coroutine=is_async and transparent,
        runs_loop=runs_loop and not is_async,
        calls=tuple(sorted(set(calls))),
        session_per_call=takes_url and _session_per_call(node, params, sessions),
        returns=returns,
        loop_free_returns=loop_free_returns,
        blocking=tuple(sorted(blocking, key=lambda item: item[1])),
        call_lines=tuple(sorted(call_lines.items(), key=lambda item: item[1])),
        cached=not is_async and _is_cached(ctx, node),
    )


_CACHES = frozenset({"functools.cache", "functools.lru_cache"})


def _is_cached(ctx: FileContext, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        ctx.resolve(d.func if isinstance(d, ast.Call) else d) in _CACHES
        for d in node.decorator_list
    )


def _loop_free_returns(body: list[ast.stmt], before: _Ran) -> Iterator[tuple[str, ...]]:
    """The callees on the way to each ``return <value>`` in ``body`` that no direct loop start
    certainly precedes. ``before``: the simple statements that surely ran before ``body``."""
    ran = _Ran(before.ctx, before)
    for statement in body:
        if isinstance(statement, ast.Return):
            value = statement.value
            if value is not None and not isinstance(value, ast.Constant):
                ran.statements.append(statement)
                callees = ran.callees()
                if callees is not None:
                    yield tuple(sorted(callees))
            return
        if isinstance(statement, _SIMPLE_STATEMENTS):
            ran.statements.append(statement)
        elif not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for block in statement_blocks(statement):
                yield from _loop_free_returns(block, ran)


_SIMPLE_STATEMENTS = (ast.Expr, ast.Assign, ast.AnnAssign, ast.AugAssign)


class _Ran:
    """The simple statements that surely ran before a point of a function: those of one block
    (``statements``) after those of the enclosing blocks (``outer``).

    Their callees are walked only when a return needs them, and each statement only once: a
    block that asks folds the enclosing blocks' statements into theirs first. An enclosing
    block gains no statements while a nested one is being read, so what it has folded holds.
    """

    def __init__(self, ctx: FileContext, outer: _Ran | None = None) -> None:
        self.ctx = ctx
        self.outer = outer
        self.statements: list[ast.stmt] = []
        self._folded: set[str] | None = None  # the callees of the statements walked so far
        self._walked = 0  # how many of ``statements`` are in ``_folded``
        self._starts_loop = False

    def callees(self) -> set[str] | None:
        """The qualified names the statements call, or None when one of them starts a loop."""
        if self._starts_loop:
            return None
        if self._folded is None:
            inherited = self.outer.callees() if self.outer is not None else set()
            if inherited is None:
                self._starts_loop = True
                return None
            self._folded = set(inherited)
        for statement in self.statements[self._walked :]:
            self._walked += 1
            if not _add_callees_unless_loop(self.ctx, statement, self._folded):
                self._starts_loop = True
                return None
        return self._folded


def _add_callees_unless_loop(ctx: FileContext, statement: ast.stmt, callees: set[str]) -> bool:
    """Add the qualified names ``statement`` calls to ``callees``; False when it starts a loop."""
    for node in walk_shallow(statement):
        if not isinstance(node, ast.Call):
            continue
        callee = ctx.resolve_call(node)
        if callee in _LOOP_RUNNERS or (
            isinstance(node.func, ast.Attribute) and node.func.attr == "run_until_complete"
        ):
            return False
        if callee is not None:
            callees.add(callee)
    return True


def _session_per_call(node: ast.AST, params: list[ast.arg], sessions: list[ast.Call]) -> bool:
    """Whether one of ``sessions`` (made in ``node``) is closed in ``node`` too."""
    if not sessions:
        return False
    for arg in params:
        if _SESSION_PARAM.search(arg.arg) or _names_session(arg.annotation):
            return False
    entered: set[int] = set()  # `async with <expr>` expressions
    closed: set[str] = set()  # locals entered with `async with` or `.close()`d
    assigned: dict[int, str] = {}  # value expression -> the local it is assigned to
    for child in walk_shallow(node):
        if isinstance(child, ast.AsyncWith):
            for item in child.items:
                entered.add(id(item.context_expr))
                if isinstance(item.context_expr, ast.Name):
                    closed.add(item.context_expr.id)
        elif isinstance(child, ast.Assign | ast.AnnAssign) and child.value is not None:
            targets = child.targets if isinstance(child, ast.Assign) else [child.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                assigned[id(child.value)] = targets[0].id
        elif (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr == "close"
            and isinstance(child.func.value, ast.Name)
        ):
            closed.add(child.func.value.id)
    return any(id(call) in entered or assigned.get(id(call)) in closed for call in sessions)


def _names_session(annotation: ast.AST | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant):
        return "ClientSession" in str(annotation.value)
    names = {getattr(node, "id", getattr(node, "attr", "")) for node in ast.walk(annotation)}
    return "ClientSession" in names


class Project:
    """The union of every checked module's summary, queried by qualified name."""

    def __init__(self, summaries: list[ModuleSummary]) -> None:
        self.modules = {summary.name: summary for summary in summaries}
        self._loop_runners: frozenset[str] | None = None
        self._loop_free_returners: frozenset[str] | None = None
        self._detached: tuple[frozenset[str], frozenset[str]] | None = None

    def detached(self, qualname: str) -> bool:
        """Whether the function ``qualname`` only runs as a task or handed over, never awaited.

        Mostly by name: some module runs a ``name()`` as a task or hands one over, and no module
        awaits one in line (nor the function itself, by its qualified name). Handed to a project
        function that awaits a call of its parameter (``await with_retries(fetch_page, url)``),
        it is awaited in line.
        """
        detached, _ = self._detached_and_awaited()
        return qualname.rpartition(".")[2] in detached and not self.awaited(qualname)

    def awaited(self, qualname: str) -> bool:
        """Whether some module awaits the function ``qualname`` in line (mostly by name)."""
        _, awaited = self._detached_and_awaited()
        return qualname.rpartition(".")[2] in awaited or qualname in awaited

    def _detached_and_awaited(self) -> tuple[frozenset[str], frozenset[str]]:
        if self._detached is None:
            modules = self.modules.values()
            detached = set().union(*(module.detached for module in modules))
            awaited = set().union(*(module.awaited for module in modules))
            helpers = set().union(*(module.awaiting_helpers for module in modules))
            for module in modules:
                for receiver, name in module.handed_over:
                    (awaited if receiver in helpers else detached).add(name)
            self._detached = (frozenset(detached), frozenset(awaited))
        return self._detached

    def function(self, qualname: str) -> FunctionInfo | None:
        """The project function or method a qualified name refers to, following re-exports."""
        found = self._lookup(qualname, depth=0)
        return found if isinstance(found, FunctionInfo) else None

    def is_class(self, qualname: str) -> bool:
        return isinstance(self._lookup(qualname, depth=0), ClassInfo)

    def canonical(self, qualname: str) -> str:
        """The defining qualified name of a re-exported function (for transitive facts)."""
        return self._canonical(qualname, depth=0) or qualname

    def _split(self, qualname: str) -> tuple[ModuleSummary, list[str]] | None:
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = self.modules.get(".".join(parts[:cut]))
            if module is not None:
                return module, parts[cut:]
        return None

    def _canonical(self, qualname: str, depth: int) -> str | None:
        split = self._split(qualname)
        if split is None or depth > 20:
            return None
        module, rest = split
        head = rest[0]
        if head in module.aliases and head not in module.functions and head not in module.classes:
            target = ".".join([module.aliases[head], *rest[1:]])
            return self._canonical(target, depth + 1) or target
        return qualname

    def _lookup(self, qualname: str, depth: int) -> FunctionInfo | ClassInfo | None:
        split = self._split(qualname)
        if split is None or depth > 20:
            return None
        module, rest = split
        head, tail = rest[0], rest[1:]
        if head in module.functions:
            return module.functions[head] if not tail else None
        if head in module.classes:
            if not tail:
                return module.classes[head]
            if len(tail) == 1:
                return self.method(f"{module.name}.{head}", tail[0])
            return None
        if head in module.aliases:
            return self._lookup(".".join([module.aliases[head], *tail]), depth + 1)
        return None

    def method(self, class_qualname: str, name: str) -> FunctionInfo | None:
        """The method ``name`` as found along the project's MRO, or None when it could be elsewhere.

        A base class outside the project might define the method, so the search gives up (None)
        when it reaches an unknown base before finding ``name``.
        """
        for info in self._mro(class_qualname):
            if info is None:
                return None
            if name in info.methods:
                return info.methods[name]
        return None

    def _mro(self, class_qualname: str) -> Iterator[ClassInfo | None]:
        """The project classes along ``class_qualname``'s MRO, breadth first; None (and the
        end) where a class or a base is not the project's, so it could bind anything."""
        seen: set[str] = set()
        queue = [class_qualname]
        while queue:
            current = self.canonical(queue.pop(0))
            if current in seen:
                continue
            seen.add(current)
            info = self._lookup(current, depth=0)
            if not isinstance(info, ClassInfo):
                yield None
                return
            yield info
            for base in info.bases:
                if base is None:
                    yield None
                    return
                if base not in ("builtins.object", "typing.Generic", "abc.ABC"):
                    queue.append(base)

    def attribute_type(self, class_qualname: str, name: str) -> str | None:
        """The type of attribute ``name`` of a project class's instances, found along its MRO.

        None when unknown, also when a base class outside the project might bind it.
        """
        for info in self._mro(class_qualname):
            if info is None:
                return None
            if name in info.attributes:  # properties included
                return info.attributes[name]
            if name in info.methods:
                return None
        return None

    def runs_loop(self, qualname: str) -> bool:
        """True for a sync project function that starts an event loop, itself or through calls."""
        return self.canonical(qualname) in self._loop_running_functions()

    def returns_without_loop(self, qualname: str) -> bool:
        """True for a sync project function with a ``return <value>`` that no loop start
        certainly precedes (``if run_async: return coro``): the path an awaiting caller takes.

        A call on the way to that return certainly starts a loop when its callee starts one and
        has no such return itself (`return _serve(..., run_async)` passes the flag on).
        """
        return self.canonical(qualname) in self._loop_free_returning_functions()

    def _loop_free_returning_functions(self) -> frozenset[str]:
        if self._loop_free_returners is not None:
            return self._loop_free_returners
        running = self._loop_running_functions()
        paths: dict[str, tuple[tuple[str, ...], ...]] = {}
        for module in self.modules.values():
            for name, info in module.functions.items():
                if info.loop_free_returns:
                    paths[f"{module.name}.{name}"] = tuple(
                        tuple(self.canonical(callee) for callee in path)
                        for path in info.loop_free_returns
                    )
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, returns in paths.items():
                if name not in found and any(
                    all(callee not in running or callee in found for callee in path)
                    for path in returns
                ):
                    found.add(name)
                    changed = True
        self._loop_free_returners = frozenset(found)
        return self._loop_free_returners

    def _loop_running_functions(self) -> frozenset[str]:
        if self._loop_runners is not None:
            return self._loop_runners
        sync_functions: dict[str, FunctionInfo] = {}
        for module in self.modules.values():
            for name, info in module.functions.items():
                if not info.is_async:
                    sync_functions[f"{module.name}.{name}"] = info
        running = {name for name, info in sync_functions.items() if info.runs_loop}
        changed = True
        while changed:
            changed = False
            for name, info in sync_functions.items():
                if name in running:
                    continue
                if any(self.canonical(callee) in running for callee in info.calls):
                    running.add(name)
                    changed = True
        self._loop_runners = frozenset(running)
        return self._loop_runners
