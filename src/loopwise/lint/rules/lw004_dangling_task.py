"""LW004: dangling task."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._fix import Edit, Fix
from loopwise.lint._rule import Rule
from loopwise.lint.rules._discard import discarded_value
from loopwise.lint.rules._fixes import (
    indentation,
    line_count,
    line_length,
    owns_its_lines,
    segment,
)
from loopwise.lint.rules._shared import call_name

_TASK_FACTORIES = frozenset(
    {
        "asyncio.create_task",
        "asyncio.ensure_future",
        "asyncio.AbstractEventLoop.create_task",
        "asyncio.AbstractEventLoop.ensure_future",
    }
)

_METHOD_NAMES = frozenset({"create_task", "ensure_future"})

_FIX = (
    "keep a reference (a set + `task.add_done_callback(tasks.discard)`) "
    "or use `asyncio.TaskGroup`/`loopwise.Supervisor`"
)


# A statement that drops a task, or a place that only tests it for truth or enters it.
_Dropping = (
    ast.Expr | ast.Assign | ast.AnnAssign | ast.IfExp | ast.If | ast.While | ast.comprehension
) | ast.withitem


class DanglingTask(Rule[_Dropping]):
    """## What it does
    Checks for tasks whose only reference is dropped as soon as they are created: the result of
    `asyncio.create_task()`, `asyncio.ensure_future()` or `loop.create_task()` used as a
    statement on its own (also with `.add_done_callback(...)` chained on it), assigned to `_`,
    or assigned to a local variable that the function never reads; put in a list, tuple, set
    or list/set comprehension that is itself a statement (`[create_task(c) for c in coros]`);
    only tested for truth (`x if create_task(c) else y`, `if create_task(c):`, the `if` of a
    comprehension); or entered as a context manager (`with create_task(c) as t:`, which fails
    at once: a task is none).

    `loop` must be known to be an event loop: a value from `asyncio.get_running_loop()`,
    `get_event_loop()` or `new_event_loop()`; a parameter or variable annotated
    `asyncio.AbstractEventLoop` (or `AbstractEventLoop | None`); a parameter given a default
    loop when missing (`loop = loop or asyncio.get_event_loop()`); an attribute whose every
    assignment in the class (`= None` aside) is such a value (`self._loop = loop` in
    `__init__`, `cls.loop = asyncio.new_event_loop()` in `setUpClass`), also when a project base
    class assigns it; a property annotated `-> asyncio.AbstractEventLoop`; and one attribute
    further into another project class (`self._pool._loop`, where the pool's class sets `_loop`
    that way), in this module or in another checked one.

    ## What it does not flag
    - `tg.create_task()` on an `asyncio.TaskGroup`, and `create_task()` on a receiver of unknown
      type: the group (or whatever that object is) may well keep the task.
    - A task kept in an attribute, a global, a container, or a local read anywhere in the
      function (nested functions included).
    - A task running a coroutine function of this module whose whole body is one `try` that
      catches every `Exception` and does not re-raise (`async def logging_coroutine(coro): try:
      await coro except Exception: log.exception(...)`): the deliberate fire-and-forget idiom,
      whose failures are logged rather than lost.
    - Test code (the files `test-paths` matches): a task a test starts and drops is a helper
      action (feed data, disconnect, stop the server) whose failure fails the test anyway. On
      the 21 projects of the ecosystem check the 18 findings in tests were all such helpers.

    ## Why it is opt-in
    On the 21 projects of the ecosystem check, 5 of 15 findings were ones a maintainer would
    act on (a task spawned from `data_received` and destroyed pending at shutdown, a token
    renewal loop whose failure goes unnoticed). The rest were deliberate fire-and-forget tasks:
    a delayed delete that handles its own errors, cleanup scheduled from `__del__` or from a
    done-callback, a connection closed in the background. A pending task is kept alive by
    what it waits on, so most dropped references never lose a task; the maintainers of one
    project declined changes that kept them. Turn it on with `--select LW004` for code where
    every task must be owned (servers with graceful shutdown, supervised services).

    ## Why is this bad?
    The event loop keeps only a *weak* reference to a task. A task nobody else references can
    be garbage-collected while it waits, in the middle of its work and without a trace. And
    nobody will ever `await` it: when it fails, its exception is only logged as "Task exception
    was never retrieved", if at all; when the program shuts down, nobody cancels or waits for it.

    ## Example
    ```python
    import asyncio

    from aiohttp import web

    async def handle(request):
        asyncio.create_task(send_audit_log(request))
        return web.Response(text="ok")
    ```

    ## Use instead
    Keep a strong reference until the task is done:
    ```python
    background_tasks = set()

    async def handle(request):
        task = asyncio.create_task(send_audit_log(request))
        background_tasks.add(task)
        task.add_done_callback(background_tasks.discard)
        return web.Response(text="ok")
    ```
    Better, when the tasks must finish within a block, let an `asyncio.TaskGroup` own them:
    ```python
    async with asyncio.TaskGroup() as tg:
        tg.create_task(send_audit_log(request))
    ```
    For long-lived background work, `loopwise.Supervisor` keeps a reference to every task,
    raises or logs every failure, and cancels its background tasks on exit:
    ```python
    async with loopwise.Supervisor(name="app") as supervisor:
        supervisor.create_task(flush_audit_log_forever(), background=True)
        await serve()
    ```

    ## Fix safety
    Unsafe: for a statement that drops the task, the fix keeps a strong reference in a
    module-level set `_background_tasks` (added after the imports when missing) and removes the
    task from it when it finishes (`add_done_callback(_background_tasks.discard)`). The task can
    no longer be garbage-collected mid-run, but its exceptions are still not observed: review
    whether it should be awaited or supervised instead.
    """

    code = "LW004"
    default = False
    name = "dangling-task"
    summary = "task created and its reference dropped"
    node_types = (
        *(ast.Expr, ast.Assign, ast.AnnAssign),  # a statement drops the task
        *(ast.IfExp, ast.If, ast.While, ast.comprehension, ast.withitem),  # tested, entered
    )
    in_tests = False
    fix_safety = "unsafe"

    def visit(self, node: _Dropping, checker: Checker) -> None:
        if not isinstance(node, ast.Expr | ast.Assign | ast.AnnAssign):
            _visit_other_drops(node, checker)
            return
        value = getattr(node, "value", None)
        if isinstance(node, ast.Expr) and isinstance(value, _DISPLAYS):
            _visit_display(value, checker)
            return
        if not isinstance(value, ast.Call):
            return
        call = _task_call(value, checker, chained=isinstance(node, ast.Expr))
        if call is None or _runs_error_logging_coroutine(call, checker):
            return
        discard = discarded_value(node, checker)
        if discard is None:
            return
        name = call_name(call)
        if discard.name is None:
            fix = _keep_fix(node, call, checker) if checker.fixes else None
            checker.report(call, f"task from `{name}()` is dropped: {_FIX}", fix=fix)
        elif discard.name == "_":
            checker.report(call, f"task from `{name}()` is assigned to `_` and dropped: {_FIX}")
        else:
            checker.report(
                call, f"task `{discard.name}` from `{name}()` is never used again: {_FIX}"
            )


_DISPLAYS = (ast.List, ast.Tuple, ast.Set, ast.ListComp, ast.SetComp)


def _visit_display(display: ast.expr, checker: Checker) -> None:
    """`[create_task(a), create_task(b)]` or `[create_task(x) for x in xs]` as a statement: the
    list is built and thrown away, and the tasks with it."""
    if isinstance(display, ast.ListComp | ast.SetComp):
        elements = [display.elt]
    else:
        assert isinstance(display, ast.List | ast.Tuple | ast.Set)
        elements = display.elts
    for element in elements:
        call = (
            _task_call(element, checker, chained=False) if isinstance(element, ast.Call) else None
        )
        if call is not None and not _runs_error_logging_coroutine(call, checker):
            name = call_name(call)
            checker.report(call, f"task from `{name}()` is put in a list that is dropped: {_FIX}")


def _visit_other_drops(
    node: ast.IfExp | ast.If | ast.While | ast.comprehension | ast.withitem, checker: Checker
) -> None:
    """A task only tested for truth (`x if create_task(c) else y`, `if create_task(c):`, a
    comprehension's `if`), or entered as a context manager (a task is none: it fails at once)."""
    if isinstance(node, ast.IfExp | ast.If | ast.While):
        tested = [node.test]
        how = "only tested for truth"
    elif isinstance(node, ast.comprehension):
        tested = list(node.ifs)
        how = "only tested for truth"
    else:
        tested = [node.context_expr]
        how = "entered as a context manager, which a task is not,"
    for expr in tested:
        if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Not):
            expr = expr.operand
        if not isinstance(expr, ast.Call):
            continue
        call = _task_call(expr, checker, chained=False)
        if call is not None:
            checker.report(call, f"task from `{call_name(call)}()` is {how} and dropped: {_FIX}")


