"""LW011: cancellation swallowed."""

from __future__ import annotations

import ast
from enum import Enum

from loopwise.lint._ast import walk_all, walk_shallow
from loopwise.lint._checker import Checker
from loopwise.lint._fix import Edit, Fix
from loopwise.lint._rule import Rule
from loopwise.lint.rules._fixes import (
    indentation,
    line_count,
    line_length,
    owns_its_lines,
    segment_before,
)
from loopwise.lint.rules._handler_paths import (
    _awaits_settled_first,
    _consequence,
    _Exit,
    _exits,
    _has_await_point,
    _names_in,
)

_CANCELLED_ERROR = "asyncio.CancelledError"
_BASE_EXCEPTION = "builtins.BaseException"
_KEEPING = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr, ast.Return)
# Methods that store or forward an exception object for someone else to raise or inspect.
_HAND_OFF_METHODS = frozenset(
    {"add", "append", "appendleft", "put", "put_nowait", "set_exception", "set_result", "throw"}
)
# Containers through which a value is still the caught object itself (not `str(exc)`).
_CARRIERS = (ast.Tuple, ast.List, ast.Set, ast.BoolOp, ast.Starred)
# Calls in a handler that show a conscious decision about the task's own cancellation.
_DECIDING_METHODS = frozenset({"uncancel", "cancelling"})
# Libraries whose cancellation is level-triggered (delivered again at the next checkpoint).
_OTHER_RUNTIMES = frozenset({"trio", "anyio"})
_FIX = (
    "re-raise it (`raise`); to stop on purpose, use `asyncio.timeout()` or call "
    "`task.uncancel()` knowingly"
)


class _Catch(Enum):
    CANCELLATION = "cancellation"  # names asyncio.CancelledError
    BROAD = "broad"  # BaseException or a bare except: whatever the runtime cancels with
    OTHER = "other"
    UNKNOWN = "unknown"


