"""Which functions a module runs as tasks, hands over, or awaits in line.

The whole-module part of a :class:`~loopwise.lint._project.ModuleSummary`: the names of the
functions whose coroutines the module runs as tasks or hands over uncalled (``create_task(
self._reader())``, ``router.add_get("/", handler)``), of those it awaits in line (``await
self.close()``, ``await asyncio.wait_for(f(), 5)``, a task it makes and then awaits itself),
and of its functions that await a call of one of their parameters (``return await fn(*args)``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping

from loopwise.lint._ast import walk_shallow
from loopwise.lint._context import FileContext

# Calls that run the coroutine handed to them in a task of its own (`gather` wraps each one).
_TASK_STARTERS = frozenset(
    {
        "Task",
        "add_task",
        "create_task",
        "ensure_future",
        "gather",
        "run",
        "run_coroutine_threadsafe",
        "run_until_complete",
        "start_soon",
    }
)


def _detached(
    nodes: list[ast.AST], own_nodes: Mapping[ast.AST, list[ast.AST]]
) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Names of the functions whose coroutines no caller of ours awaits in line, and hand-overs.

    Those run as tasks (``create_task(self._reader())``, also through a variable or through a
    helper that passes its parameter to ``create_task``). The module's ``async def``s handed
    over uncalled (``partial(self.handler)``, ``router.add_get("/", handler)``; not
    ``Kind.handler``, which may be anything) come second, with what they are handed to: the
    project decides whether that awaits them (see :meth:`Project.detached`). ``nodes``: the
    module's every node; ``own_nodes``: each function's own (as ``walk_shallow`` yields them).
    """
    async_defs = {node.name for node in nodes if isinstance(node, ast.AsyncFunctionDef)}
    starters = _TASK_STARTERS | _starter_helpers(nodes, own_nodes)
    coroutines: dict[str, set[str]] = {}  # `coro = self._reader()`: coro -> {"_reader"}
    calls: list[ast.Call] = []
    for node in nodes:
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            callee = _last_name(node.value.func)
            for target in node.targets:
                if isinstance(target, ast.Name) and callee is not None:
                    coroutines.setdefault(target.id, set()).add(callee)
    found: set[str] = set()
    handed: set[tuple[str, str]] = set()
    for call in calls:
        arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
        starts = _last_name(call.func) in starters or any(
            _last_name(argument) in starters for argument in arguments
        )
        if not starts and not async_defs:
            continue  # the call neither starts a task nor can hand over an own coroutine
        for argument in arguments:
            if isinstance(argument, ast.Call):
                if starts:
                    found.add(_last_name(argument.func) or "")
            elif isinstance(argument, ast.Name) and starts and argument.id in coroutines:
                found.update(coroutines[argument.id])
            elif isinstance(argument, ast.Name | ast.Attribute):
                name = _last_name(argument)
                if name is not None and starts:
                    found.add(name)
                elif name is not None and _names_own_coroutine(argument, async_defs):
                    handed.add((_last_name(call.func) or "", name))
    found.discard("")
    return frozenset(found), frozenset(handed)


def _awaiting_helpers(
    nodes: list[ast.AST], own_nodes: Mapping[ast.AST, list[ast.AST]], makes_tasks: bool
) -> frozenset[str]:
    """Functions that await a call of one of their parameters (``return await fn(*args)``).

    ``makes_tasks``: what :func:`_makes_a_task` says of ``nodes``.
    """
    helpers: set[str] = set()
    # Cheap filters first: most modules await no bare name and make no task.
    awaited_names = {
        call.func.id
        for node in nodes
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call)
        for call in (_through_wait_for(node.value),)
        if isinstance(call.func, ast.Name)
    }
    if not awaited_names and not makes_tasks:
        return frozenset()
    for node in nodes:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        arguments = node.args
        params = {
            arg.arg for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        }
        if not makes_tasks and not params & awaited_names:
            continue
        if any(
            isinstance(call.func, ast.Name) and call.func.id in params
            for call in _own_awaited_calls(own_nodes[node], makes_tasks)
        ):
            helpers.add(node.name)
    return frozenset(helpers)


def _own_awaited_calls(own_nodes: list[ast.AST], makes_tasks: bool) -> Iterator[ast.Call]:
    """The calls a function itself awaits in line (``own_nodes``: the nodes of its own scope):
    ``await f()``, and the tasks it makes and then awaits."""
    for node in own_nodes:
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            yield _through_wait_for(node.value)
    if makes_tasks:
        yield from _tasks_awaited(own_nodes)


def _awaited(
    ctx: FileContext,
    nodes: list[ast.AST],
    own_nodes: Mapping[ast.AST, list[ast.AST]],
    makes_tasks: bool,
) -> frozenset[str]:
    """The functions whose coroutines the module awaits in line.

    The qualified name of what resolves (``await helpers.close()``), else the bare name
    (``await self.close()``: "close"). An override delegating (``await super().close()``) is
    not a caller. ``makes_tasks``: what :func:`_makes_a_task` says of ``nodes``.
    """
    found = set()
    for awaited in calls_awaited_in_line(nodes, own_nodes, makes_tasks):
        if _delegates_to_super(awaited):
            continue
        name = ctx.resolve(awaited.func) or _last_name(awaited.func)
        if name is not None:
            found.add(name)
    return frozenset(found)


# What makes a task that cancelling its awaiter cancels too (unlike `shield`).
_TASK_MAKERS = frozenset({"Task", "create_task", "ensure_future"})


