"""LW008: ClientSession misuse."""

from __future__ import annotations

import ast
import weakref
from collections.abc import Iterator

from loopwise.lint._ast import COMPREHENSIONS, FUNCTIONS, SCOPE_NODES
from loopwise.lint._checker import Checker
from loopwise.lint._project import FunctionInfo, Project
from loopwise.lint._rule import Rule
from loopwise.lint.rules._definitions import _scope_nodes
from loopwise.lint.rules._local_names import INERT_PARENTS
from loopwise.lint.rules._shared import call_name, in_test_file

_SESSION_CLASSES = frozenset({"aiohttp.ClientSession", "aiohttp.client.ClientSession"})
_GATHER = "asyncio.gather"
_CLOSERS = frozenset({"close", "__aexit__"})
_SCOPED, _LEAKED, _KEPT = "scoped", "leaked", "kept"
_ON_PURPOSE = "left open on purpose"  # a test of the unclosed session itself
_PER_CALL_NAMES: weakref.WeakKeyDictionary[Project, frozenset[str]] = weakref.WeakKeyDictionary()
# Where a use of the session's name neither closes it nor hands it to anything else.


class ClientSessionMisuse(Rule[ast.Call]):
    """## What it does
    Checks for three ways of misusing `aiohttp.ClientSession` (however it is imported:
    `from aiohttp import ClientSession`, `import aiohttp as ah`, ...):

    - a session created inside a loop body or a comprehension and closed in the same function
      (`async with`, `.close()`) or never closed: a new session per iteration. A session made
      in a loop and kept (one per service: `clients[name] = ClientSession(base_url=url)`, a
      dict comprehension, ...) is not flagged;
    - a call, inside a loop body, a comprehension, or as an argument of `asyncio.gather(...)`,
      to a function of the project (in any module) that takes a URL parameter (`url`,
      `base_url`, `endpoint`, ...) and creates and closes a session of its own each time it
      runs. The finding is at that call. For `gather`, at least two of its arguments must be
      such calls (`gather(*[fetch(u) for u in urls])` is a comprehension). A function that is
      handed a session (a `session`/`client` parameter, or one annotated `ClientSession`) is
      not such a function: it only makes its own as a fallback. Neither is one that returns
      or stores the session it makes;
    - a session created without `async with` that the function never closes: it is not
      `.close()`d there, not stored on `self`, another object or in a mapping
      (`app[CLIENT] = session`), not returned or yielded, not passed to another call, not used
      in a later `async with session:`, and its name is not declared `global`/`nonlocal`. A
      session used in any other way the checker cannot follow (put in a list, captured by a
      nested function, ...) is assumed to be taken care of.

    ## What it does not flag
    Sessions a test makes to examine the session itself, not to talk to a server, where
    closing them would defeat the test or nothing is left open. These are exempt only in a
    test module (a file named `test_*.py`, `*_test.py` or `conftest.py`, or one in a `tests`,
    `test` or `testing` package); in application code the same session is a leak:

    - a session created inside `with pytest.raises(...)` (the constructor is expected to fail),
      `with pytest.warns(...)` (the warning is what is checked), or a patching block,
      `with mock.patch(...)`/`patch.object(...)`/`patch.multiple(...)`/`mocker.patch(...)`
      (its I/O is mocked: no connection is opened). `patch.dict(...)` mocks no I/O and does
      not count;
    - a session the function deletes with `del` and then collects (`gc.collect()` after the
      `del`) or checks the warning of (`with pytest.warns(...)`, `assertWarns`): that tests
      the "Unclosed client session" finaliser. A bare `del session` closes nothing and is
      flagged;
    - a session whose `closed` attribute the function asserts on (`assert not
      session.closed`, `self.assertFalse(session.closed)`): leaving it open is the point.
      Merely reading `session.closed` elsewhere (`if session.closed:`) does not count.

    Such a session made in a loop body is still a session per iteration and flagged.

    ## Why is this bad?
    A `ClientSession` owns a connection pool, a DNS cache and cookie jar. A session per request
    (or per URL) opens a new TCP (and TLS) connection for every request, throws keep-alive away,
    and under load exhausts sockets and file descriptors; the aiohttp documentation says to
    create one session per application. A session that is never closed leaks its connections
    and logs "Unclosed client session" when it is garbage-collected.

    ## Example
    ```python
    import asyncio

    import aiohttp

    async def fetch(url):
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                return await response.text()

    async def main(urls):
        pages = await asyncio.gather(*[fetch(url) for url in urls])
        session = aiohttp.ClientSession()
        async with session.get(urls[0]) as response:
            print(response.status)
    ```

    ## Use instead
    ```python
    async def fetch(session, url):
        async with session.get(url) as response:
            return await response.text()

    async def main(urls):
        async with aiohttp.ClientSession() as session:
            pages = await asyncio.gather(*[fetch(session, url) for url in urls])
    ```
    In a web application, create the session in a startup hook (or `cleanup_ctx`), keep it in
    `app[CLIENT]`, and close it on shutdown.

    ## Fix safety
    No fix: where the session should live is a design decision.
    """

    code = "LW008"
    name = "client-session-misuse"
    summary = "new aiohttp ClientSession per request, or one never closed"
    node_types = (ast.Call,)

    def visit(self, node: ast.Call, checker: Checker) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            # Cheap first: a method call can only matter under one of the names it could have.
            if func.attr != "ClientSession" and func.attr not in _per_call_names(checker.project):
                return
        elif not isinstance(func, ast.Name):
            return
        callee = checker.ctx.resolve_call(node)
        if callee in _SESSION_CLASSES:
            if not (in_test_file(checker) and _in_test_harness(checker)):
                _check_session(node, checker)
            return
        info = _project_function(node, callee, checker)
        if info is None or not info.session_per_call:
            return
        where = _repeated_by(checker, node)
        if where is None and _gathered_with_another(node, checker):
            where = "`asyncio.gather` with another such call"
        if where is None:
            return
        name = call_name(node)
        checker.report(
            node,
            f"`{name}()` opens a new ClientSession on every call, and is called in {where}: "
            "create one ClientSession per application and pass it in",
        )