class CancellationSwallowed(Rule[ast.Try | ast.TryStar | ast.With]):
    """## What it does
    Checks, inside an `async def`, for exception handlers that catch `asyncio.CancelledError`
    and let the code go on as if the task had not been cancelled: `except
    asyncio.CancelledError`, `except BaseException`, a bare `except:`, `except*` with one of
    them, or a tuple containing one of them, whose handler does not re-raise on every path
    (a `raise` under `if self._closing:` re-raises on one path only). Also
    `with contextlib.suppress(asyncio.CancelledError):` (or `suppress(BaseException)`).
    Import aliases are followed: `from asyncio import CancelledError`,
    `asyncio.exceptions.CancelledError`.

    It is flagged when, after the handler,

    - a loop goes on: the handler falls through or `continue`s inside a loop, or a loop that
      awaits follows it (the task keeps working after it was told to stop); or
    - the function returns normally to a caller that awaits it in line, which then carries on
      as if it had not been cancelled (a `reconnect()` that swallows the cancellation of the
      task whose `while` loop awaits it lets that loop go on).

    Whether a handler re-raises on every path follows `if`/`else`, `match` (a final `case _:`
    covers the rest), nested `try`, and loops: `while True:` and a `for` over a non-empty
    literal or `range(3)` run their body at least once, and a loop's `else:` runs unless it
    breaks.

    Also flagged, wherever the handler's coroutine is awaited from:

    - a handler that raises another exception in the cancellation's place, as a statement of
      its body (`raise ValueError() from exc`, `raise TimeoutError`, or `raise err` where `err`
      is what an enclosing `except ValueError as err` caught): whoever awaits the task sees an
      error, not a cancellation; an `except Exception` there swallows it, and
      `asyncio.timeout()` and `TaskGroup` misread it. A fresh `CancelledError`, and a `raise`
      under an `if` (`if isinstance(exc, OSError): raise Retry() from exc`), are not;
    - a handler of an async generator that yields: the consumer's `async for` receives a
      value instead of the cancellation and goes on.

    ## What it does not flag
    - `except Exception` (which does not catch `CancelledError` since Python 3.8);
    - a `try` whose body has no `await`, `async for` or `async with`: cancellation is delivered
      at an await, so such a handler cannot catch the task's own cancellation (a
      `CancelledError` raised by `task.result()` belongs to another task);
    - a handler that calls `.uncancel()` or tests `.cancelling()`: a deliberate decision about
      the task's own cancellation, made the way `asyncio.timeout()` makes it; and one that
      swallows only a cancellation announced by a flag (`if self._interrupting:
      self._interrupting = False` / `else: raise`);
    - a handler that keeps the exception object it caught (`except CancelledError as exc:`
      then `self._error = exc`, `saved = exc`, `future.set_result(exc)` or `return exc`), to
      hand it to code that raises or reports it later (logging `str(exc)` does not count), or
      that sets a flag an `if flag: raise` after it tests;
    - a broad handler after an earlier handler of the same `try` that catches
      `CancelledError` and re-raises it;
    - waiting for a task you cancelled: `task.cancel()` (or `task.cancel` handed to a callback
      such as `loop.call_soon(task.cancel)`) before the `try`/`suppress()` or at the start of
      its body, whose first await is that task: `await task`, `await asyncio.gather(*tasks)`
      after `for task in tasks: task.cancel()`, through `asyncio.wait_for()` and
      `asyncio.shield()` (`await asyncio.wait_for(asyncio.shield(task), 1)`), optionally
      inside `async with asyncio.timeout(...)`; the same for a future whose exception was just
      set (`future.set_exception(exc)`). The `CancelledError` caught there is the awaited
      task's, and when it comes the rest of the body is skipped. A cancellation of the
      *current* task that arrives during that short wait is swallowed too: before Python
      3.11's `current_task().cancelling()` asyncio gives no way to tell the two apart, and
      this is the accepted price of the idiom. The same holds when the whole guarded body
      waits for a task the object owns (`await self._task`, also through `wait_for()`,
      `shield()` or `asyncio.timeout()`): its `stop()` or `close()` may cancel that task from
      another method, as on 21 real projects every such handler did; but not when this very
      function starts that task (assigns `self._task` before the wait) and nothing in the
      module cancels it (`self._task.cancel()`): it then runs the task in line, and the
      `CancelledError` is its own. Awaiting anything else nobody cancelled, or doing more
      after that wait, is not this idiom: the `CancelledError` is then most likely the
      current task's;
    - a handler that ends a coroutine nobody awaits in line: one the project only runs as a task
      (`create_task(self._reader())`, `asyncio.run(main())`, `gather(...)`, through a variable or a
      helper that calls `create_task`) or hands over uncalled (`partial(self.handler)`,
      `router.add_get("/", handler)`, any call but one of a project function that awaits a call of
      that parameter, as `await with_retries(fetch_page, url)` does) and never awaits (matched by
      name across the project; a task its creator then awaits itself, `t = create_task(download());
      await t` or `[await t for t in tasks]`, counts as awaited); a nested `async def` its enclosing
      function does not await (a callback); a decorated one the project never awaits by name (a
      registered handler: `@retry` or a timing wrapper on an awaited `fetch_user()` does not hide
      it); a `test*` function in a test module (`test_*.py`, `*_test.py`, `conftest.py`, or in a
      `tests`, `test` or `testing` package). `try: while True: ... except asyncio.CancelledError:
      pass` at the top of a background reader is how most libraries stop one: the task ends
      "normally" (`task.cancelled()` is false and awaiting it returns instead of raising), which
      only matters to code that awaits it expecting a `CancelledError`, and its owner, who cancelled
      it, knows. A loop that goes on after the handler is flagged there too;
    - `except BaseException`, a bare `except:` or `suppress(BaseException)` in a module that imports
      trio or anyio and calls no asyncio function (it may import asyncio only to name
      `asyncio.CancelledError`; one that calls `asyncio.sleep()` or `create_task()` runs on asyncio,
      whatever anyio helpers it uses): what they catch there may be `trio.Cancelled`, not
      `asyncio.CancelledError`, and trio and anyio cancel scopes deliver cancellation again at the
      next checkpoint, so swallowing it once does not keep the task running as it does in asyncio
      (flake8-async checks those libraries). `except asyncio.CancelledError` is still checked there.

    ## Why is this bad?
    Cancellation is how asyncio stops a task: `task.cancel()`, `asyncio.timeout()`,
    `asyncio.wait_for()`, a failing `TaskGroup` and the shutdown of `asyncio.run()` all throw
    `CancelledError` into the task at its current `await`, once, and rely on it propagating. A
    handler that swallows it keeps the task running when it was told to stop: a timeout no
    longer raises `TimeoutError`, a `TaskGroup` or `asyncio.run()` waits for a task that will
    not end, and a loop that catches it keeps looping forever.

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

    ## Fix safety
    Unsafe. For a broad handler (`except BaseException:`, a bare `except:`) or a tuple that
    names `CancelledError` with other exceptions, the fix adds `except asyncio.CancelledError:
    raise` just before it (spelled the way the module imports it: `aio.CancelledError`,
    `CancelledError`): the cancellation propagates and every other exception is handled as
    before, but the handler's clean-up no longer runs on cancellation (move it to a `finally:`
    if it must). For a handler that names only `CancelledError`, the fix adds `raise` at its
    end, so the cancellation propagates after the handler's clean-up (a lone `pass` becomes
    `raise`) and code after the `try` that relied on it being swallowed no longer runs. No fix
    when the module does not import asyncio or its `CancelledError` where the handler runs, for
    a handler whose body is on the `except` line or already ends in `return`, `break`,
    `continue` or `raise`, nor for `contextlib.suppress`.
    """

    code = "LW011"
    name = "cancellation-swallowed"
    summary = "cancellation swallowed: asyncio.CancelledError caught and never re-raised"
    fix_safety = "unsafe"
    node_types = (ast.Try, ast.TryStar, ast.With)

    def visit(self, node: ast.Try | ast.TryStar | ast.With, checker: Checker) -> None:
        if not checker.in_async_function:
            return
        if isinstance(node, ast.With):
            _check_suppress(node, checker)
        else:
            _check_try(node, checker)


