"""LW016: a threading lock held across an ``await``."""

from __future__ import annotations

import ast

from loopwise.lint._ast import AWAIT_POINTS, SCOPE_NODES, walk_shallow
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule

_THREAD_LOCKS = frozenset(
    {
        "threading.BoundedSemaphore",
        "threading.Condition",
        "threading.Lock",
        "threading.RLock",
        "threading.Semaphore",
    }
)


class ThreadLockAcrossAwait(Rule[ast.With | ast.Call]):
    """## What it does
    Checks for a `threading.Lock`, `RLock`, `Semaphore`, `BoundedSemaphore` or `Condition`
    held across an `await` in a coroutine: `with lock:` whose body awaits (or uses
    `async for`/`async with`), or a blocking `lock.acquire()` followed by an `await` before
    the same lock's `release()`.

    The lock is known by its constructor (`threading.Lock()`, however imported), an
    annotation (`lock: threading.Lock`), or an attribute of a project class
    (`self._lock = threading.RLock()` in `__init__`, `_lock: Lock` in the class body).

    ## What it does not flag
    - A threading lock taken for a short critical section with no `await` inside
      (`with self._lock: self._count += 1`): it may block the loop for as long as another
      thread holds the lock, but it cannot deadlock on the loop's own tasks, and it is the
      usual way to share state with threads.
    - `acquire(blocking=False)`, `acquire(False)` and `acquire(timeout=0)`, which never wait.
    - A `with` block whose only awaits are of coroutines of the same module that never
      suspend themselves (`await self._connect()` where `_connect` is an `async def` of the
      class with no `await` in it): no other task runs while the lock is held.
    - asyncio's own locks, and a lock of unknown type.
    - Code in a nested sync `def` or `lambda` (it may run in a thread), and an `await` in a
      function defined inside the `with` block (it runs later, if ever).
    - Test code (the files `test-paths` matches): found on public code, the tests that do this
      reproduce the deadlock on purpose, or run one event loop per thread to show that the
      threading lock serialises them.

    ## Why it is opt-in
    Whether the lock can deadlock depends on who else takes it, which the code around the
    `with` does not show. On the 21 projects of the ecosystem check it reports nothing. On
    public code found by searching for the shape (`benchmarks/ecosystem/wild.jsonl`), 14 of
    its 19 findings were true (four, in one library, fixed upstream by the switch to
    `asyncio.Lock` it suggests), below the 0.90 a default rule needs: the others hold the
    lock in a loop that runs a single task in its own thread, where only another thread
    ever waits, behind an `asyncio.Lock` that already serialises every caller, or around an
    `await` that never suspends (`put()` on an unbounded queue). Run it with
    `--select LW016` on code that shares state between threads and coroutines, or that is
    being ported from threads.

    ## Why is this bad?
    A threading lock blocks the whole thread that waits for it, and every task of the event
    loop runs in one thread. While a coroutine holds it across an `await`, other tasks run;
    the first one that tries to take the same lock blocks the loop's thread, so the holder is
    never resumed to release it: the program deadlocks. When a real thread holds the lock,
    the whole loop stalls until that thread lets go.

    ## Example
    ```python
    import threading

    class Cache:
        def __init__(self):
            self._lock = threading.Lock()

        async def refresh(self, key):
            with self._lock:
                self._data[key] = await self._load(key)
    ```

    ## Use instead
    ```python
    class Cache:
        def __init__(self):
            self._lock = asyncio.Lock()

        async def refresh(self, key):
            async with self._lock:
                self._data[key] = await self._load(key)
    ```
    When threads share the state too, await outside the lock and hold the threading lock
    only for the update: `value = await self._load(key)`, then `with self._lock:`.

    ## Fix safety
    No fix: whether an `asyncio.Lock` can replace the lock depends on who else takes it.
    """

    code = "LW016"
    default = False
    name = "thread-lock-across-await"
    summary = "threading lock held across an await"
    node_types = (ast.With, ast.Call)
    in_tests = False

    def visit(self, node: ast.With | ast.Call, checker: Checker) -> None:
        if isinstance(node, ast.With):
            if checker.in_async_function:
                _check_with(node, checker)
            return
        func = node.func
        if not isinstance(func, ast.Attribute) or func.attr != "acquire":
            return
        if not checker.in_async_function or _never_waits(node):
            return
        if checker.ctx.origin(func.value) not in _THREAD_LOCKS:
            return
        function = checker.function
        assert function is not None
        if _awaits_before_release(function.node, node, ast.unparse(func.value)):
            lock = ast.unparse(func.value)
            checker.report(
                node,
                f"threading lock `{lock}` is acquired in a coroutine and held across an "
                "`await`: a task taking it meanwhile blocks the loop and deadlocks; use "
                "`asyncio.Lock`, or release it before awaiting",
            )


