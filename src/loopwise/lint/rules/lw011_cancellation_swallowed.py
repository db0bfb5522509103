"""LW011: cancellation swallowed."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from enum import Enum

from loopwise.lint._context import walk_shallow
from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker

_CANCELLATION = frozenset({"asyncio.CancelledError", "builtins.BaseException"})
_AWAIT_POINTS = (ast.Await, ast.AsyncFor, ast.AsyncWith)
_KEEPING = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr, ast.Return)
# Methods that store or forward an exception object for someone else to raise.
_HAND_OFF_METHODS = frozenset(
    {"add", "append", "appendleft", "put", "put_nowait", "set_exception", "throw"}
)
_TIMEOUTS = frozenset({"asyncio.timeout", "asyncio.timeout_at"})
_PASS_THROUGH = frozenset({"asyncio.wait_for", "asyncio.shield"})
# Settling a future before awaiting it: cancelling it, or setting its exception.
_SETTLE_METHODS = frozenset({"cancel", "set_exception"})
_FIX = (
    "re-raise it (`raise`); to stop on purpose, use `asyncio.timeout()` or call "
    "`task.uncancel()` knowingly"
)


class _Catch(Enum):
    CANCELLATION = "cancellation"
    OTHER = "other"
    UNKNOWN = "unknown"


class CancellationSwallowed(Rule):
    """## What it does
    Checks, inside an `async def`, for exception handlers that catch `asyncio.CancelledError`
    and never re-raise it: `except asyncio.CancelledError`, `except BaseException`, a bare
    `except:`, `except*` with one of them, or a tuple containing one of them, whose handler has
    no `raise` statement anywhere (outside nested functions). Also
    `with contextlib.suppress(asyncio.CancelledError):` (or `suppress(BaseException)`).
    Import aliases are followed: `from asyncio import CancelledError`,
    `asyncio.exceptions.CancelledError`.

    Not flagged:

    - `except Exception` (which does not catch `CancelledError` since Python 3.8);
    - a `try` whose body has no `await`, `async for` or `async with`: cancellation is delivered
      at an await, so such a handler cannot catch the task's own cancellation (a
      `CancelledError` raised by `task.result()` belongs to another task);
    - a handler that calls `.uncancel()`: that is a deliberate decision to stop being
      cancelled, made the way `asyncio.timeout()` makes it;
    - a handler that keeps the exception object it caught (`except CancelledError as exc:`
      then `self._error = exc`, `saved = exc` or `return exc`), to hand it to code that raises
      it later (logging `str(exc)` does not count);
    - a broad handler after an earlier handler of the same `try` that catches
      `CancelledError` and re-raises it;
    - the idiom of awaiting a task you have just cancelled: `task.cancel()` earlier in the
      function (or `task.cancel` handed to a callback such as `loop.call_soon(task.cancel)`),
      then `try: await task` / `except asyncio.CancelledError: pass` (or
      `with contextlib.suppress(asyncio.CancelledError): await task`), where the body only
      awaits tasks cancelled before it: one by one, with `asyncio.gather(*tasks)` after
      `for task in tasks: task.cancel()`, with `asyncio.wait_for(task, ...)` or
      `asyncio.shield(task)`, optionally inside `async with asyncio.timeout(...)`. The same
      holds for a future whose exception was just set with `future.set_exception(exc)`.
      (A cancellation of the *current* task that arrives during that short wait is swallowed
      too; this is the accepted price of the idiom.)

    ## Why is this bad?
    Cancellation is how asyncio stops a task: `task.cancel()`, `asyncio.timeout()`,
    `asyncio.wait_for()`, a failing `TaskGroup` and the shutdown of `asyncio.run()` all throw
    `CancelledError` into the task at its current `await` and rely on it propagating. A handler
    that swallows it keeps the task running when it was told to stop: a timeout no longer
    raises `TimeoutError`, a `TaskGroup` or `asyncio.run()` waits for a task that will not end,
    and a loop that catches it keeps looping forever.

    ## Example
    ```python
    async def worker(queue):
        while True:
            item = await queue.get()
            try:
                await process(item)
            except BaseException:
                log.exception("failed to process %r", item)
    ```

    ## Use instead
    Catch only errors (`Exception`), or re-raise:
    ```python
    async def worker(queue):
        while True:
            item = await queue.get()
            try:
                await process(item)
            except asyncio.CancelledError:
                log.info("worker stopped while processing %r", item)
                raise
            except Exception:
                log.exception("failed to process %r", item)
    ```
    To stop waiting after a while, use `async with asyncio.timeout(5):` and catch
    `TimeoutError`. Awaiting a task you have just cancelled is fine:
    ```python
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    ```
    """

    code = "LW011"
    name = "cancellation-swallowed"
    summary = "cancellation swallowed: asyncio.CancelledError caught and never re-raised"
    nodes = (ast.Try, ast.TryStar, ast.With)

    def visit(self, node: ast.AST, checker: Checker) -> None:
        if not checker.in_async_function:
            return
        if isinstance(node, ast.With):
            _check_suppress(node, checker)
        else:
            assert isinstance(node, ast.Try | ast.TryStar)
            _check_try(node, checker)


def _check_try(node: ast.Try | ast.TryStar, checker: Checker) -> None:
    if not _has_await_point(node.body):
        return
    for handler in node.handlers:
        catch, text = _classify(handler.type, checker)
        if catch is _Catch.OTHER:
            continue
        handled = _handled(handler, checker)
        if catch is _Catch.UNKNOWN:
            if handled:
                return  # it may catch CancelledError and re-raise: later handlers never see it
            continue
        if handled or _awaits_only_cancelled_tasks(node, checker):
            return
        star = "*" if isinstance(node, ast.TryStar) else ""
        what = f"`except{star} {text}`" if handler.type is not None else "bare `except:`"
        if text.endswith("CancelledError") and handler.type is not None:
            message = f"{what} swallows the task's cancellation: {_FIX}"
        else:
            message = f"{what} catches `asyncio.CancelledError` and never re-raises it: {_FIX}"
        checker.report(handler, message)
        return  # later handlers never see the CancelledError this one took


def _check_suppress(node: ast.With, checker: Checker) -> None:
    for item in node.items:
        expr = item.context_expr
        if not (isinstance(expr, ast.Call) and expr.args):
            continue
        if checker.ctx.resolve_call(expr) != "contextlib.suppress":
            continue
        caught = [_classify(argument, checker) for argument in expr.args]
        if not any(catch is _Catch.CANCELLATION for catch, _ in caught):
            continue
        if not _has_await_point(node.body) or _awaits_only_cancelled_tasks(node, checker):
            return
        text = ast.unparse(expr.func)
        arguments = ", ".join(text for _, text in caught)
        checker.report(expr, f"`{text}({arguments})` swallows the task's cancellation: {_FIX}")
        return


def _classify(expr: ast.expr | None, checker: Checker) -> tuple[_Catch, str]:
    """Whether an ``except`` clause's type catches ``CancelledError``, and its text."""
    if expr is None:
        return _Catch.CANCELLATION, ""
    text = ast.unparse(expr)
    if isinstance(expr, ast.Tuple):
        kinds = {_classify(element, checker)[0] for element in expr.elts}
        for kind in (_Catch.CANCELLATION, _Catch.UNKNOWN):
            if kind in kinds:
                return kind, text
        return _Catch.OTHER, text
    resolved = checker.ctx.resolve(expr)
    if resolved is None:
        return _Catch.UNKNOWN, text
    return (_Catch.CANCELLATION if resolved in _CANCELLATION else _Catch.OTHER), text


