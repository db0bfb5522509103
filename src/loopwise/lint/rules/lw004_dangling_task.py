"""LW004: dangling task."""

from __future__ import annotations

import ast

from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker
from loopwise.lint.rules._discard import discarded_value
from loopwise.lint.rules._shared import call_name

_TASK_FACTORIES = frozenset(
    {
        "asyncio.create_task",
        "asyncio.ensure_future",
        "asyncio.AbstractEventLoop.create_task",
        "asyncio.AbstractEventLoop.ensure_future",
    }
)

_METHOD_NAMES = frozenset({"create_task", "ensure_future"})

_FIX = (
    "keep a reference (a set + `task.add_done_callback(tasks.discard)`) "
    "or use `asyncio.TaskGroup`/`loopwise.Supervisor`"
)


class DanglingTask(Rule):
    """## What it does
    Checks for tasks whose only reference is dropped as soon as they are created: the result of
    `asyncio.create_task()`, `asyncio.ensure_future()` or `loop.create_task()` used as a
    statement on its own (also with `.add_done_callback(...)` chained on it), assigned to `_`,
    or assigned to a local variable that the function never reads.

    `loop` must be known to be an event loop: a value from `asyncio.get_running_loop()`,
    `get_event_loop()` or `new_event_loop()`, a parameter or attribute annotated
    `asyncio.AbstractEventLoop`, `self.loop = asyncio.get_running_loop()` in a method, and so on.
    `tg.create_task()` on an `asyncio.TaskGroup`, and `create_task()` on a receiver of unknown
    type, are not flagged: the group (or whatever that object is) may well keep the task.

    ## Why is this bad?
    The event loop keeps only a *weak* reference to a task. A task nobody else references can
    be garbage-collected while it waits, in the middle of its work and without a trace. And
    nobody will ever `await` it: when it fails, its exception is only logged as "Task exception
    was never retrieved", if at all; when the program shuts down, nobody cancels or waits for it.

    ## Example
    ```python
    async def handle(request):
        asyncio.create_task(send_audit_log(request))
        return web.Response(text="ok")
    ```

    ## Use instead
    Keep a strong reference until the task is done:
    ```python
    background_tasks = set()

    async def handle(request):
        task = asyncio.create_task(send_audit_log(request))
        background_tasks.add(task)
        task.add_done_callback(background_tasks.discard)
        return web.Response(text="ok")
    ```
    Better, when the tasks must finish within a block, let an `asyncio.TaskGroup` own them:
    ```python
    async with asyncio.TaskGroup() as tg:
        tg.create_task(send_audit_log(request))
    ```
    For long-lived background work, `loopwise.Supervisor` keeps a reference to every task,
    raises or logs every failure, and cancels its background tasks on exit:
    ```python
    async with loopwise.Supervisor(name="app") as supervisor:
        supervisor.create_task(flush_audit_log_forever(), background=True)
        await serve()
    ```
    """

    code = "LW004"
    name = "dangling-task"
    summary = "task created and its reference dropped"
    nodes = (ast.Expr, ast.Assign, ast.AnnAssign)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        value = getattr(node, "value", None)
        if not isinstance(value, ast.Call):
            return
        call = _task_call(value, checker, chained=isinstance(node, ast.Expr))
        if call is None:
            return
        discard = discarded_value(node, checker)
        if discard is None:
            return
        name = call_name(call)
        if discard.name is None:
            checker.report(call, f"task from `{name}()` is dropped: {_FIX}")
        elif discard.name == "_":
            checker.report(call, f"task from `{name}()` is assigned to `_` and dropped: {_FIX}")
        else:
            checker.report(
                call, f"task `{discard.name}` from `{name}()` is never used again: {_FIX}"
            )


def _task_call(call: ast.Call, checker: Checker, *, chained: bool) -> ast.Call | None:
    """The task-creating call that ``call`` is, or (``chained``) that it adds a callback to."""
    func = call.func
    if (
        chained
        and isinstance(func, ast.Attribute)
        and func.attr == "add_done_callback"
        and isinstance(func.value, ast.Call)
    ):
        call = func.value
        func = call.func
    if isinstance(func, ast.Attribute):
        if func.attr not in _METHOD_NAMES:
            return None
    elif not isinstance(func, ast.Name):  # a Name may be an alias: `from asyncio import ...`
        return None
    return call if checker.ctx.resolve_call(call) in _TASK_FACTORIES else None