def _task_call(call: ast.Call, checker: Checker, *, chained: bool) -> ast.Call | None:
    """The task-creating call that ``call`` is, or (``chained``) that it adds a callback to."""
    func = call.func
    if (
        chained
        and isinstance(func, ast.Attribute)
        and func.attr == "add_done_callback"
        and isinstance(func.value, ast.Call)
    ):
        call = func.value
        func = call.func
    if isinstance(func, ast.Attribute):
        if func.attr not in _METHOD_NAMES:
            return None
    elif not isinstance(func, ast.Name):  # a Name may be an alias: `from asyncio import ...`
        return None
    return call if checker.ctx.resolve_call(call) in _TASK_FACTORIES else None


def _runs_error_logging_coroutine(call: ast.Call, checker: Checker) -> bool:
    """Whether the task runs a coroutine function of this module that logs its own errors."""
    argument = call.args[0] if call.args else None
    if not isinstance(argument, ast.Call):
        return False
    function = _local_coroutine_function(argument, checker)
    if function is None:
        return False
    body = [s for s in function.body if not _is_docstring(s)]
    return (
        len(body) == 1
        and isinstance(body[0], ast.Try)
        and any(_catches_every_error(h, checker) for h in body[0].handlers)
    )


def _local_coroutine_function(call: ast.Call, checker: Checker) -> ast.AsyncFunctionDef | None:
    qualname = checker.ctx.resolve_call(call)
    func = call.func
    if qualname is None and isinstance(func, ast.Attribute):
        owner = checker.ctx.self_class(func.value)
        qualname = f"{owner}.{func.attr}" if owner is not None else None
    found = checker.ctx.local_definition(qualname) if qualname is not None else None
    return found if isinstance(found, ast.AsyncFunctionDef) else None


