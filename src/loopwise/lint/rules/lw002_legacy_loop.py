"""LW002: legacy event loop entry point."""

from __future__ import annotations

import ast

from loopwise.lint._ast import SCOPE_NODES, walk_shallow
from loopwise.lint._awaits import _last_name
from loopwise.lint._checker import Checker
from loopwise.lint._fix import Edit, Fix
from loopwise.lint._rule import Rule
from loopwise.lint.rules._fixes import segment

_RUNS = frozenset({"run_until_complete", "run_forever"})
_FIXTURES = frozenset({"pytest.fixture", "pytest_asyncio.fixture"})
# Python where `get_event_loop()` with no current loop raises instead of warning: code that only
# runs on an older one is a compatibility branch.
_BREAKING_VERSION = (3, 14)
_FEATURE_PROBE_ERRORS = frozenset({"builtins.AttributeError", "builtins.ImportError"})
_NO_LOOP_ERRORS = frozenset({"builtins.RuntimeError"})
# What a `try` must use for its ImportError/AttributeError handler to be an old-Python fallback.
_MODERN_ENTRY_POINTS = frozenset({"asyncio.run", "asyncio.Runner"})
# Calls by which a RuntimeError handler provides the loop that was missing.
_LOOP_PROVIDERS = frozenset({"new_event_loop", "set_event_loop"})
_EXITS = frozenset({"sys.exit", "os._exit", "builtins.exit", "builtins.quit"})


class LegacyLoopEntryPoint(Rule[ast.Call]):
    """## What it does
    Checks for `asyncio.get_event_loop()` used to start a program: at module level (including
    under `if __name__ == "__main__":`), or in a sync function that then runs the loop with
    `run_until_complete()`/`run_forever()`, such as
    `asyncio.get_event_loop().run_until_complete(main())`.

    ## What it does not flag
    - A sync helper that merely fetches the loop while a coroutine is running: there
      `get_event_loop()` returns the running loop (though `get_running_loop()` says so better).
    - A compatibility branch that only runs on an old Python: under
      `if sys.version_info < (3, 10):`, in the `else:` of `if sys.version_info >= (3, 10):` (or
      of `if hasattr(asyncio, "run"):`), after such an `if` whose body returns or raises, or in
      an `except AttributeError:`/`except ImportError:` fallback of a `try` that uses
      `asyncio.run` or `asyncio.Runner` (or imports them from `asyncio`). The modern path is
      already there; the legacy one never runs where `get_event_loop()` breaks (3.14). A
      fallback for anything else (`try: import uvloop ... except ImportError:`) is flagged.
    - `loop = asyncio.get_event_loop()` alone in a `try` with an `except RuntimeError:` handler
      that provides the missing loop (calls `new_event_loop()` or `set_event_loop()`): the code
      has chosen to reuse a loop its caller may have set, and works on 3.14. A `try` that also
      runs the loop, or a handler that only reports the error, is flagged.
    - A pytest fixture: a sync fixture runs while the test framework's loop (pytest-asyncio's,
      or one an event-loop fixture set) is current, and drives that loop on purpose so that what
      it creates belongs to the loop the async tests and fixtures use; `asyncio.run()` would
      start another one.
    - A module that still defines generator-based coroutines with `@asyncio.coroutine` (removed
      in Python 3.11): it cannot run on a current Python at all, and needs a rewrite that
      this finding would not describe.

    ## Why is this bad?
    With no running loop, `get_event_loop()` is deprecated since Python 3.10-3.12 and raises
    `RuntimeError` from 3.14 when no loop was set. Driving the loop by hand also skips what
    `asyncio.run()` does on the way out: cancelling leftover tasks, shutting down async
    generators and the default executor, and closing the loop.

    ## Example
    ```python
    import asyncio

    loop = asyncio.get_event_loop()
    loop.run_until_complete(main())
    ```

    ## Use instead
    ```python
    asyncio.run(main())
    ```
    Or, when several calls must share one loop, `with asyncio.Runner() as runner: runner.run(...)`.
    `asyncio.new_event_loop()` with an explicit `loop.close()` is fine too.

    ## Fix safety
    Unsafe: at module level, `asyncio.get_event_loop().run_until_complete(main())` becomes
    `asyncio.run(main())` (not for a future such as `asyncio.gather(...)`, which `asyncio.run`
    refuses). `asyncio.run` creates a new loop and closes it at the end (after
    cancelling leftover tasks and shutting down async generators and the default executor), so
    code that used the same loop afterwards, or set one up before, behaves differently. Other
    shapes (a loop kept in a variable, calls inside functions) get no fix.
    """

    code = "LW002"
    name = "legacy-loop-entry-point"
    summary = "asyncio.get_event_loop() used as a program entry point"
    fix_safety = "unsafe"
    node_types = (ast.Call,)

    def visit(self, node: ast.Call, checker: Checker) -> None:
        if checker.ctx.resolve_call(node) != "asyncio.get_event_loop":
            return
        function = checker.function
        if function is None:
            message = "`asyncio.get_event_loop()` outside a coroutine: use `asyncio.run(main())`"
        elif not function.is_async and _runs_loop(node, checker, function.node):
            message = "`asyncio.get_event_loop()` to run a loop: use `asyncio.run(main())`"
        else:
            return
        if _deliberate(node, checker):
            return
        fix = _run_fix(node, checker) if checker.fixes and function is None else None
        checker.report(node, message, fix=fix)