def calls_awaited_in_line(
    nodes: list[ast.AST],
    own_nodes: Mapping[ast.AST, list[ast.AST]] | None = None,
    makes_tasks: bool | None = None,
) -> Iterator[ast.Call]:
    """The calls among ``nodes`` whose coroutine is awaited in line, so that cancelling the
    awaiter cancels it and whatever it returns the awaiter carries on with.

    ``await f()``, ``await asyncio.wait_for(f(), 5)``, and a task a function makes and then
    awaits itself (see :func:`_tasks_awaited`). ``own_nodes``, when given, has what
    ``walk_shallow`` yields for each function among ``nodes`` (else it is walked here);
    ``makes_tasks``, what :func:`_makes_a_task` says of ``nodes`` (else it is computed here).
    """
    if makes_tasks is None:
        makes_tasks = _makes_a_task(nodes)
    for node in nodes:
        if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
            yield _through_wait_for(node.value)
        elif makes_tasks and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _tasks_awaited(
                own_nodes[node] if own_nodes is not None else walk_shallow(node)
            )


def _makes_a_task(nodes: list[ast.AST]) -> bool:
    """Whether one of ``nodes`` is a call that makes a task (the filter runs inline: it sees
    every node of the module)."""
    return any(
        _last_name(node.func) in _TASK_MAKERS for node in nodes if isinstance(node, ast.Call)
    )


def _through_wait_for(call: ast.Call) -> ast.Call:
    if _last_name(call.func) == "wait_for" and call.args:
        inner = call.args[0]  # wait_for() hands the cancellation on like an await
        return inner if isinstance(inner, ast.Call) else call
    return call


def _tasks_awaited(own_nodes: Iterable[ast.AST]) -> Iterator[ast.Call]:
    """The coroutine calls a function runs as tasks and then awaits directly, never cancelled
    (``own_nodes``: the nodes of its own scope).

    ``t = create_task(download()); data = await t``, and ``tasks = [create_task(fetch(u)) for
    u in urls]`` then ``[await t for t in tasks]`` or ``for t in tasks: await t``: cancelling
    the awaiter cancels the task, and what the task returns after swallowing that the awaiter
    carries on with. Not ``gather(*tasks)``, which raises ``CancelledError`` all the same.
    """
    made: dict[str, list[ast.Call]] = {}  # the local holding the task(s) -> their coroutines
    collections: dict[str, str] = {}  # loop variable -> the local it iterates over
    awaited: set[str] = set()
    cancelled: set[str] = set()
    for node in own_nodes:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            coroutine = _task_coroutine(node.value)
            if coroutine is not None and len(targets) == 1 and isinstance(targets[0], ast.Name):
                made.setdefault(targets[0].id, []).append(coroutine)
        elif isinstance(node, ast.comprehension | ast.For | ast.AsyncFor):
            if isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Name):
                collections[node.target.id] = node.iter.id
        elif isinstance(node, ast.Await):
            awaited.add(_awaited_local(node.value))
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "cancel"
            and isinstance(node.value, ast.Name)
        ):
            cancelled.add(node.value.id)
    for name in awaited - cancelled:
        collection = collections.get(name, name)
        if collection not in cancelled:
            yield from made.get(collection, ())


def _awaited_local(value: ast.expr) -> str:
    """``t`` in ``await t`` or ``await asyncio.wait_for(t, 5)``; "" for anything else."""
    if isinstance(value, ast.Call) and _last_name(value.func) == "wait_for" and value.args:
        value = value.args[0]
    return value.id if isinstance(value, ast.Name) else ""


def _task_coroutine(value: ast.expr) -> ast.Call | None:
    """``f()`` in ``create_task(f())`` (or in ``[create_task(f(x)) for x in xs]``)."""
    if isinstance(value, ast.ListComp | ast.GeneratorExp):
        value = value.elt
    if (
        isinstance(value, ast.Call)
        and _last_name(value.func) in _TASK_MAKERS
        and value.args
        and isinstance(value.args[0], ast.Call)
    ):
        return value.args[0]
    return None


def _delegates_to_super(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


def _names_own_coroutine(argument: ast.Name | ast.Attribute, async_defs: set[str]) -> bool:
    """``handler`` or ``self.handler`` where the module defines ``async def handler``."""
    if isinstance(argument, ast.Attribute):
        receiver = argument.value
        if not (isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")):
            return False
        return argument.attr in async_defs
    return argument.id in async_defs


def _starter_helpers(nodes: list[ast.AST], own_nodes: Mapping[ast.AST, list[ast.AST]]) -> set[str]:
    """Functions that pass one of their parameters to ``create_task()`` and the like."""
    helpers: set[str] = set()
    if not _starts_a_name(nodes):
        return helpers  # most modules: no call hands a bare name to a task starter
    for node in nodes:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = {arg.arg for arg in [*node.args.posonlyargs, *node.args.args]}
        for child in own_nodes[node]:
            if (
                isinstance(child, ast.Call)
                and _last_name(child.func) in _TASK_STARTERS
                and any(isinstance(a, ast.Name) and a.id in params for a in child.args)
            ):
                helpers.add(node.name)
                break
    return helpers


def _starts_a_name(nodes: list[ast.AST]) -> bool:
    """Whether one of ``nodes`` is a call handing a bare name to a task starter."""
    return any(
        _last_name(node.func) in _TASK_STARTERS and any(isinstance(a, ast.Name) for a in node.args)
        for node in nodes
        if isinstance(node, ast.Call)
    )


def _last_name(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None
