"""LW002: legacy event loop entry point."""

from __future__ import annotations

import ast

from loopwise.lint._context import walk_shallow
from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker

_RUNS = frozenset({"run_until_complete", "run_forever"})


class LegacyLoopEntryPoint(Rule):
    """## What it does
    Checks for `asyncio.get_event_loop()` used to start a program: at module level (including
    under `if __name__ == "__main__":`), or in a sync function that then runs the loop with
    `run_until_complete()`/`run_forever()`, such as
    `asyncio.get_event_loop().run_until_complete(main())`.

    A sync helper that merely fetches the loop while a coroutine is running is not flagged:
    there `get_event_loop()` returns the running loop (though `get_running_loop()` says so better).

    ## Why is this bad?
    With no running loop, `get_event_loop()` is deprecated since Python 3.10-3.12 and raises
    `RuntimeError` from 3.14 when no loop was set. Driving the loop by hand also skips what
    `asyncio.run()` does on the way out: cancelling leftover tasks, shutting down async
    generators and the default executor, and closing the loop.

    ## Example
    ```python
    loop = asyncio.get_event_loop()
    loop.run_until_complete(main())
    ```

    ## Use instead
    ```python
    asyncio.run(main())
    ```
    Or, when several calls must share one loop, `with asyncio.Runner() as runner: runner.run(...)`.
    `asyncio.new_event_loop()` with an explicit `loop.close()` is fine too.
    """

    code = "LW002"
    name = "legacy-loop-entry-point"
    summary = "asyncio.get_event_loop() used as a program entry point"
    nodes = (ast.Call,)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        assert isinstance(node, ast.Call)
        if checker.ctx.resolve_call(node) != "asyncio.get_event_loop":
            return
        function = checker.function
        if function is None:
            message = "`asyncio.get_event_loop()` outside a coroutine: use `asyncio.run(main())`"
            checker.report(node, message)
        elif not function.is_async and _runs_loop(node, checker, function.node):
            message = "`asyncio.get_event_loop()` to run a loop: use `asyncio.run(main())`"
            checker.report(node, message)


def _runs_loop(call: ast.Call, checker: Checker, function: ast.AST) -> bool:
    parent = checker.parent
    if isinstance(parent, ast.Attribute) and parent.attr in _RUNS:
        return True
    if not (
        isinstance(parent, ast.Assign)
        and len(parent.targets) == 1
        and isinstance(parent.targets[0], ast.Name)
    ):
        return False
    name = parent.targets[0].id
    return any(
        isinstance(child, ast.Attribute)
        and child.attr in _RUNS
        and isinstance(child.value, ast.Name)
        and child.value.id == name
        for child in walk_shallow(function)
    )
