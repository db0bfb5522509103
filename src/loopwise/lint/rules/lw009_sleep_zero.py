"""LW009: sleep(0) used as synchronisation."""

from __future__ import annotations

import ast

from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker


class SleepZeroAsSynchronisation(Rule):
    """## What it does
    Checks for `await asyncio.sleep(0)` (or `sleep(0.0)`, `sleep(delay=0)`, through any import
    alias) outside a loop body of the current function: code that yields to the event loop once,
    hoping that some other task has done something by the time it resumes.

    Inside a `for`, `async for` or `while` body (or a comprehension) `sleep(0)` is a legitimate
    cooperative yield that keeps a long computation from starving other tasks, and is not
    flagged. Nor is a `sleep(0)` that ends the function (possibly at the end of an `if` or
    `with` block that ends it, and followed at most by `return` of a local or a constant): there
    the function waits for nothing, it offers a yield point to its caller's loop, like a
    "yield now" helper or a `publish()` that lets consumers catch up.

    ## Why is this bad?
    `sleep(0)` lets every task that is *ready right now* run one step, and nothing more. Whether
    the task you are waiting for gets far enough in that step depends on how many `await`s it
    passes, on whether its I/O is ready, on the event loop implementation (uvloop schedules
    differently) and on the load. Code that works in a test breaks in production, or after a
    harmless refactoring adds one `await`. Stacking several `sleep(0)` only hides the race
    further.

    ## Example
    ```python
    async def start(self):
        self._task = asyncio.create_task(self._serve())
        await asyncio.sleep(0)  # let the server bind its socket
        return self._port
    ```

    ## Use instead
    Wait for the event you actually need:
    ```python
    async def start(self):
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._serve())  # calls self._ready.set() when bound
        await self._ready.wait()
        return self._port
    ```
    Likewise `await task`, `await future`, `await queue.join()` or an `asyncio.Condition`.
    """

    code = "LW009"
    name = "sleep-zero-synchronisation"
    summary = "await asyncio.sleep(0) used to wait for another task"
    nodes = (ast.Await,)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        assert isinstance(node, ast.Await)
        call = node.value
        if not (isinstance(call, ast.Call) and _zero_delay(call)):
            return
        if checker.function is None or not checker.in_async_function:
            return
        if checker.ctx.resolve_call(call) != "asyncio.sleep":
            return
        if checker.enclosing_loop(node, comprehensions=True) is not None:
            return
        if _trailing_yield(node, checker, checker.function.node):
            return
        checker.report(
            node,
            "`await asyncio.sleep(0)` outside a loop waits for nothing in particular: await what "
            "you need (an `asyncio.Event`, the task, a future, `queue.join()`)",
        )


def _zero_delay(call: ast.Call) -> bool:
    if call.args:
        delay: ast.expr | None = call.args[0]
    else:
        delay = next((k.value for k in call.keywords if k.arg == "delay"), None)
    return (
        isinstance(delay, ast.Constant) and type(delay.value) in (int, float) and delay.value == 0
    )


def _trailing_yield(node: ast.Await, checker: Checker, function: ast.AST) -> bool:
    """Whether ``node`` ends the function: nothing but a plain ``return`` may run after it.

    The statement may sit in ``if``/``else`` and ``with`` blocks. After such a yield the function
    reads nothing another task could have changed: it offers a yield point to the caller's
    loop, it does not wait for anything.
    """
    parents = checker.parents
    statement = parents[-1] if parents else None
    if not (isinstance(statement, ast.Expr) and statement.value is node):
        return False
    returned = False  # a `return` right after the yield ends the function wherever it is
    for container in reversed(parents[:-1]):
        block = _block_of(statement, container, function)
        if block is None:
            return False
        if not returned:
            rest = block[_index(statement, block) + 1 :]
            if rest and not (len(rest) == 1 and _plain_return(rest[0])):
                return False
            returned = bool(rest)
        if container is function:
            return True
        statement = container
    return False


def _block_of(statement: ast.AST, container: ast.AST, function: ast.AST) -> list[ast.stmt] | None:
    """The statement list of ``container`` that holds ``statement``, if the container is simple."""
    if container is function:
        body: list[ast.stmt] = getattr(function, "body", [])
        return body
    if isinstance(container, ast.If) and _index(statement, container.orelse) >= 0:
        return container.orelse
    if isinstance(container, ast.If | ast.With | ast.AsyncWith):
        return container.body
    return None


def _index(statement: ast.AST, block: list[ast.stmt]) -> int:
    return next((i for i, item in enumerate(block) if item is statement), -1)


def _plain_return(statement: ast.stmt) -> bool:
    """``return``, ``return <constant>`` or ``return <local name>``."""
    return isinstance(statement, ast.Return) and (
        statement.value is None or isinstance(statement.value, ast.Constant | ast.Name)
    )
