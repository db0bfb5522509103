"""LW014: a coroutine polling, with sleeps, state that the program itself sets."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from loopwise.lint._ast import FUNCTIONS, walk_all
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule

_SLEEP = "asyncio.sleep"
_CONDITION_NODES = (ast.BoolOp, ast.UnaryOp, ast.Compare, ast.Constant, ast.Name, ast.Attribute)


class PollingOwnState(Rule[ast.While]):
    """## What it does
    Checks for a coroutine that waits for a flag by polling it with `asyncio.sleep()`:

    - `while not self.ready: await asyncio.sleep(0.1)`: a `while` whose body only sleeps;
    - `while True:` whose body is only `if self.ready: break` and a sleep (in either order);

    when every value the condition reads is an attribute of a name or a module global (or a
    constant), and at least one of them is assigned by the project's own code in another
    function: `self.ready = True` in another method of the class (other than `__init__`), the
    same for `server.started` when `server` is known to be an instance of a class of the same
    module (by constructor or annotation), or `global ready; ready = True` in another function
    of the module. The finding names where the state is set.

    ## What it does not flag
    - Polling state the program does not write itself: a file appearing, a remote status, an
      attribute of an object of unknown type, the result of a call
      (`while not self.is_ready():`), a local variable. There is no event to wait for, and
      polling is the way.
    - A loop that does anything besides checking and sleeping (a heartbeat that also sends
      something, a retry loop): the sleep there paces work, it does not wait for a flag.
    - State only `__init__` sets: nothing in the program changes it afterwards.
    - State changed only by mutation (`self.pending.append(x)`), an object of a class defined
      in another module, or state set from another module: known misses, kept out to stay
      precise.
    - Test code (the files `test-paths` matches): a test waiting for a server it started to
      report `started` polls on purpose, and a test's latency harms nobody.

    On the 21 projects of the ecosystem check it reports nothing: their sleep loops poll
    another object's state, a call's result or a mutated collection, which it leaves alone
    by design, or sit in tests, where it is quiet. On public code found by searching for the
    shape (`benchmarks/ecosystem/wild.jsonl`), 9 of its 10 findings were true (waits for a
    connection, a start-up or a callback's flag, four of them spinning with `sleep(0)`); the
    other polls a flag that a library sets from its own thread, where an `Event` needs
    `loop.call_soon_threadsafe`. The writer it names is the first in the class that stores
    something other than `False`, `None` or `0` (the one likely to end the wait), else the
    first that clears it.

    ## Why is this bad?
    The program sets the flag itself, so it knows the moment things are ready; polling throws
    that away. Each waiter wakes up every interval for nothing, and reacts up to one interval
    late: a short interval burns CPU, a long one adds latency to every start-up, shutdown or
    hand-over. An `asyncio.Event` (or `Condition`) wakes the waiters exactly when the state
    changes, and costs nothing meanwhile.

    ## Example
    ```python
    import asyncio

    class Connection:
        def __init__(self):
            self.ready = False

        def on_handshake(self):
            self.ready = True

        async def wait_ready(self):
            while not self.ready:
                await asyncio.sleep(0.1)
    ```

    ## Use instead
    ```python
    class Connection:
        def __init__(self):
            self._ready = asyncio.Event()

        def on_handshake(self):
            self._ready.set()

        async def wait_ready(self):
            await self._ready.wait()
    ```

    ## Fix safety
    No fix: the `Event` has to be set wherever the state changes.
    """

    code = "LW014"
    name = "polling-own-state"
    summary = "polling with sleeps for state the program sets itself"
    node_types = (ast.While,)
    in_tests = False

    def visit(self, node: ast.While, checker: Checker) -> None:
        if not checker.in_async_function or node.orelse:
            return
        condition = _polled_condition(node, checker)
        if condition is None or not _only_state(condition):
            return
        function = checker.function
        assert function is not None and isinstance(function.node, FUNCTIONS)
        writer = _writer(condition, function.node, function.self_name, checker)
        if writer is None:
            return
        state, where = writer
        checker.report(
            node,
            f"polling `{state}` with `asyncio.sleep()`, though `{where}` sets it: wait on an "
            "`asyncio.Event` (or `Condition`) set there instead",
        )


def _polled_condition(loop: ast.While, checker: Checker) -> ast.expr | None:
    """The state a sleep-only loop waits on: its test, or the test of its `if ...: break`."""
    body = loop.body
    if isinstance(loop.test, ast.Constant) and loop.test.value is True:
        breaks = [s for s in body if isinstance(s, ast.If)]
        if len(body) != 2 or len(breaks) != 1:
            return None
        check = breaks[0]
        if check.orelse or len(check.body) != 1 or not isinstance(check.body[0], ast.Break):
            return None
        sleeps = [s for s in body if s is not check]
        return check.test if _all_sleeps(sleeps, checker) else None
    return loop.test if _all_sleeps(body, checker) else None


def _all_sleeps(statements: list[ast.stmt], checker: Checker) -> bool:
    sleeps = 0
    for statement in statements:
        if isinstance(statement, ast.Pass):
            continue
        if not (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Await)
            and isinstance(statement.value.value, ast.Call)
            and checker.ctx.resolve_call(statement.value.value) == _SLEEP
        ):
            return False
        sleeps += 1
    return sleeps > 0


def _only_state(condition: ast.expr) -> bool:
    """Whether the condition reads only names, ``self.x``-style attributes and constants."""
    for node in (condition, *walk_all(condition)):
        if isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Name):
                return False
        elif not isinstance(node, _CONDITION_NODES):
            return False
    return True


def _writer(
    condition: ast.expr,
    polling: ast.FunctionDef | ast.AsyncFunctionDef,
    self_name: str | None,
    checker: Checker,
) -> tuple[str, str] | None:
    """(the state, the function that assigns it) for the first polled state written elsewhere."""
    for node in (condition, *walk_all(condition)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            cls = _owner_class(node.value, polling, self_name, checker)
            if cls is None:
                continue
            writers = [
                method
                for method in cls.body
                if isinstance(method, FUNCTIONS)
                and method is not polling
                and method.name != "__init__"
                and _assigns_attribute(method, node.attr)
            ]
            if writers:
                # Name the one that can end the wait: a writer that only ever stores False,
                # None or 0 (`close()`, `reset()`) clears the flag instead.
                method = next((m for m in writers if not _only_clears(m, node.attr)), writers[0])
                return f"{node.value.id}.{node.attr}", f"{cls.name}.{method.name}()"
        elif isinstance(node, ast.Name) and _is_module_global(checker, node.id):
            for function in _module_functions(checker.tree):
                if function is not polling and _assigns_global(function, node.id):
                    return node.id, f"{function.name}()"
    return None


def _owner_class(
    owner: ast.Name,
    polling: ast.FunctionDef | ast.AsyncFunctionDef,
    self_name: str | None,
    checker: Checker,
) -> ast.ClassDef | None:
    """The class of this module whose instance ``owner`` is: the polling method's own class
    for ``self``, or a class known from a constructor or annotation (``server: Server``)."""
    if self_name is not None and owner.id == self_name:
        classes = checker.ctx.classes
        if classes and any(statement is polling for statement in classes[-1].body):
            return classes[-1]
        return None
    qualname = checker.ctx._type_of(owner)
    if qualname is None:
        return None
    return checker.ctx._local_classes().get(qualname)


def _is_module_global(checker: Checker, name: str) -> bool:
    """Whether ``name``, read where the walker is, is a variable the module assigns."""
    for scope in reversed(checker.ctx.scopes):
        if name in scope.declared_outer:
            break
        if scope.binds(name):
            return False
    return name in checker.ctx.module.assigned


def _assigns_attribute(method: ast.FunctionDef | ast.AsyncFunctionDef, attr: str) -> bool:
    positional = [*method.args.posonlyargs, *method.args.args]
    if not positional:
        return False
    self_name = positional[0].arg
    return any(
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == self_name
        for node in walk_all(method)
    )


def _only_clears(method: ast.FunctionDef | ast.AsyncFunctionDef, attr: str) -> bool:
    """Whether every ``self.<attr> = ...`` of ``method`` stores a falsy constant."""
    values = [
        node.value
        for node in walk_all(method)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Attribute) and t.attr == attr for t in node.targets)
    ]
    return bool(values) and all(isinstance(v, ast.Constant) and not v.value for v in values)


def _module_functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in walk_all(tree):
        if isinstance(node, FUNCTIONS):
            yield node


def _assigns_global(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    declared = any(
        isinstance(node, ast.Global) and name in node.names for node in walk_all(function)
    )
    return declared and any(
        isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store)
        for node in walk_all(function)
    )