# asyncio functions that return a future, which asyncio.run() refuses.
_FUTURES = frozenset(
    {
        "asyncio.create_task",
        "asyncio.ensure_future",
        "asyncio.gather",
        "asyncio.shield",
        "asyncio.wrap_future",
    }
)


def _run_fix(call: ast.Call, checker: Checker) -> Fix | None:
    """``asyncio.get_event_loop().run_until_complete(main())`` as a module-level statement."""
    parents = checker.parents
    if len(parents) < 3 or call.args or call.keywords:
        return None
    attribute, outer, statement = parents[-1], parents[-2], parents[-3]
    if not (
        isinstance(attribute, ast.Attribute)
        and attribute.attr == "run_until_complete"
        and isinstance(outer, ast.Call)
        and outer.func is attribute
        and len(outer.args) == 1
        and not outer.keywords
        and isinstance(statement, ast.Expr)
        and statement.value is outer
        and isinstance(call.func, ast.Attribute)
    ):
        return None
    if checker.ctx.resolve(call.func.value) != "asyncio":
        return None  # `asyncio.events.get_event_loop()`: `asyncio.events` has no `run`
    argument = outer.args[0]
    if isinstance(argument, ast.Call) and checker.ctx.resolve_call(argument) in _FUTURES:
        return None  # asyncio.run() takes a coroutine, not a future
    module = segment(checker, call.func.value)
    head = segment(checker, attribute)
    if module is None or head is None or "#" in head or attribute.end_lineno is None:
        return None
    # Only the callee is replaced: the argument, its parentheses and comments stay as written.
    end_column = attribute.end_col_offset or 0
    edit = Edit(outer.lineno, outer.col_offset, attribute.end_lineno, end_column, f"{module}.run")
    return Fix("use `asyncio.run()`", (edit,), safe=False)


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


def _deliberate(call: ast.Call, checker: Checker) -> bool:
    """Whether the call sits where using ``get_event_loop()`` was a choice, not a leftover."""
    return (
        _legacy_branch(call, checker) or _in_fixture(checker) or _uses_generator_coroutines(checker)
    )


def _legacy_branch(call: ast.Call, checker: Checker) -> bool:
    """Whether ``call`` runs only on an old Python, or where a missing loop is handled."""
    child: ast.AST = call
    for parent in reversed(checker.parents):
        if _guards(parent, child, checker) or _after_modern_return(parent, child, checker):
            return True
        if isinstance(parent, SCOPE_NODES):
            return False
        child = parent
    return False


def _guards(parent: ast.AST, child: ast.AST, checker: Checker) -> bool:
    """Whether ``parent`` lets its part ``child`` run only on an old Python, or without a loop."""
    if isinstance(parent, ast.If | ast.IfExp):
        return (_holds(parent.body, child) and _selects_old(parent.test, checker)) or (
            _holds(parent.orelse, child) and _selects_new(parent.test, checker)
        )
    if not isinstance(parent, ast.Try | ast.TryStar):
        return False
    if _holds(parent.body, child):
        return _only_fetches_loop(parent.body, child, checker) and any(
            _catches(handler, _NO_LOOP_ERRORS, checker) and _provides_loop(handler)
            for handler in parent.handlers
        )
    return (
        isinstance(child, ast.ExceptHandler)
        and _catches(child, _FEATURE_PROBE_ERRORS, checker)
        and _uses_modern_entry_point(parent.body, checker)
    )


def _only_fetches_loop(body: list[ast.stmt], statement: ast.AST, checker: Checker) -> bool:
    """Whether ``body`` is just ``statement``, which assigns the ``get_event_loop()`` call."""
    return (
        len(body) == 1
        and isinstance(statement, ast.Assign | ast.AnnAssign)
        and isinstance(statement.value, ast.Call)
        and checker.ctx.resolve_call(statement.value) == "asyncio.get_event_loop"
    )


def _provides_loop(handler: ast.ExceptHandler) -> bool:
    """Whether ``handler`` creates or sets a loop (``new_event_loop()``, ``set_event_loop()``)."""
    return any(
        isinstance(node, ast.Call) and _last_name(node.func) in _LOOP_PROVIDERS
        for node in walk_shallow(handler)
    )