def _check_try(node: ast.Try | ast.TryStar, checker: Checker) -> None:
    if not _has_await_point(node.body):
        return
    for handler in node.handlers:
        catch, text = _classify(handler.type, checker)
        if catch is _Catch.OTHER:
            continue
        if catch is _Catch.UNKNOWN:
            if _reraises(handler):
                return  # it may catch CancelledError and re-raise: later handlers never see it
            continue
        if catch is _Catch.BROAD and _other_runtime(checker):
            return
        _check_handler(node, handler, catch, text, checker)
        return  # later handlers never see the CancelledError this one took


def _check_handler(
    node: ast.Try | ast.TryStar,
    handler: ast.ExceptHandler,
    catch: _Catch,
    text: str,
    checker: Checker,
) -> None:
    if _decides(handler, checker):
        return
    star = "*" if isinstance(node, ast.TryStar) else ""
    what = f"`except{star} {text}`" if handler.type is not None else "bare `except:`"
    caught = "the task's cancellation" if catch is _Catch.CANCELLATION else "a cancellation"
    replaced = _converting_raise(handler, checker)
    if replaced is not None and not _awaits_settled_first(node, checker):
        checker.report(
            handler,
            f"{what} turns {caught} into `{ast.unparse(replaced)}`: whoever awaits the task "
            "sees an error, not a cancellation (an `except Exception` there swallows it, "
            f"`asyncio.timeout()` and `TaskGroup` misread it): {_FIX}",
        )
        return
    if _yields_in(handler, checker) and not _awaits_settled_first(node, checker):
        checker.report(
            handler,
            f"{what} catches {caught} and yields from the handler: the consumer's "
            f"`async for` gets a value instead of the cancellation and goes on: {_FIX}",
        )
        return
    exits = _exits(handler.body)
    if exits == {_Exit.RAISE} or _awaits_settled_first(node, checker):
        return
    consequence = _consequence(node, exits - {_Exit.RAISE}, _assigned(handler), checker)
    if consequence is None:
        return
    partly = _Exit.RAISE in exits
    if catch is _Catch.CANCELLATION:
        head = f"{what} swallows the task's cancellation"
        head += " on a path that does not re-raise it" if partly else ""
    elif partly:
        head = f"{what} catches `asyncio.CancelledError` and re-raises it on some paths only"
    else:
        head = f"{what} catches `asyncio.CancelledError` and never re-raises it"
    fix = None
    if checker.fixes:
        if catch is _Catch.BROAD or isinstance(handler.type, ast.Tuple):
            # a `raise` at the end would re-raise what else the handler catches, too
            fix = _cancellation_handler_fix(node, handler, checker)
        else:
            fix = _reraise_fix(handler, checker)
    checker.report(handler, f"{head}{consequence}: {_FIX}", fix=fix)