def _is_docstring(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)


_EVERY_ERROR = frozenset({"builtins.Exception", "builtins.BaseException"})


def _catches_every_error(handler: ast.ExceptHandler, checker: Checker) -> bool:
    caught = handler.type
    if caught is None:
        everything = True
    else:
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        everything = any(checker.ctx.resolve(name) in _EVERY_ERROR for name in names)
    return everything and not any(isinstance(node, ast.Raise) for node in ast.walk(handler))


_TASKS = "_background_tasks"


def _keep_fix(statement: ast.AST, call: ast.Call, checker: Checker) -> Fix | None:
    """Keep the task in a module-level set until it is done."""
    if not isinstance(statement, ast.Expr) or statement.value is not call:
        return None
    indent = indentation(checker, statement)
    text = segment(checker, call)
    if indent is None or text is None or not owns_its_lines(checker, statement):
        return None
    if _task_name_taken(checker.enclosing_function_node() or checker.tree):
        return None
    end_line = statement.end_lineno or statement.lineno
    # `_task = ` before the call, the rest after the last line and its comment: a trailing
    # type-ignore or noqa comment stays on the line it is about.
    keep = f"\n{indent}{_TASKS}.add(_task)\n{indent}_task.add_done_callback({_TASKS}.discard)"
    edits = [
        Edit.insert(statement.lineno, statement.col_offset, "_task = "),
        Edit.insert(end_line, line_length(checker, end_line), keep),
    ]
    if not _defines_tasks(checker.tree):
        line = _after_imports(checker.tree)
        if line > line_count(checker):
            return None
        definition = f"{_TASKS}: set[object] = set()  # running tasks, kept until done\n"
        before = "\n" if line > 1 else ""  # a blank line after the imports
        after = "" if line_length(checker, line) == 0 else "\n"  # and before the code
        edits.append(Edit.insert(line, 0, before + definition + after))
    return Fix(f"keep a reference in `{_TASKS}`", tuple(edits), safe=False)


def _task_name_taken(scope: ast.AST) -> bool:
    """Whether the code uses ``_task`` for itself: other than as earlier fixes wrote it (one
    assignment and two reads each), or as a parameter. Then the fix would clobber it."""
    stores = loads = 0
    for node in ast.walk(scope):
        if isinstance(node, ast.Name) and node.id == "_task":
            if isinstance(node.ctx, ast.Load):
                loads += 1
            else:
                stores += 1
        elif isinstance(node, ast.arg) and node.arg == "_task":
            return True
    return loads != 2 * stores


def _defines_tasks(tree: ast.Module) -> bool:
    for statement in tree.body:
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign)
            else []
        )
        if any(isinstance(target, ast.Name) and target.id == _TASKS for target in targets):
            return True
    return False


def _after_imports(tree: ast.Module) -> int:
    """The line after the module's leading docstring, ``__future__`` and other imports (with
    none, the first statement's line: a shebang, a coding line and header comments stay on
    top)."""
    first = tree.body[0] if tree.body else None
    decorators = getattr(first, "decorator_list", None)
    line = decorators[0].lineno if decorators else first.lineno if first is not None else 1
    for index, statement in enumerate(tree.body):
        docstring = (
            index == 0
            and isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        )
        if docstring or isinstance(statement, ast.Import | ast.ImportFrom):
            line = (statement.end_lineno or statement.lineno) + 1
        else:
            break
    return line
