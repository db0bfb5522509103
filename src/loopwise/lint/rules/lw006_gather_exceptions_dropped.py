"""LW006: exceptions thrown away by gather(return_exceptions=True)."""

from __future__ import annotations

import ast

from loopwise.lint._context import walk_shallow
from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker
from loopwise.lint.rules._discard import discarded_value

# Awaiting these gives back what their first argument gives back.
_PASS_THROUGH = frozenset({"asyncio.shield", "asyncio.wait_for"})

_FIX = "inspect the results (`isinstance(r, BaseException)`) or drop `return_exceptions=True`"


class GatherExceptionsDropped(Rule):
    """## What it does
    Checks for `await asyncio.gather(..., return_exceptions=True)` whose result is thrown away:
    the `await` is a statement on its own, its result is assigned to `_`, or it is assigned to
    a local variable that the function never reads. Also through `asyncio.wait_for(gather(...))`
    and `asyncio.shield(gather(...))`, which hand back the same list.

    `gather()` without `return_exceptions=True` is not flagged (it raises the first failure),
    nor is a result that is used, nor `return_exceptions=` set to anything but a literal true.
    Nor is the shutdown idiom that waits for tasks the function has just cancelled
    (`task.cancel()`, or `for t in tasks: t.cancel()`, then
    `await asyncio.gather(*tasks, return_exceptions=True)`): there a `CancelledError` is the
    expected outcome.

    ## Why is this bad?
    With `return_exceptions=True`, `gather()` never raises for a failed awaitable: it catches
    the exception and puts it in the result list, in the failed awaitable's position. If nobody
    looks at that list, every failure vanishes silently: no traceback, no log line, not even the
    "exception was never retrieved" warning that a forgotten task would give.

    ## Example
    ```python
    async def notify_all(users):
        await asyncio.gather(*(send_mail(u) for u in users), return_exceptions=True)
    ```

    ## Use instead
    Look at the results:
    ```python
    async def notify_all(users):
        results = await asyncio.gather(
            *(send_mail(u) for u in users), return_exceptions=True
        )
        for user, result in zip(users, results):
            if isinstance(result, Exception):
                log.warning("mail to %s failed", user, exc_info=result)
    ```
    Or let failures propagate: drop `return_exceptions=True`, or use an `asyncio.TaskGroup`.
    """

    code = "LW006"
    name = "gather-exceptions-dropped"
    summary = "result of gather(return_exceptions=True) is discarded"
    nodes = (ast.Expr, ast.Assign, ast.AnnAssign)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        value = getattr(node, "value", None)
        if not (isinstance(value, ast.Await) and isinstance(value.value, ast.Call)):
            return
        gather = _gather_collecting_exceptions(value.value, checker)
        if gather is None:
            return
        discard = discarded_value(node, checker)
        if discard is None or _drains_cancelled_tasks(gather, checker):
            return
        if discard.name is None:
            where = "is discarded"
        elif discard.name == "_":
            where = "is assigned to `_`"
        else:
            where = f"goes to `{discard.name}`, which is never read"
        message = (
            f"result of `gather(..., return_exceptions=True)` {where}: "
            f"every exception it collected vanishes; {_FIX}"
        )
        checker.report(gather, message)


def _gather_collecting_exceptions(call: ast.Call, checker: Checker) -> ast.Call | None:
    """The ``gather(..., return_exceptions=True)`` call whose list awaiting ``call`` returns."""
    for _ in range(3):  # wait_for(shield(gather(...))) at most
        if not any(keyword.arg == "return_exceptions" for keyword in call.keywords) and not (
            call.args and isinstance(call.args[0], ast.Call)
        ):
            return None  # cheap shape check before resolving any name
        callee = checker.ctx.resolve_call(call)
        if callee == "asyncio.gather":
            return call if _returns_exceptions(call) else None
        if callee not in _PASS_THROUGH or not call.args or not isinstance(call.args[0], ast.Call):
            return None
        call = call.args[0]
    return None


def _returns_exceptions(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "return_exceptions":
            flag = keyword.value
            return isinstance(flag, ast.Constant) and flag.value is True
    return False


def _drains_cancelled_tasks(gather: ast.Call, checker: Checker) -> bool:
    """Whether ``gather`` waits for tasks the function has just cancelled (the shutdown idiom).

    ``task.cancel(); await gather(task, return_exceptions=True)`` and ``for t in tasks:
    t.cancel()`` followed by ``await gather(*tasks, return_exceptions=True)`` only wait for
    the tasks to finish: their `CancelledError` is the expected outcome, not a lost failure.
    """
    function = checker.function
    if function is None:
        return False
    gathered = {
        ast.unparse(arg.value if isinstance(arg, ast.Starred) else arg) for arg in gather.args
    }
    cancelled: set[str] = set()
    loops: list[tuple[ast.expr, ast.expr]] = []
    for node in walk_shallow(function.node):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "cancel"
        ):
            cancelled.add(ast.unparse(node.func.value))
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            loops.append((node.target, node.iter))
    for target, iterable in loops:
        if isinstance(target, ast.Name) and target.id in cancelled:
            cancelled.add(ast.unparse(iterable))
    return bool(gathered) and gathered <= cancelled
