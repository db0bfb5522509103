"""LW001: coroutine never awaited."""

from __future__ import annotations

import ast
from dataclasses import replace

from loopwise.lint._checker import Checker
from loopwise.lint._fix import Edit, Fix
from loopwise.lint._rule import Rule
from loopwise.lint.rules._shared import call_name, coroutine_callee


class CoroutineNeverAwaited(Rule[ast.Expr | ast.If | ast.While | ast.IfExp | ast.Assert]):
    """## What it does
    Checks for calls to coroutine functions whose coroutine is thrown away: a call used as a
    statement on its own, or used as the condition of an `if`, `while`, `assert` or conditional
    expression.

    It knows asyncio's own coroutine functions (`asyncio.sleep`, `wait_for`, `gather`, ...), the
    coroutine methods of asyncio's queues, locks and events, and every `async def` of the checked
    project, across modules: `from pkg.mod import fetch`, `import pkg.mod as m; m.fetch()`,
    relative imports, re-exports, and methods called on `self`/`cls`/`super()` that are
    `async def` in the class or its project base classes.

    ## What it does not flag
    - A call on a receiver of unknown type, or to a function behind a decorator it does not
      know (the decorator may turn it into anything).
    - A coroutine stored in a variable, returned, passed to a call or put in a container: it
      may be awaited elsewhere (a coroutine stored and never awaited is a known miss).
    - An `async def` that two definitions in the same scope disagree about (one sync, one async).

    On the 21 projects of the ecosystem check it reported nothing: released code rarely keeps
    a coroutine that never runs, because its tests would fail. It matters most while writing.

    ## Why is this bad?
    Calling a coroutine function does not run it: it only creates a coroutine object. Without
    `await` (or handing it to `asyncio.create_task`, `gather`, ...), the body never runs, and
    Python only warns "coroutine ... was never awaited" when the object is garbage-collected,
    far from the mistake. As a condition, a coroutine object is always true, so the branch is
    always taken.

    ## Example
    ```python
    async def save(item): ...

    async def handler(item):
        save(item)
        if is_allowed(item):
            ...
    ```

    ## Use instead
    ```python
    async def handler(item):
        await save(item)
        if await is_allowed(item):
            ...
    ```

    ## Fix safety
    Safe, for a call statement written directly in an `async def`: the fix adds `await`, so
    the coroutine runs where it was written, which is what the call says. The caller now also
    waits for it and sees its exceptions, as a plain call of a sync function would. Unsafe for
    a coroutine used as a condition: with `await` the branch depends on the result, so code
    that always ran may stop running; and for `asyncio.gather()`, whose children already run
    as tasks: with `await` the caller waits for them all (forever, for servers). No fix
    outside an `async def` (where `await` is not allowed).
    """

    code = "LW001"
    name = "coroutine-never-awaited"
    summary = "coroutine is never awaited"
    fix_safety = "sometimes"
    node_types = (ast.Expr, ast.If, ast.While, ast.IfExp, ast.Assert)

    def visit(
        self, node: ast.Expr | ast.If | ast.While | ast.IfExp | ast.Assert, checker: Checker
    ) -> None:
        if isinstance(node, ast.Expr):
            call = node.value
            if isinstance(call, ast.Call) and coroutine_callee(checker, call):
                name = call_name(call)
                gather = checker.ctx.resolve_call(call) == "asyncio.gather"
                if gather:
                    message = f"`{name}()` is never awaited: its children's failures are lost"
                else:
                    message = f"coroutine `{name}()` is never awaited"
                fix = _await_fix(node, call, checker) if checker.fixes else None
                if fix is not None and gather:  # its children already run: awaiting waits
                    fix = replace(fix, safe=False)
                checker.report(call, message, fix=fix)
            return
        for call in _condition_calls(node.test):
            if coroutine_callee(checker, call):
                name = call_name(call)
                fix = _await_fix(None, call, checker) if checker.fixes else None
                checker.report(
                    call,
                    f"coroutine `{name}()` used as a condition is always true: await it",
                    fix=fix,
                )


def _await_fix(statement: ast.Expr | None, call: ast.Call, checker: Checker) -> Fix | None:
    """``await`` before a call statement (safe) or a condition (unsafe) in an ``async def``."""
    function = checker.function
    if function is None or not isinstance(function.node, ast.AsyncFunctionDef):
        return None
    if any(isinstance(parent, ast.GeneratorExp | ast.Lambda) for parent in checker.parents):
        return None  # `await` would make an async generator (or not parse)
    if statement is not None and (
        statement.col_offset != call.col_offset or statement.lineno != call.lineno
    ):
        return None
    edit = Edit.insert(call.lineno, call.col_offset, "await ")
    return Fix("add `await`", (edit,), safe=statement is not None)


def _condition_calls(test: ast.expr) -> list[ast.Call]:
    """The calls whose truth value decides ``test`` (through `not`, `and`, `or`)."""
    if isinstance(test, ast.Call):
        return [test]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _condition_calls(test.operand)
    if isinstance(test, ast.BoolOp):
        return [call for value in test.values for call in _condition_calls(value)]
    return []