def _in_test_harness(checker: Checker) -> bool:
    """Inside a ``with`` that makes the session a test's subject rather than a real client.

    ``pytest.raises``: the constructor is expected to fail, no session exists;
    ``pytest.warns``: the warning (``ResourceWarning`` from the finaliser) is what is checked;
    ``mock.patch``/``mocker.patch``: the session's I/O is mocked, no connection is opened.
    """
    for parent in reversed(checker.parents):
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(parent, ast.With) and any(
            _is_harness(item.context_expr, checker) for item in parent.items
        ):
            return True
    return False


_HARNESSES = frozenset(
    {
        "pytest.raises",
        "pytest.warns",
        "unittest.TestCase.assertRaises",
        "unittest.TestCase.assertWarns",
        "unittest.mock.patch",
        "unittest.mock.patch.object",
        "unittest.mock.patch.multiple",
        "mock.patch",
        "mock.patch.object",
        "mock.patch.multiple",
    }
)
# pytest-mock's fixture is a parameter, so its calls resolve to nothing: match them as written.
_MOCKER_PATCHES = (
    "mocker.patch",
    "mocker.patch.object",
    "mocker.patch.multiple",
)


def _is_harness(expr: ast.expr, checker: Checker) -> bool:
    if not isinstance(expr, ast.Call):
        return False
    return checker.ctx.resolve_call(expr) in _HARNESSES or ast.unparse(expr.func) in _MOCKER_PATCHES


def _check_session(node: ast.Call, checker: Checker) -> None:
    name = call_name(node)
    fate, subject = _fate(node, checker)
    where = _repeated_by(checker, node)
    if where is not None and fate in (_SCOPED, _LEAKED, _ON_PURPOSE):
        checker.report(
            node,
            f"`{name}()` created in {where}: create one ClientSession per application and reuse it",
        )
    elif fate == _LEAKED:
        checker.report(
            node,
            f"{subject} is never closed: use `async with {name}() as session:`, or "
            "`await session.close()` in a `finally`",
        )


def _per_call_names(project: Project) -> frozenset[str]:
    """The names under which a project function with ``session_per_call`` can be called."""
    names = _PER_CALL_NAMES.get(project)
    if names is None:
        found: set[str] = set()
        for module in project.modules.values():
            found.update(name for name, info in module.functions.items() if info.session_per_call)
            for cls in module.classes.values():
                found.update(name for name, info in cls.methods.items() if info.session_per_call)
        for module in project.modules.values():
            found.update(
                bound
                for bound, target in module.aliases.items()
                if target.rpartition(".")[2] in found
            )
        names = _PER_CALL_NAMES[project] = frozenset(found)
    return names


def _project_function(node: ast.Call, callee: str | None, checker: Checker) -> FunctionInfo | None:
    if callee is not None:
        return checker.project.function(callee)
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = checker.ctx.self_class(func.value)
        if owner is not None:
            return checker.project.method(owner, func.attr)
    return None


def _repeated_by(checker: Checker, node: ast.AST) -> str | None:
    """``"a loop"``/``"a comprehension"`` when that re-runs ``node`` in the current function."""
    loop = checker.enclosing_loop(node, comprehensions=True)
    if loop is None:
        return None
    return "a comprehension" if isinstance(loop, COMPREHENSIONS) else "a loop"


def _gathered_with_another(node: ast.Call, checker: Checker) -> bool:
    """Whether ``node`` is an argument of ``asyncio.gather`` next to another per-call session."""
    parent = checker.parent
    if not (
        isinstance(parent, ast.Call)
        and any(arg is node for arg in parent.args)
        and checker.ctx.resolve_call(parent) == _GATHER
    ):
        return False
    for arg in parent.args:
        if arg is node or not isinstance(arg, ast.Call):
            continue
        if not isinstance(arg.func, ast.Name | ast.Attribute):
            continue
        info = _project_function(arg, checker.ctx.resolve_call(arg), checker)
        if info is not None and info.session_per_call:
            return True
    return False