def _cancellation_handler_fix(
    node: ast.Try | ast.TryStar, handler: ast.ExceptHandler, checker: Checker
) -> Fix | None:
    """``except asyncio.CancelledError: raise`` just before a broad handler (or a tuple that
    names it): cancellation propagates, every other exception is handled as before."""
    name = _cancelled_error_name(checker)
    if name is None:
        return None  # neither asyncio nor its CancelledError is imported where the handler runs
    first = handler.body[0]
    indent = _handler_indentation(handler, checker)
    body_indent = indentation(checker, first) if first.lineno != handler.lineno else None
    if indent is None:
        return None
    if body_indent is None or not body_indent.startswith(indent) or body_indent == indent:
        body_indent = indent + "    "
    star = "*" if isinstance(node, ast.TryStar) else ""
    text = f"except{star} {name}:\n{body_indent}raise\n{indent}"
    edit = Edit.insert(handler.lineno, handler.col_offset, text)
    return Fix("re-raise the cancellation before the broad handler", (edit,), safe=False)


def _cancelled_error_name(checker: Checker) -> str | None:
    """How the code at the handler names ``asyncio.CancelledError``: ``asyncio.CancelledError``,
    ``aio.CancelledError`` or the imported ``CancelledError`` (None: it cannot name it)."""
    candidates = ["asyncio.CancelledError"]
    for bound, target in checker.ctx.module.imports.items():
        if target in {"asyncio", "asyncio.exceptions"}:
            candidates.append(f"{bound}.CancelledError")
        elif target in {_CANCELLED_ERROR, "asyncio.exceptions.CancelledError"}:
            candidates.append(bound)
    for text in candidates:
        expression = ast.parse(text, mode="eval").body
        if checker.ctx.resolve(expression) == _CANCELLED_ERROR:
            return text
    return None


def _handler_indentation(handler: ast.ExceptHandler, checker: Checker) -> str | None:
    """The blank text before the handler's `except` (None: something else is there)."""
    text = segment_before(checker, handler.lineno, handler.col_offset)
    return text if text is not None and not text.strip(" \t") else None


def _reraise_fix(handler: ast.ExceptHandler, checker: Checker) -> Fix | None:
    """A bare ``raise`` after the handler's last statement, at the body's indentation."""
    first, last = handler.body[0], handler.body[-1]
    if first.lineno == handler.lineno or last.end_lineno is None:
        return None
    if isinstance(last, ast.Return | ast.Raise | ast.Break | ast.Continue):
        return None
    indent = indentation(checker, first)
    if indent is None or not owns_its_lines(checker, last):
        return None
    if len(handler.body) == 1 and isinstance(first, ast.Pass):
        edit = Edit(first.lineno, first.col_offset, first.lineno, first.col_offset + 4, "raise")
        return Fix("re-raise instead of `pass`", (edit,), safe=False)
    if last.end_lineno < line_count(checker):
        edit = Edit.insert(last.end_lineno + 1, 0, f"{indent}raise\n")
    else:
        end = line_length(checker, last.end_lineno)  # after a trailing comment, if any
        edit = Edit.insert(last.end_lineno, end, f"\n{indent}raise")
    return Fix("re-raise at the end of the handler", (edit,), safe=False)