def _has_await_point(body: Iterable[ast.stmt]) -> bool:
    """Whether running ``body`` may suspend the coroutine (and so receive a cancellation)."""
    for statement in body:
        if isinstance(statement, _AWAIT_POINTS):
            return True
        for node in walk_shallow(statement):
            if isinstance(node, _AWAIT_POINTS):
                return True
            if isinstance(node, ast.comprehension) and node.is_async:
                return True
    return False


def _reraises(handler: ast.ExceptHandler) -> bool:
    return any(isinstance(node, ast.Raise) for node in walk_shallow(handler))


def _handled(handler: ast.ExceptHandler, checker: Checker) -> bool:
    """Whether the handler re-raises, hands the exception on, or decides to stop knowingly."""
    return (
        _reraises(handler)
        or _uncancels(handler)
        or _keeps_exception(handler)
        or _raises_later(handler, checker)
    )


def _keeps_exception(handler: ast.ExceptHandler) -> bool:
    """Whether the handler hands the exception object it caught to code that may raise it.

    Only the object itself counts (``saved = exc``, ``a, b = kind, exc``, ``return exc``,
    ``errors.append(exc)``, ``future.set_exception(exc)``), not ``str(exc)`` or a log call.
    """
    name = handler.name
    if name is None:
        return False
    for node in walk_shallow(handler):
        if isinstance(node, _KEEPING) and node.value is not None:
            value = node.value
            values = value.elts if isinstance(value, ast.Tuple | ast.List) else [value]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _HAND_OFF_METHODS
        ):
            values = node.args
        else:
            continue
        if any(isinstance(item, ast.Name) and item.id == name for item in values):
            return True
    return False


