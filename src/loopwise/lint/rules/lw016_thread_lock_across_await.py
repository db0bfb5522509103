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
    - asyncio's own locks, and a lock of unknown type.
    - Code in a nested sync `def` or `lambda` (it may run in a thread), and an `await` in a
      function defined inside the `with` block (it runs later, if ever).

    On the 21 projects of the ecosystem check it reports nothing: their coroutines use
    asyncio's locks, and their threading locks guard short sections without awaits. It is a
    rule for code being written or ported from threads, and certain when it fires.

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
    name = "thread-lock-across-await"
    summary = "threading lock held across an await"
    node_types = (ast.With, ast.Call)

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
        if _suspends(node.body):
            lock = ast.unparse(item.context_expr)
            checker.report(
                item.context_expr,
                f"threading lock `{lock}` is held across an `await`: a task taking it "
                "meanwhile blocks the loop and deadlocks; use `asyncio.Lock`, or await "
                "outside the `with` block",
            )


def _suspends(body: list[ast.stmt]) -> bool:
    """Whether running ``body`` may suspend the coroutine (nested defs run later, if ever)."""
    return any(
        isinstance(node, AWAIT_POINTS)
        for statement in body
        if not isinstance(statement, SCOPE_NODES)
        for node in (statement, *walk_shallow(statement))
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