def _uses_modern_entry_point(body: list[ast.stmt], checker: Checker) -> bool:
    """Whether ``body`` uses ``asyncio.run``/``asyncio.Runner``: it probes for them."""
    return any(
        _names_modern_entry_point(node, checker)
        for statement in body
        for node in [statement, *walk_shallow(statement)]
    )


def _names_modern_entry_point(node: ast.AST, checker: Checker) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "asyncio" and any(
            f"asyncio.{alias.name}" in _MODERN_ENTRY_POINTS for alias in node.names
        )
    return isinstance(node, ast.Name | ast.Attribute) and (
        checker.ctx.resolve(node) in _MODERN_ENTRY_POINTS
    )


def _holds(block: ast.AST | list[ast.stmt], node: ast.AST) -> bool:
    """Whether ``node`` is ``block`` (an expression branch) or one of its statements."""
    items: list[ast.AST] = list(block) if isinstance(block, list) else [block]
    return any(item is node for item in items)


def _after_modern_return(parent: ast.AST, child: ast.AST, checker: Checker) -> bool:
    """Whether an earlier statement of ``child``'s block leaves on every new enough Python."""
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if not isinstance(block, list) or not _holds(block, child):
            continue
        earlier = block[: next(i for i, item in enumerate(block) if item is child)]
        return any(
            isinstance(statement, ast.If)
            and _selects_new(statement.test, checker)
            and _exits(statement.body, checker)
            for statement in earlier
        )
    return False


def _exits(block: list[ast.stmt], checker: Checker) -> bool:
    last = block[-1]
    if isinstance(last, ast.Return | ast.Raise):
        return True
    return (
        isinstance(last, ast.Expr)
        and isinstance(last.value, ast.Call)
        and checker.ctx.resolve_call(last.value) in _EXITS
    )


def _selects_new(test: ast.expr, checker: Checker) -> bool:
    """``sys.version_info >= (3, x)`` (up to the breaking version), ``hasattr(asyncio, ...)``."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _selects_old(test.operand, checker)
    if isinstance(test, ast.Call):
        return _probes_asyncio(test, checker)
    return _version_test(test, checker) == "new"


def _selects_old(test: ast.expr, checker: Checker) -> bool:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return _selects_new(test.operand, checker)
    return _version_test(test, checker) == "old"


def _probes_asyncio(call: ast.Call, checker: Checker) -> bool:
    return (
        checker.ctx.resolve_call(call) == "builtins.hasattr"
        and len(call.args) == 2
        and checker.ctx.resolve(call.args[0]) == "asyncio"
    )


def _version_test(test: ast.expr, checker: Checker) -> str | None:
    """``"new"``/``"old"`` for a comparison of ``sys.version_info`` with a bound before 3.14."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return None
    left, op, right = test.left, test.ops[0], test.comparators[0]
    if _is_version(right, checker):  # `(3, 10) <= sys.version_info`: read it the other way
        left, right = right, left
        op = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}.get(
            type(op), op
        )
    bound = _version_tuple(right)
    if not _is_version(left, checker) or bound is None:
        return None
    strict = isinstance(op, ast.GtE | ast.Lt)  # the old side is `< bound`
    if bound > _BREAKING_VERSION or (bound == _BREAKING_VERSION and not strict):
        return None
    if isinstance(op, ast.Gt | ast.GtE):
        return "new"
    if isinstance(op, ast.Lt | ast.LtE):
        return "old"
    return None


def _is_version(expr: ast.expr, checker: Checker) -> bool:
    if isinstance(expr, ast.Subscript):
        expr = expr.value
    return checker.ctx.resolve(expr) == "sys.version_info"


def _version_tuple(expr: ast.expr) -> tuple[int, ...] | None:
    if not isinstance(expr, ast.Tuple):
        return None
    values = [
        item.value
        for item in expr.elts
        if isinstance(item, ast.Constant) and type(item.value) is int
    ]
    return tuple(values) if len(values) == len(expr.elts) else None


def _catches(handler: ast.ExceptHandler, names: frozenset[str], checker: Checker) -> bool:
    if handler.type is None:
        return False
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(checker.ctx.resolve(item) in names for item in types)


def _in_fixture(checker: Checker) -> bool:
    function = checker.function
    if function is None or not isinstance(function.node, ast.FunctionDef):
        return False
    return any(
        checker.ctx.resolve(d.func if isinstance(d, ast.Call) else d) in _FIXTURES
        for d in function.node.decorator_list
    )


def _uses_generator_coroutines(checker: Checker) -> bool:
    """Whether the module decorates a function with ``asyncio.coroutine`` (gone in 3.11)."""
    return any(
        isinstance(node, ast.FunctionDef)
        and any(checker.ctx.resolve(d) == "asyncio.coroutine" for d in node.decorator_list)
        for node in ast.walk(checker.tree)
    )
