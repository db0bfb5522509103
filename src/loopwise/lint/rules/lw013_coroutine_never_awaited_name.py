"""LW013: a coroutine assigned to a name that is never awaited or used."""

from __future__ import annotations

import ast

from loopwise.lint._ast import single_name_target
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._local_names import INERT_PARENTS, all_name_uses
from loopwise.lint.rules._shared import call_name, coroutine_callee

_GATHER = "asyncio.gather"
# `pytest.raises`, `self.assertRaises`, `self.assertRaisesRegex`.
_RAISES = frozenset({"raises", "assertRaises", "assertRaisesRegex"})


class CoroutineNeverAwaitedName(Rule[ast.Assign | ast.AnnAssign]):
    """## What it does
    Checks for the coroutine of a call to a coroutine function assigned to a local name
    (`coro = fetch()`, `coro: Coroutine = fetch()`) when no path of the function does anything
    with that name: it is never awaited, passed to a call, returned, yielded, stored, put in a
    container, used in `async with`/`async for`, nor is any of its attributes read
    (`coro.close()`). Reading it only in a comparison, under `not`, in an f-string or as the
    bare test of an `if` is not using it.

    Coroutine functions are known as LW001 knows them: asyncio's own coroutine functions, the
    coroutine methods of asyncio's queues, locks and events, and every `async def` of the
    checked project, across modules, including methods called on `self`, `cls` or `super()`.
    `asyncio.gather()` is one too; its children already run as tasks, so the finding says
    that their failures are lost rather than that nothing runs.

    ## What it does not flag
    - A name used on at least one path: `coro = fetch()` then `if ready: await coro` is not
      flagged even though the other path drops the coroutine. Only a coroutine that no path
      can run is reported, so every finding is certain.
    - A name assigned more than once in the function (`coro = fetch(); coro = other()`), a
      name declared `global`/`nonlocal`, a name read by a nested function or lambda, and
      tuple targets (`a, b = fetch(), other()`): known misses, kept out to stay precise.
    - A name removed with `del`: dropping the coroutine is then written out on purpose (a
      test of the "never awaited" warning).
    - A call inside `with pytest.raises(...)` or `with self.assertRaises(...)`: a test that
      calls a coroutine function with bad arguments expects the call itself to fail.
    - A call on a receiver of unknown type, or to a function behind a decorator the checker
      does not know.

    On the 21 projects of the ecosystem check it reported nothing, like LW001: released code
    rarely keeps a coroutine that never runs, because its tests would fail. Searched for on
    public code (`benchmarks/ecosystem/wild.jsonl`) it found one, true: a sensor driver's
    `result = asyncio.wait_for(task, None)` that never waits; the usual shapes that keep a
    coroutine in a name (`coro = asyncio.wait(...)` handed to `run_until_complete`, a
    coroutine passed to `create_task` or `run_coroutine_threadsafe`, closed in a test) stayed
    quiet. It matters most while writing, and stays on because it is certain when it fires.

    ## Why is this bad?
    Calling a coroutine function does not run it: it only creates a coroutine object. A
    coroutine kept in a name that nobody awaits never runs its body, and Python only warns
    "coroutine ... was never awaited" when the object is garbage-collected, far from the
    mistake. It is usually a missing `await`, or an `await` lost in a refactoring.

    ## Example
    ```python
    async def load_all(): ...

    async def refresh(cache):
        fresh = load_all()
        cache.clear()
    ```

    ## Use instead
    ```python
    async def refresh(cache):
        fresh = await load_all()
        cache.clear()
        cache.update(fresh)
    ```

    ## Fix safety
    No fix: whether the coroutine should be awaited there, handed to a task, or not created
    at all depends on what the code meant.
    """

    code = "LW013"
    name = "coroutine-never-awaited-name"
    summary = "coroutine assigned to a name that is never awaited"
    node_types = (ast.Assign, ast.AnnAssign)

    def visit(self, node: ast.Assign | ast.AnnAssign, checker: Checker) -> None:
        call = node.value
        if not isinstance(call, ast.Call):
            return
        target = single_name_target(node)
        function = checker.function
        if (
            target is None
            or function is None
            or not isinstance(function.node, ast.FunctionDef | ast.AsyncFunctionDef)
            or target.id in function.declared_outer
        ):
            return
        if not coroutine_callee(checker, call):
            return
        if target.id in _used_names(checker, function.node):
            return
        if _expects_failure(checker):
            return
        if checker.ctx.resolve_call(call) == _GATHER:  # its children already run as tasks
            consequence = "its children's failures are lost"
        else:
            consequence = "it never runs"
        checker.report(
            call,
            f"coroutine `{call_name(call)}()` is assigned to `{target.id}` and never awaited: "
            + consequence,
        )


def _expects_failure(checker: Checker) -> bool:
    """Inside ``with pytest.raises(...)``/``self.assertRaises(...)`` in the current function."""
    for parent in reversed(checker.parents):
        if isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(parent, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and isinstance(item.context_expr.func, ast.Attribute)
            and item.context_expr.func.attr in _RAISES
            for item in parent.items
        ):
            return True
    return False


def _used_names(
    checker: Checker, function: ast.FunctionDef | ast.AsyncFunctionDef
) -> frozenset[str]:
    """The names ``function`` does something with (see :func:`_uses`), computed once."""
    cache = checker.per_module(_new_cache)
    found = cache.get(function)
    if found is None:
        found = cache[function] = _uses(function)
    return found


def _new_cache(tree: ast.Module) -> dict[ast.AST, frozenset[str]]:
    return {}


def _uses(function: ast.FunctionDef | ast.AsyncFunctionDef) -> frozenset[str]:
    """Names that some path of ``function`` uses: read anywhere but in a comparison, `not`,
    an f-string or a bare test, read by a nested scope, deleted, or assigned more than once
    (which value a read sees is then path-dependent, and the rule stays quiet)."""
    used: set[str] = set()
    stored: set[str] = set()
    for use, parent, nested in all_name_uses(function):
        name = use.id
        if isinstance(use.ctx, ast.Store):
            if name in stored:
                used.add(name)
            stored.add(name)
        elif isinstance(use.ctx, ast.Del) or nested or not isinstance(parent, INERT_PARENTS):
            used.add(name)
    return frozenset(used)