def _check_suppress(node: ast.With, checker: Checker) -> None:
    for item in node.items:
        expr = item.context_expr
        if not (isinstance(expr, ast.Call) and expr.args):
            continue
        if checker.ctx.resolve_call(expr) != "contextlib.suppress":
            continue
        caught = [_classify(argument, checker) for argument in expr.args]
        kinds = {catch for catch, _ in caught}
        broad_only = _Catch.CANCELLATION not in kinds
        if broad_only and (_Catch.BROAD not in kinds or _other_runtime(checker)):
            continue
        if not _has_await_point(node.body) or _awaits_settled_first(node, checker):
            return
        consequence = _consequence(node, {_Exit.FALL}, set(), checker)
        if consequence is None:
            return
        text = ast.unparse(expr.func)
        arguments = ", ".join(text for _, text in caught)
        message = f"`{text}({arguments})` swallows the task's cancellation{consequence}: {_FIX}"
        checker.report(expr, message)
        return


def _classify(expr: ast.expr | None, checker: Checker) -> tuple[_Catch, str]:
    """Whether an ``except`` clause's type catches ``CancelledError``, and its text."""
    if expr is None:
        return _Catch.BROAD, ""
    text = ast.unparse(expr)
    if isinstance(expr, ast.Tuple):
        kinds = {_classify(element, checker)[0] for element in expr.elts}
        for kind in (_Catch.CANCELLATION, _Catch.BROAD, _Catch.UNKNOWN):
            if kind in kinds:
                return kind, text
        return _Catch.OTHER, text
    resolved = checker.ctx.resolve(expr)
    if resolved is None:
        return _Catch.UNKNOWN, text
    if resolved == _CANCELLED_ERROR:
        return _Catch.CANCELLATION, text
    return (_Catch.BROAD if resolved == _BASE_EXCEPTION else _Catch.OTHER), text


def _other_runtime(checker: Checker) -> bool:
    """Whether a broad handler may catch trio's or anyio's ``Cancelled`` rather than asyncio's.

    So when the module imports trio or anyio and calls no asyncio function: it may import
    asyncio only to name ``asyncio.CancelledError``. A module that calls ``asyncio.sleep()`` or
    ``asyncio.create_task()`` runs on asyncio, whatever anyio helpers it also uses.
    """
    imported = checker.ctx.module.imports.values()
    if not any(_root(target) in _OTHER_RUNTIMES for target in imported):
        return False
    return not _runs_on_asyncio(checker)


def _root(qualname: str | None) -> str:
    return (qualname or "").split(".")[0]


def _runs_on_asyncio(checker: Checker) -> bool:
    """Whether the module calls an asyncio function (``asyncio.sleep()``, ``create_task()``)."""
    for node in walk_all(checker.tree):
        if isinstance(node, ast.Call):
            callee = checker.ctx.resolve_call(node) or ""
            if _root(callee) == "asyncio" and not callee.startswith("asyncio.iscoroutine"):
                return True
    return False


# -- what the handler does with the exception ----------------------------------------------------


def _converting_raise(handler: ast.ExceptHandler, checker: Checker) -> ast.expr | None:
    """The exception a handler raises in place of the one it caught (`raise ValueError() from
    exc`, `raise err` where `err` is what an enclosing handler caught), as a statement of its
    own body: a `raise` under an `if` may be on a path a cancellation never takes (`if
    isinstance(exc, OSError):`, an invariant check). A fresh `CancelledError`, the caught
    object, and a value of unknown origin (`raise self._error`, a local variable) are not taken
    as replacing it."""
    outer = {  # what enclosing handlers caught that cannot be a cancellation
        p.name
        for p in checker.parents
        if isinstance(p, ast.ExceptHandler)
        and p.name
        and _classify(p.type, checker)[0] is _Catch.OTHER
    }
    for node in handler.body:
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        exc = node.exc
        if isinstance(exc, ast.Name):
            if exc.id == handler.name:
                continue
            resolved = checker.ctx.resolve(exc)
            if resolved is None:
                if exc.id in outer:
                    return exc
                continue
        elif isinstance(exc, ast.Call):
            resolved = checker.ctx.resolve_call(exc)
        else:
            continue
        if resolved not in (_CANCELLED_ERROR, "asyncio.exceptions.CancelledError"):
            return exc
    return None