def _check_with(node: ast.With, checker: Checker) -> None:
    for item in node.items:
        if checker.ctx.origin(item.context_expr) not in _THREAD_LOCKS:
            continue
        if _suspends(node.body, checker):
            lock = ast.unparse(item.context_expr)
            checker.report(
                item.context_expr,
                f"threading lock `{lock}` is held across an `await`: a task taking it "
                "meanwhile blocks the loop and deadlocks; use `asyncio.Lock`, or await "
                "outside the `with` block",
            )


def _suspends(body: list[ast.stmt], checker: Checker | None = None) -> bool:
    """Whether running ``body`` may suspend the coroutine (nested defs run later, if ever).

    With a ``checker``, awaiting a coroutine of this module (``await self._open()``,
    ``await prepare()``) whose own body never suspends does not count: it runs to its end
    without giving the loop to another task."""
    return any(
        isinstance(node, AWAIT_POINTS)
        and not (checker is not None and _never_suspending_await(node, checker))
        for statement in body
        if not isinstance(statement, SCOPE_NODES)
        for node in (statement, *walk_shallow(statement))
    )


def _never_suspending_await(node: ast.AST, checker: Checker) -> bool:
    """``await f()`` where ``f`` is an ``async def`` of this module (a method of the enclosing
    class called on ``self``, or a module function) with no ``await``/``async for``/``async with``
    of its own."""
    if not isinstance(node, ast.Await) or not isinstance(node.value, ast.Call):
        return False
    func = node.value.func
    candidates: list[ast.stmt] = []
    function = checker.function
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        if function is None or func.value.id != function.self_name or not checker.ctx.classes:
            return False
        candidates = checker.ctx.classes[-1].body
        name = func.attr
    elif isinstance(func, ast.Name):
        candidates = checker.tree.body
        name = func.id
    else:
        return False
    definitions = [
        statement
        for statement in candidates
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef) and statement.name == name
    ]
    if len(definitions) != 1:
        return False
    callee = definitions[0]
    return (
        isinstance(callee, ast.AsyncFunctionDef)
        and not callee.decorator_list
        and not _suspends(callee.body)
    )


def _never_waits(call: ast.Call) -> bool:
    """``acquire(False)``, ``acquire(blocking=False)``, ``acquire(timeout=0)``."""
    values = list(call.args[:1]) + [k.value for k in call.keywords if k.arg == "blocking"]
    if any(isinstance(v, ast.Constant) and v.value is False for v in values):
        return True
    timeouts = list(call.args[1:2]) + [k.value for k in call.keywords if k.arg == "timeout"]
    return any(isinstance(v, ast.Constant) and v.value == 0 for v in timeouts)


def _awaits_before_release(function: ast.AST, acquire: ast.Call, lock: str) -> bool:
    """Whether ``function`` suspends after ``acquire`` and before the lock's next release."""
    start = (acquire.lineno, acquire.col_offset)
    release: tuple[int, int] | None = None
    suspends: list[tuple[int, int]] = []
    for node in walk_shallow(function):
        at = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
        if at <= start:
            continue
        if isinstance(node, AWAIT_POINTS):
            suspends.append(at)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "release"
            and ast.unparse(node.func.value) == lock
            and (release is None or at < release)
        ):
            release = at
    return any(release is None or at < release for at in suspends)