def _fate(node: ast.Call, checker: Checker) -> tuple[str, str]:
    """What becomes of the session ``node`` makes, and how to name it in a message.

    ``_SCOPED``: closed in this function (``async with``, ``.close()``); ``_LEAKED``: never
    closed nor handed to anything; ``_KEPT``: stored, returned, passed on, or anything the
    checker cannot follow.
    """
    parent = checker.parent
    made = f"`{call_name(node)}()`"
    if isinstance(parent, ast.withitem):
        return _SCOPED, made  # `async with ClientSession() as s` (a sync `with` raises)
    if isinstance(parent, ast.Attribute):
        return (_SCOPED if parent.attr in _CLOSERS else _LEAKED), made  # `ClientSession().get()`
    if isinstance(parent, ast.Expr):
        return _LEAKED, made
    if isinstance(parent, ast.Assign) and len(parent.targets) == 1:
        target: ast.expr = parent.targets[0]
    elif isinstance(parent, ast.AnnAssign) and parent.value is node:
        target = parent.target
    else:
        return _KEPT, made
    function = checker.function
    if (
        not isinstance(target, ast.Name)
        or function is None
        or not isinstance(function.node, FUNCTIONS)
        or target.id in function.declared_outer
    ):
        return _KEPT, made
    testing = in_test_file(checker)
    return _local_fate(function.node, target.id, testing), f"ClientSession `{target.id}`"


def _local_fate(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str, testing: bool) -> str:
    """``_SCOPED``, ``_LEAKED``, ``_ON_PURPOSE`` or ``_KEPT`` for the session held in the
    local ``name``; ``_ON_PURPOSE`` only in a test module (``testing``)."""
    fate = _LEAKED
    for use, parent, nested in _name_uses(function, name):
        if isinstance(use.ctx, ast.Del):
            # `del session; gc.collect()`: a test hands it to the finaliser on purpose.
            if testing and fate == _LEAKED and _tests_finaliser(function, use):
                fate = _ON_PURPOSE
            continue
        if isinstance(use.ctx, ast.Store):
            continue
        if nested:
            fate = _KEPT  # captured by a nested function or lambda, which may close it
        elif isinstance(parent, ast.Attribute):
            if parent.attr in _CLOSERS:
                return _SCOPED
        elif isinstance(parent, ast.withitem):
            return _SCOPED  # `async with session:`
        elif not isinstance(parent, INERT_PARENTS):
            fate = _KEPT  # returned, yielded, stored, passed, put in a container, aliased...
    if testing and fate == _LEAKED and _asserts_closed_state(function, name):
        return _ON_PURPOSE
    return fate


def _asserts_closed_state(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    """Whether ``function`` asserts on ``name.closed`` (``assert not session.closed``,
    ``self.assertFalse(session.closed)``): a test of the session's own lifecycle."""
    for node in _scope_nodes(function):
        if isinstance(node, ast.Assert):
            checked: list[ast.expr] = [node.test]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("assert")
        ):
            checked = node.args
        else:
            continue
        if any(_reads_closed(expr, name) for expr in checked):
            return True
    return False


def _tests_finaliser(function: ast.FunctionDef | ast.AsyncFunctionDef, deleted: ast.Name) -> bool:
    """Whether ``function`` collects garbage after ``del`` (``gc.collect()``) or checks the
    warning the finaliser gives (``with pytest.warns(...)``, ``self.assertWarns(...)``)."""
    after = (deleted.lineno, deleted.col_offset)
    for node in _scope_nodes(function):
        if isinstance(node, ast.With | ast.AsyncWith) and any(
            _checks_warning(item.context_expr) for item in node.items
        ):
            return True
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "gc.collect"
            and (node.lineno, node.col_offset) > after
        ):
            return True
    return False


def _checks_warning(expr: ast.expr) -> bool:
    if not isinstance(expr, ast.Call) or not isinstance(expr.func, ast.Attribute):
        return False
    method = expr.func
    return method.attr == "assertWarns" or (
        method.attr == "warns"
        and isinstance(method.value, ast.Name)
        and method.value.id == "pytest"
    )


def _reads_closed(expr: ast.expr, name: str) -> bool:
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "closed"
        and isinstance(node.value, ast.Name)
        and node.value.id == name
        for node in ast.walk(expr)
    )


def _name_uses(
    function: ast.FunctionDef | ast.AsyncFunctionDef, name: str
) -> Iterator[tuple[ast.Name, ast.AST, bool]]:
    """Each ``Name`` node for ``name`` in ``function``'s body, its parent, and whether it is in
    a nested function or lambda."""
    stack: list[tuple[ast.AST, ast.AST, bool]] = [
        (statement, function, False) for statement in function.body
    ]
    while stack:
        node, parent, nested = stack.pop()
        if isinstance(node, ast.Name):
            if node.id == name:
                yield node, parent, nested
            continue
        inner = nested or isinstance(node, SCOPE_NODES)
        stack.extend((child, node, inner) for child in ast.iter_child_nodes(node))