def _yields_in(handler: ast.ExceptHandler, checker: Checker) -> bool:
    """Whether the handler of an async generator yields a value."""
    if not isinstance(checker.enclosing_function_node(), ast.AsyncFunctionDef):
        return False
    return any(isinstance(node, ast.Yield) for node in walk_shallow(handler))


def _reraises(handler: ast.ExceptHandler) -> bool:
    return any(isinstance(node, ast.Raise) for node in walk_shallow(handler))


def _decides(handler: ast.ExceptHandler, checker: Checker) -> bool:
    """Whether the handler hands the exception on or decides about the cancellation knowingly."""
    return (
        _calls_deciding_method(handler)
        or _keeps_exception(handler)
        or _raises_later(handler, checker)
        or _swallows_only_announced(handler)
    )


def _swallows_only_announced(handler: ast.ExceptHandler) -> bool:
    """``if self._interrupting: self._interrupting = False / else: raise``.

    The code that cancels sets a flag first; the handler swallows only a cancellation announced
    that way, clears the flag, and re-raises any other.
    """
    for node in walk_shallow(handler):
        if not isinstance(node, ast.If) or not node.orelse:
            continue
        for swallowing, raising in ((node.body, node.orelse), (node.orelse, node.body)):
            if _exits(raising) == {_Exit.RAISE} and _Exit.RAISE not in _exits(swallowing):
                cleared = {
                    ast.unparse(target)
                    for statement in swallowing
                    if isinstance(statement, ast.Assign)
                    for target in statement.targets
                }
                if cleared & _names_in(node.test):
                    return True
    return False


def _calls_deciding_method(handler: ast.ExceptHandler) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _DECIDING_METHODS
        for node in walk_shallow(handler)
    )


def _keeps_exception(handler: ast.ExceptHandler) -> bool:
    """Whether the handler hands the exception object it caught to code that may raise it.

    Only the object itself counts (``saved = exc``, ``a, b = kind, exc``, ``e = self.error or
    exc``, ``return exc``, ``errors.append(exc)``, ``future.set_result((exc, n))``), not
    ``str(exc)`` or a log call.
    """
    name = handler.name
    if name is None:
        return False
    for node in walk_shallow(handler):
        if isinstance(node, _KEEPING) and node.value is not None:
            values = [node.value]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _HAND_OFF_METHODS
        ):
            values = node.args
        else:
            continue
        if any(_carries(value, name) for value in values):
            return True
    return False


def _carries(value: ast.expr, name: str) -> bool:
    """Whether ``value`` is, or holds, the object bound to ``name`` (not something made of it)."""
    if isinstance(value, ast.Name):
        return value.id == name
    if isinstance(value, ast.IfExp):
        return _carries(value.body, name) or _carries(value.orelse, name)
    if isinstance(value, ast.Starred):
        return _carries(value.value, name)
    if isinstance(value, _CARRIERS):
        parts = value.values if isinstance(value, ast.BoolOp) else getattr(value, "elts", [])
        return any(_carries(part, name) for part in parts)
    return False


def _raises_later(handler: ast.ExceptHandler, checker: Checker) -> bool:
    """Whether the handler sets a flag that an ``if flag: raise ...`` after it tests."""
    flags = _assigned(handler)
    function = checker.function
    if not flags or function is None:
        return False
    end = handler.end_lineno or handler.lineno
    for node in walk_shallow(function.node):
        if not isinstance(node, ast.If) or node.lineno <= end:
            continue
        if flags & _names_in(node.test) and _reraises_in(node.body):
            return True
    return False


def _assigned(handler: ast.ExceptHandler) -> set[str]:
    """The names and attributes the handler assigns (``cancelled = True``, ``self.x = None``)."""
    return {
        ast.unparse(target)
        for node in walk_shallow(handler)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name | ast.Attribute)
    }


def _reraises_in(body: list[ast.stmt]) -> bool:
    return any(
        isinstance(node, ast.Raise)
        for statement in body
        for node in (statement, *walk_shallow(statement))
    )
