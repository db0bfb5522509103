"""LW006: exceptions thrown away by gather(return_exceptions=True)."""

from __future__ import annotations

import ast
import re

from loopwise.lint._ast import LOOPS, SCOPE_NODES, walk_all, walk_shallow
from loopwise.lint._awaits import _last_name
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._discard import discarded_value

# Awaiting these gives back what their first argument gives back.
_PASS_THROUGH = frozenset({"asyncio.shield", "asyncio.wait_for"})

# `t.throw(exc)` (a task wrapper's or a coroutine's) ends it with `exc`, like cancel() does.
_CANCELLING_METHODS = frozenset({"cancel", "throw"})
_ADDING_ONE = frozenset({"append", "add"})
_FILLING_METHODS = _ADDING_ONE | {"extend", "update"}
_COPYING_CALLS = frozenset({"list", "tuple", "set", "sorted", "reversed"})

_FIX = "inspect the results (`isinstance(r, BaseException)`) or drop `return_exceptions=True`"


class GatherExceptionsDropped(Rule[ast.Expr | ast.Assign | ast.AnnAssign]):
    """## What it does
    Checks for `await asyncio.gather(..., return_exceptions=True)` whose result is thrown away:
    the `await` is a statement on its own, its result is assigned to `_`, or it is assigned to
    a local variable that the function never reads. Also through `asyncio.wait_for(gather(...))`
    and `asyncio.shield(gather(...))`, which hand back the same list.

    ## What it does not flag
    - `gather()` without `return_exceptions=True` (it raises the first failure), a result that
      is used, and `return_exceptions=` set to anything but a literal true.
    - Awaitables whose failures are expected, reported or unimportant; every one passed must
      be one of these:
      - a task the function has just ended itself: it called `.cancel()` (or `.throw(exc)`)
        on it, directly (`task.cancel()`, then `gather(task, ...)`) or in a loop over the
        collection passed (`for t in tasks: if not t.done(): t.cancel()`, then
        `gather(*tasks, ...)`). Its `CancelledError` (or the thrown exception) is the expected
        outcome, not a lost failure;
      - a task the function gave a done-callback that reads its outcome
        (`t.add_done_callback(log_failure)`, directly or in such a loop): a lambda, a function
        or method of the same module (`name`, `self.name`, `partial(name, ...)`) that calls
        `.exception()` or `.result()`. The callback reports the failure. `tasks.discard` or a
        callback from another module does not count;
      - a call that tears something down: a method or function whose name ends with one of
        the cleanup words below (`conn.close()`, `node.disconnect()`, `self._force_close(c)`),
        `x.wait_closed()`, or `create_task()`/`ensure_future()` of such a call.
      A local list that only ever gets such tasks counts too (`cancelled.append(t)` next to
      `t.cancel()`), and so do a copy or a filter of such a collection (`list(tasks)`,
      `(t for t in (self.a, self.b) if t is not None)`) and a literal or comprehension of
      cleanup calls (`*(c.close() for c in conns)`). A list that may also hold something else
      (a parameter, or one another task is appended to) is still flagged.
    - Best-effort cleanup, where an error from one part must neither stop the rest nor replace
      the error being handled: a gather in a `finally:` block, in an `except` handler whose
      every path ends by raising (its last statement is `raise` or `raise NewError(...)`, and
      it has no `return`, nor a `break`/`continue` of a loop around the `try`), or in a
      function whose name ends with one of the words `close`, `aclose`, `disconnect`,
      `shutdown`, `stop`, `cleanup`, `teardown` or `aexit`, optionally followed by `all`
      (`close()`, `on_shutdown()`, `graceful_shutdown()`, `close_all()`, `asyncTearDown()`,
      `setup_and_cleanup()`, `__aexit__()`). A handler that raises only on the last attempt
      (`if attempt == 2: raise`) is flagged, and so is a function where the word is not the
      last one (`close_stale_issues()`, `place_stop_orders()`, `handle_stop_command()`) or is
      part of a longer word (`disclose()`, `closest()`). These are the places where real
      projects use the idiom on purpose, to wait for everything to end whatever happened;
      there, losing a teardown error is the intended trade-off.

    - Test code (the files `test-paths` matches): a test gathers workers it expects to fail
      (an adversity test), or drains another object's background tasks and then asserts on
      the outcome; on the 21 projects of the ecosystem check every such finding in tests was
      wrong or noise.

    ## Why is this bad?
    With `return_exceptions=True`, `gather()` never raises for a failed awaitable: it catches
    the exception and puts it in the result list, in the failed awaitable's position. If nobody
    looks at that list, every failure vanishes silently: no traceback, no log line, not even the
    "exception was never retrieved" warning that a forgotten task would give.

    ## Example
    ```python
    import asyncio

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

    ## Fix safety
    No fix: what to do with the failures (raise, log, retry) is the program's decision.
    """

    code = "LW006"
    in_tests = False
    name = "gather-exceptions-dropped"
    summary = "result of gather(return_exceptions=True) is discarded"
    node_types = (ast.Expr, ast.Assign, ast.AnnAssign)

    def visit(self, node: ast.Expr | ast.Assign | ast.AnnAssign, checker: Checker) -> None:
        value = getattr(node, "value", None)
        if not (isinstance(value, ast.Await) and isinstance(value.value, ast.Call)):
            return
        gather = _gather_collecting_exceptions(value.value, checker)
        if gather is None:
            return
        discard = discarded_value(node, checker)
        if (
            discard is None
            or _outcomes_accounted_for(gather, checker)
            or _best_effort_cleanup(node, checker)
        ):
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