def _raises_later(handler: ast.ExceptHandler, checker: Checker) -> bool:
    """Whether the handler sets a flag that an ``if flag: raise ...`` after it tests."""
    flags = {
        ast.unparse(target)
        for node in walk_shallow(handler)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name | ast.Attribute)
    }
    function = checker.function
    if not flags or function is None:
        return False
    end = handler.end_lineno or handler.lineno
    for node in walk_shallow(function.node):
        if not isinstance(node, ast.If) or node.lineno <= end:
            continue
        tested = {ast.unparse(part) for part in ast.walk(node.test)}
        if flags & tested and _reraises_in(node.body):
            return True
    return False


def _reraises_in(body: list[ast.stmt]) -> bool:
    return any(
        isinstance(node, ast.Raise)
        for statement in body
        for node in (statement, *walk_shallow(statement))
    )


def _uncancels(handler: ast.ExceptHandler) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "uncancel"
        for node in walk_shallow(handler)
    )


def _awaits_only_cancelled_tasks(node: ast.Try | ast.TryStar | ast.With, checker: Checker) -> bool:
    """Whether ``node``'s body only awaits tasks cancelled before it in the same function."""
    function = checker.function
    if function is None:
        return False
    cancelled = set(_cancelled_before(function.node, node.lineno))
    return _only_awaits_cancelled(node.body, cancelled, checker)


def _only_awaits_cancelled(body: list[ast.stmt], cancelled: set[str], checker: Checker) -> bool:
    """Whether ``body`` cancels and awaits cancelled tasks and does nothing else.

    An ``async with asyncio.timeout(...)`` around such awaits is allowed.
    """
    awaited = False
    for statement in body:
        if isinstance(statement, ast.AsyncWith) and all(
            _is_timeout(item, checker) for item in statement.items
        ):
            if not _only_awaits_cancelled(statement.body, cancelled, checker):
                return False
            awaited = True
            continue
        value = statement.value if isinstance(statement, ast.Expr) else None
        receiver = _cancel_receiver(value)
        if receiver is not None:
            cancelled.add(receiver)
        elif isinstance(value, ast.Await) and _awaits_cancelled(value.value, cancelled, checker):
            awaited = True
        else:
            return False
    return awaited


def _is_timeout(item: ast.withitem, checker: Checker) -> bool:
    expr = item.context_expr
    return (
        item.optional_vars is None
        and isinstance(expr, ast.Call)
        and checker.ctx.resolve_call(expr) in _TIMEOUTS
    )


def _awaits_cancelled(awaited: ast.expr, cancelled: set[str], checker: Checker) -> bool:
    if ast.dump(awaited) in cancelled:
        return True
    if not (isinstance(awaited, ast.Call) and awaited.args):
        return False
    callee = checker.ctx.resolve_call(awaited)
    if callee in _PASS_THROUGH:
        return ast.dump(awaited.args[0]) in cancelled
    if callee != "asyncio.gather":
        return False
    if any(keyword.arg == "return_exceptions" for keyword in awaited.keywords):
        return False  # the tasks' CancelledErrors come back as results: only ours is raised
    return all(_argument_key(argument) in cancelled for argument in awaited.args)


def _argument_key(argument: ast.expr) -> str:
    if isinstance(argument, ast.Starred):
        return "*" + ast.dump(argument.value)
    return ast.dump(argument)


def _cancelled_before(function: ast.AST, line: int) -> Iterator[str]:
    """Keys of what the function cancels before ``line``: ``task`` or ``*tasks`` (a loop).

    ``task.cancel`` counts whether it is called or handed over (``loop.call_soon(task.cancel)``).
    """
    for node in walk_shallow(function):
        if getattr(node, "lineno", line) >= line:
            continue
        receiver = _cancel_receiver(node)
        if receiver is not None:
            yield receiver
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            target = ast.dump(ast.Name(id=node.target.id, ctx=ast.Load()))
            if any(_cancel_receiver(child) == target for child in walk_shallow(node)):
                yield "*" + ast.dump(node.iter)


def _cancel_receiver(node: ast.AST | None) -> str | None:
    """The key of ``x`` when ``node`` is ``x.cancel``, ``x.set_exception`` or a call of them."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and node.attr in _SETTLE_METHODS:
        return ast.dump(node.value)
    return None
