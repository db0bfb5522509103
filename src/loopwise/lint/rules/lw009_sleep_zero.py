"""LW009: sleep(0) used as synchronisation."""

from __future__ import annotations

import ast

from loopwise.lint._ast import walk_shallow
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule

# Calls that hand work to the loop to run later: a `sleep(0)` after one waits for that work.
_STARTS_WORK = frozenset(
    {
        "call_soon",
        "call_soon_threadsafe",
        "create_task",
        "ensure_future",
        "run_coroutine_threadsafe",
    }
)


class SleepZeroAsSynchronisation(Rule[ast.Await]):
    """## What it does
    Checks for `await asyncio.sleep(0)` (or `sleep(0.0)`, `sleep(delay=0)`, through any import
    alias) outside a loop body of the current function: code that yields to the event loop once,
    hoping that some other task has done something by the time it resumes.

    A `sleep(0)` right after the function scheduled work (`create_task()`, `ensure_future()`,
    `call_soon()`...) is flagged even where it ends the function: `task = create_task(...);
    await asyncio.sleep(0); return task` hopes the task got somewhere in one step.

    ## What it does not flag
    - A `sleep(0)` inside a `for`, `async for` or `while` body (or a comprehension): a
      legitimate cooperative yield that keeps a long computation from starving other tasks.
    - A `sleep(0)` that ends the function (possibly at the end of an `if` or `with` block that
      ends it, and followed at most by `return` of a local or a constant), when the function
      scheduled nothing before it: the function waits for nothing, it offers a yield point to
      its caller's loop, like a "yield now" helper or a `publish()` that lets consumers catch up.
    - `if transport.is_closing(): await asyncio.sleep(0)`, as in asyncio's own
      `StreamWriter.drain()`: closing a transport schedules `connection_lost()` with
      `call_soon()`, so one step is exactly what it takes to run it.
    - Test code (the files `test-paths` matches): a test drives its own tasks against fakes,
      and `await asyncio.sleep(0)` is the standard way to advance the loop one step there, for
      instance to let a task it just created start; on the 21 projects of the ecosystem check,
      every sampled finding in tests was noise or wrong. In library code the same line is a race
      with whatever else the loop is running.

    ## Why it is opt-in
    On the 21 projects of the ecosystem check, none of the 11 findings in library code was one
    a maintainer would act on: the `sleep(0)`s were cancellation checkpoints, cooperative
    yields at the start of a method, yields after cancelling tasks whose cancellation needs
    one step, or harmless leftovers before an await on the real result. One loop step is
    deterministic in asyncio, so code that knows what it schedules may rely on it. Turn it
    on with `--select LW009` to review every `sleep(0)` used as a wait.

    ## Why is this bad?
    `sleep(0)` lets every task that is *ready right now* run one step, and nothing more. Whether
    the task you are waiting for gets far enough in that step depends on how many `await`s it
    passes, on whether its I/O is ready, on the event loop implementation (uvloop schedules
    differently) and on the load. Code that works in a test breaks in production, or after a
    harmless refactoring adds one `await`. Stacking several `sleep(0)` only hides the race
    further.

    ## Example
    ```python
    import asyncio

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

    ## Fix safety
    No fix: the right synchronisation (an `Event`, awaiting the task, a queue) depends on
    what is waited for.
    """

    code = "LW009"
    default = False
    name = "sleep-zero-synchronisation"
    summary = "await asyncio.sleep(0) used to wait for another task"
    node_types = (ast.Await,)
    in_tests = False

    def visit(self, node: ast.Await, checker: Checker) -> None:
        call = node.value
        if not (isinstance(call, ast.Call) and _zero_delay(call)):
            return
        if checker.function is None or not checker.in_async_function:
            return
        if checker.ctx.resolve_call(call) != "asyncio.sleep":
            return
        if checker.enclosing_loop(node, comprehensions=True) is not None:
            return
        function = checker.function.node
        if _trailing_yield(node, checker, function) and not _started_work(node, checker, function):
            return
        if _lets_connection_lost_run(checker):
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


def _started_work(node: ast.Await, checker: Checker, function: ast.AST) -> bool:
    """Whether ``function`` scheduled a task or callback before ``node``: "let it start"."""
    return any(
        isinstance(child, ast.Call)
        and child.lineno < node.lineno
        and _scheduled_name(child, checker) in _STARTS_WORK
        for child in walk_shallow(function)
    )


def _scheduled_name(call: ast.Call, checker: Checker) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    callee = checker.ctx.resolve_call(call)
    return callee.rpartition(".")[2] if callee and callee.startswith("asyncio.") else None


def _lets_connection_lost_run(checker: Checker) -> bool:
    """``if transport.is_closing(): await sleep(0)``, as asyncio's own ``StreamWriter.drain()``.

    Closing a transport schedules ``connection_lost()`` with ``call_soon``: one loop step runs it
    for certain, so this yield waits for exactly what it needs.
    """
    parents = checker.parents
    if len(parents) < 2:
        return False
    statement, branch = parents[-1], parents[-2]
    if not (isinstance(branch, ast.If) and len(branch.body) == 1 and branch.body[0] is statement):
        return False
    test = branch.test
    return (
        isinstance(test, ast.Call)
        and isinstance(test.func, ast.Attribute)
        and test.func.attr == "is_closing"
        and not test.args
    )


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