def _outcomes_accounted_for(gather: ast.Call, checker: Checker) -> bool:
    """Whether no awaitable ``gather`` waits for can fail in a way anybody would miss.

    That is: each one is a task the function ended itself (``task.cancel(); await gather(task,
    return_exceptions=True)``, the shutdown idiom: its `CancelledError` is the expected
    outcome), a task given a done-callback that reads its outcome (the callback reports the
    failure), or a call that tears something down (``conn.close()``: best-effort cleanup).
    """
    function = checker.function
    if function is None or not gather.args:
        return False
    tasks = _AccountedTasks(function.node, checker)
    return all(
        tasks.covers(arg.value) or _cleanup_calls(arg.value)
        if isinstance(arg, ast.Starred)
        else tasks.is_task(arg) or _is_cleanup_call(arg)
        for arg in gather.args
    )


class _AccountedTasks:
    """Tasks whose outcome a function accounts for, as source texts (``t``, ``self.a``), and
    collections of them.

    A task is accounted for when ``.cancel()`` (or ``.throw(exc)``, which cancels with ``exc``)
    is called on it, or ``.add_done_callback(cb)`` with a callback that reads the outcome
    (:func:`_reads_outcome`). A collection is accounted for when a loop or comprehension does
    that to the name it binds from it (``for t in tasks: t.cancel()``), or when it is a local
    that only ever gets such tasks: assigned empty or from such a collection, filled by
    ``append``/``add`` of such tasks and ``extend``/``update`` with such collections.
    """

    def __init__(self, function: ast.AST, checker: Checker) -> None:
        self.checker = checker
        self.texts: set[str] = set()
        self.assigned: dict[str, list[ast.expr]] = {}
        self.filled: dict[str, list[tuple[str, ast.expr]]] = {}
        self.unfollowed: set[str] = set()  # names also bound by unpacking or a loop
        loops: list[tuple[ast.expr, ast.expr]] = []
        for node in walk_shallow(function):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                self._method_call(node.func, node.args)
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                loops.append((node.target, node.iter))
                self._unfollowed(node.target)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    self._assignment(target, node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
                self._assignment(node.target, node.value)
        while True:  # each round follows one more hop: task -> loop -> list -> ...
            known = len(self.texts)
            for target, iterable in loops:
                if isinstance(target, ast.Name) and target.id in self.texts:
                    self._mark(iterable)
            for name in self.filled.keys() | self.assigned.keys():
                if name not in self.texts and self._holds_only_accounted(name):
                    self.texts.add(name)
            if len(self.texts) == known:
                break

    def _method_call(self, method: ast.Attribute, args: list[ast.expr]) -> None:
        if method.attr in _CANCELLING_METHODS or (
            method.attr == "add_done_callback" and args and _reads_outcome(args[0], self.checker)
        ):
            self.texts.add(ast.unparse(method.value))
        elif method.attr in _FILLING_METHODS and isinstance(method.value, ast.Name) and args:
            self.filled.setdefault(method.value.id, []).append((method.attr, args[0]))

    def _assignment(self, target: ast.expr, value: ast.expr | None) -> None:
        if isinstance(target, ast.Name):
            if value is not None:  # `tasks: list[Task]` alone binds nothing
                self.assigned.setdefault(target.id, []).append(value)
        else:
            self._unfollowed(target)

    def _unfollowed(self, target: ast.expr) -> None:
        if not isinstance(target, ast.Name):
            self.unfollowed.update(
                name.id for name in ast.walk(target) if isinstance(name, ast.Name)
            )

    def _mark(self, collection: ast.expr) -> None:
        """Record that every item of ``collection`` is accounted for (a loop did it to each)."""
        self.texts.add(ast.unparse(collection))
        if isinstance(collection, ast.Tuple | ast.List | ast.Set):
            for item in collection.elts:
                if isinstance(item, ast.Starred):
                    self._mark(item.value)
                else:
                    self.texts.add(ast.unparse(item))
        inner = _same_items_as(collection)
        if inner is not None:
            self._mark(inner)

    def _holds_only_accounted(self, name: str) -> bool:
        """Whether local ``name`` is a collection that only ever gets accounted-for tasks."""
        if name in self.unfollowed or name not in self.assigned:
            return False  # a parameter, or bound in a way not followed: may hold anything
        fills = self.filled.get(name, [])
        values = [value for value in self.assigned.get(name, []) if not _is_empty(value)]
        if not fills and not values:
            return False  # never filled: nothing to drain
        return all(
            self.is_task(item) if method in _ADDING_ONE else self.covers(item)
            for method, item in fills
        ) and all(self.covers(value) for value in values)

    def is_task(self, node: ast.expr) -> bool:
        return ast.unparse(node) in self.texts

    def covers(self, collection: ast.expr) -> bool:
        """Whether every item of ``collection`` is an accounted-for task."""
        if ast.unparse(collection) in self.texts:
            return True
        if isinstance(collection, ast.Tuple | ast.List | ast.Set):
            return bool(collection.elts) and all(
                self.covers(item.value) if isinstance(item, ast.Starred) else self.is_task(item)
                for item in collection.elts
            )
        inner = _same_items_as(collection)
        return inner is not None and self.covers(inner)


def _same_items_as(collection: ast.expr) -> ast.expr | None:
    """``tasks`` for ``list(tasks)`` or ``(t for t in tasks if not t.done())``: no new items."""
    if (
        isinstance(collection, ast.Call)
        and isinstance(collection.func, ast.Name)
        and collection.func.id in _COPYING_CALLS
        and len(collection.args) == 1
        and not isinstance(collection.args[0], ast.Starred)
    ):
        return collection.args[0]
    if (
        isinstance(collection, ast.ListComp | ast.SetComp | ast.GeneratorExp)
        and len(collection.generators) == 1
        and isinstance(collection.elt, ast.Name)
        and isinstance(collection.generators[0].target, ast.Name)
        and collection.elt.id == collection.generators[0].target.id
    ):
        return collection.generators[0].iter  # filtered by its `if`s, never extended
    return None


def _is_empty(node: ast.expr) -> bool:
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return not node.elts
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"list", "set", "tuple"}
        and not node.args
        and not node.keywords
    )


