"""LW003: nested event loop."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._shared import call_name

_RUNNERS = frozenset({"asyncio.run", "asyncio.Runner.run"})


class NestedEventLoop(Rule[ast.Call]):
    """## What it does
    Checks for code inside an `async def` that starts an event loop: `asyncio.run(...)`,
    `asyncio.Runner().run(...)`, `loop.run_until_complete(...)`, or a call to a sync function of
    the project that does one of these (directly or through other project functions). The
    finding is at the call in the coroutine.

    ## What it does not flag
    - A sync function or lambda nested in the coroutine: it may well be handed to a thread.
    - `await helper(...)` where `helper` is a project sync function that starts a loop on some
      path and has a `return <value>` that no loop start certainly precedes (none in its own
      body on the way there, and no call of a project function that starts one on every
      path; `return _serve(coro, run_async)` passes the choice on). Its result is awaited, so
      the coroutine uses it as a factory of awaitables, and that call takes the path that
      returns one (typically a `run_async=True`-style argument, which may come through
      `**kwargs`); the loop-starting path serves sync callers. A helper whose every return
      runs a loop first (`return asyncio.run(...)`, `loop.run_until_complete(...)`, a call of
      another such helper) is flagged even when awaited, and so are a direct
      `await loop.run_until_complete(...)` and an unawaited call.
    - Test code (the files `test-paths` matches): a nested loop there fails its test with
      "This event loop is already running" the first time the test runs, so the test suite
      already reports it; a finding in tests can only be in code the suite never runs (the one
      test finding on the 21 projects of the ecosystem check was a decorator nothing applies).

    ## Why is this bad?
    A coroutine runs inside a running loop. `asyncio.run()` there raises "asyncio.run() cannot be
    called from a running event loop"; `run_until_complete()` on the running loop raises "This
    event loop is already running", and on another loop it blocks the running one until it
    finishes, freezing every other task.

    ## Example
    ```python
    import asyncio

    async def fetch_config(): ...

    def load_config():
        return asyncio.run(fetch_config())

    async def main():
        config = load_config()
    ```

    ## Use instead
    ```python
    async def main():
        config = await fetch_config()
    ```
    If the sync code must stay sync, run it in a thread: `await asyncio.to_thread(load_config)`.

    ## Fix safety
    No fix: the right repair (await the coroutine, make the caller async, or move the work
    to a thread) depends on the program.
    """

    code = "LW003"
    in_tests = False
    name = "nested-event-loop"
    summary = "event loop started inside a coroutine"
    node_types = (ast.Call,)

    def visit(self, node: ast.Call, checker: Checker) -> None:
        if not checker.in_async_function:
            return
        callee = checker.ctx.resolve_call(node)
        name = call_name(node)
        if callee in _RUNNERS or (
            isinstance(node.func, ast.Attribute) and node.func.attr == "run_until_complete"
        ):
            checker.report(node, f"`{name}()` inside a coroutine: `await` the coroutine instead")
        elif (
            callee is not None
            and checker.project.runs_loop(callee)
            and not _awaited_factory(node, callee, checker)
        ):
            checker.report(
                node,
                f"`{name}()` starts an event loop inside a coroutine: "
                "await the async code, or run it with `asyncio.to_thread`",
            )


def _awaited_factory(node: ast.Call, callee: str, checker: Checker) -> bool:
    """``await helper(...)`` where ``helper`` has a path that returns without starting a loop:
    the awaiting caller takes that one (``if run_async: return coro``)."""
    return isinstance(checker.parent, ast.Await) and checker.project.returns_without_loop(callee)