# -- done-callbacks ---------------------------------------------------------------------------

# Calls on a finished task or future that hand over its outcome (and mark the exception as seen).
_OUTCOME_READS = frozenset({"exception", "result"})
_PARTIALS = frozenset({"partial"})  # functools.partial(callback, ...) calls `callback`


def _reads_outcome(callback: ast.expr, checker: Checker) -> bool:
    """Whether done-callback ``callback`` calls ``.exception()`` or ``.result()``.

    The callback is a lambda, a function or method defined in this module (by its name, or
    ``self.name``/``cls.name``), or ``partial()`` of one. ``tasks.discard`` and callbacks from
    elsewhere do not count: nothing shows that they report a failure.
    """
    if isinstance(callback, ast.Call) and _last_name(callback.func) in _PARTIALS and callback.args:
        return _reads_outcome(callback.args[0], checker)
    if isinstance(callback, ast.Lambda):
        return _calls_outcome_read(callback.body)
    if isinstance(callback, ast.Name):
        name = callback.id
    elif (
        isinstance(callback, ast.Attribute)
        and isinstance(callback.value, ast.Name)
        and callback.value.id in {"self", "cls"}
    ):
        name = callback.attr
    else:
        return False
    return name in checker.per_module(_outcome_reading_functions)


def _outcome_reading_functions(module: ast.Module) -> frozenset[str]:
    """The names of the module's functions and methods that call ``.exception()`` or
    ``.result()``."""
    return frozenset(
        node.name
        for node in walk_all(module)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _calls_outcome_read(node)
    )


def _calls_outcome_read(node: ast.AST) -> bool:
    return any(
        isinstance(child, ast.Call)
        and isinstance(child.func, ast.Attribute)
        and child.func.attr in _OUTCOME_READS
        and not child.args
        for child in ast.walk(node)
    )


# -- best-effort cleanup ---------------------------------------------------------------------

# A function or method whose name ends with one of these words (snake_case or camelCase,
# `tear_down` and `TearDown` alike, optionally followed by `all`) tears something down; an
# error from one part must not stop the rest.
_CLEANUP_WORDS = frozenset(
    {"close", "aclose", "disconnect", "shutdown", "stop", "cleanup", "teardown", "aexit"}
)
_CLEANUP_METHODS = frozenset({"wait_closed"})
_TASK_STARTERS = frozenset({"create_task", "ensure_future"})


def _best_effort_cleanup(statement: ast.AST, checker: Checker) -> bool:
    """Whether ``statement`` is cleanup whose errors are deliberately ignored.

    That is: in a `finally:` block, in an `except` handler that always ends by raising (an
    error from the cleanup would replace the one being handled), or in a function named for
    tearing down.
    """
    child = statement
    for parent in reversed(checker.parents):
        if isinstance(parent, SCOPE_NODES):
            break
        if isinstance(parent, ast.Try | ast.TryStar) and any(
            child is final for final in parent.finalbody
        ):
            return True
        if isinstance(parent, ast.ExceptHandler) and _always_raises(parent):
            return True
        child = parent
    function = checker.enclosing_function_node()
    return isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) and _named_for_cleanup(
        function.name
    )


def _always_raises(handler: ast.ExceptHandler) -> bool:
    """Whether every way through ``handler`` ends in a ``raise``.

    Its last statement raises and nothing in it leaves earlier: no ``return``, and no ``break``
    or ``continue`` of a loop around the ``try``.
    """
    return isinstance(handler.body[-1], ast.Raise) and not _leaves_early(handler.body)


def _leaves_early(block: list[ast.stmt], in_loop: bool = False) -> bool:
    return any(
        _leaves(node, in_loop) for statement in block for node in _shallow_statements(statement)
    )


def _leaves(node: ast.stmt, in_loop: bool) -> bool:
    if isinstance(node, ast.Return):
        return True
    if isinstance(node, ast.Break | ast.Continue):
        return not in_loop  # it leaves a loop around the handler
    if isinstance(node, LOOPS):
        return _leaves_early(node.body, in_loop=True) or _leaves_early(node.orelse, in_loop)
    return False


def _shallow_statements(statement: ast.stmt) -> list[ast.stmt]:
    """``statement`` and the statements nested in it, down to (not into) loops and scopes."""
    found = [statement]
    if isinstance(statement, (*LOOPS, *SCOPE_NODES)):
        return found
    for child in ast.iter_child_nodes(statement):
        if isinstance(child, ast.stmt):
            found.extend(_shallow_statements(child))
        elif isinstance(child, ast.ExceptHandler | ast.match_case):
            for inner in child.body:
                found.extend(_shallow_statements(inner))
    return found


def _named_for_cleanup(name: str) -> bool:
    words = [word.lower() for word in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)]
    if len(words) > 1 and words[-1] == "all":  # close_all(), stopAll()
        words.pop()
    return bool(words) and (words[-1] in _CLEANUP_WORDS or "".join(words[-2:]) in _CLEANUP_WORDS)


def _is_cleanup_call(node: ast.expr) -> bool:
    """``conn.close()``, ``self._disconnect(node)``, ``create_task(client.aclose())``..."""
    if not isinstance(node, ast.Call):
        return False
    name = _last_name(node.func)
    if name in _TASK_STARTERS and node.args:
        return _is_cleanup_call(node.args[0])
    return name is not None and (name in _CLEANUP_METHODS or _named_for_cleanup(name))


def _cleanup_calls(collection: ast.expr) -> bool:
    """Whether every item of ``collection`` (a literal or a comprehension) is a cleanup call."""
    if isinstance(collection, ast.Tuple | ast.List | ast.Set):
        return bool(collection.elts) and all(
            _cleanup_calls(item.value) if isinstance(item, ast.Starred) else _is_cleanup_call(item)
            for item in collection.elts
        )
    if isinstance(collection, ast.ListComp | ast.SetComp | ast.GeneratorExp):
        return _is_cleanup_call(collection.elt)
    return False
