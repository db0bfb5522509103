"""The paths through and after an exception handler, for LW011 (cancellation swallowed).

What it decides: how control may leave a handler (re-raise, return, break, continue, fall
through) and so whether it re-raises on every path; whether the code that resumes after it
enters or repeats a loop that awaits; whether the function then returns to a caller that awaits
it in line, or is the top of a task (detached: run as a task or handed over, nested or
decorated and not awaited, a test in a test module) whose swallowed cancellation nobody carries
on from; and whether the guarded body first
awaits a task or future settled just before it (the cancel-then-wait idiom).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from enum import Enum

from loopwise.lint._ast import AWAIT_POINTS, LOOPS, SCOPE_NODES, in_list, walk_all, walk_shallow
from loopwise.lint._awaits import calls_awaited_in_line
from loopwise.lint._checker import Checker
from loopwise.lint.rules._shared import in_test_file

_TIMEOUTS = frozenset({"asyncio.timeout", "asyncio.timeout_at"})
_PASS_THROUGH = frozenset({"asyncio.wait_for", "asyncio.shield"})
# Settling a future before awaiting it: cancelling it, or setting its exception.
_SETTLE_METHODS = frozenset({"cancel", "set_exception"})
_TRANSPARENT_DECORATORS = frozenset(
    {"abstractmethod", "classmethod", "final", "override", "staticmethod"}
)
_LOOP_GOES_ON = ", and the loop goes on"


class _Exit(Enum):
    """How control leaves a block of statements."""

    RAISE = "raise"
    RETURN = "return"
    BREAK = "break"
    CONTINUE = "continue"
    FALL = "fall"  # runs on to the next statement


def _has_await_point(body: Iterable[ast.stmt]) -> bool:
    """Whether running ``body`` may suspend the coroutine (and so receive a cancellation)."""
    for statement in body:
        if isinstance(statement, AWAIT_POINTS):
            return True
        for node in walk_shallow(statement):
            if isinstance(node, AWAIT_POINTS):
                return True
            if isinstance(node, ast.comprehension) and node.is_async:
                return True
    return False


def _names_in(expr: ast.expr) -> set[str]:
    return {
        ast.unparse(part) for part in ast.walk(expr) if isinstance(part, ast.Name | ast.Attribute)
    }


# -- how control leaves the handler --------------------------------------------------------------


def _exits(body: list[ast.stmt]) -> set[_Exit]:
    """How control may leave ``body``: raising, returning, breaking, continuing, falling off."""
    found: set[_Exit] = set()
    for statement in body:
        exits = _statement_exits(statement)
        found |= exits - {_Exit.FALL}
        if _Exit.FALL not in exits:
            return found
    return found | {_Exit.FALL}


def _statement_exits(statement: ast.stmt) -> set[_Exit]:
    if isinstance(statement, ast.Raise):
        return {_Exit.RAISE}
    if isinstance(statement, ast.Return):
        return {_Exit.RETURN}
    if isinstance(statement, ast.Break):
        return {_Exit.BREAK}
    if isinstance(statement, ast.Continue):
        return {_Exit.CONTINUE}
    if isinstance(statement, ast.If):
        return _exits(statement.body) | _exits(statement.orelse)
    if isinstance(statement, ast.With | ast.AsyncWith):
        return _exits(statement.body)
    if isinstance(statement, ast.Try | ast.TryStar):
        return _try_exits(statement)
    if isinstance(statement, LOOPS):
        return _loop_exits(statement)
    if isinstance(statement, ast.Match):
        cases = {_Exit.FALL}.union(*(_exits(case.body) for case in statement.cases))
        last = statement.cases[-1] if statement.cases else None
        exhaustive = (
            last is not None
            and last.guard is None
            and isinstance(last.pattern, ast.MatchAs)
            and last.pattern.pattern is None
        )
        if exhaustive:  # `case _:` (or `case name:`) catches whatever the others did not
            cases = set().union(*(_exits(case.body) for case in statement.cases))
        return cases
    return {_Exit.FALL}


def _loop_exits(loop: ast.For | ast.AsyncFor | ast.While) -> set[_Exit]:
    """break/continue inside belong to the loop. It may end (running its `else:` unless it
    broke out), or never run, except `while True:` and a `for` over a non-empty literal, whose
    body runs at least once: a body that always raises or returns then leaves that way."""
    body = _exits(loop.body)
    leaving = body & {_Exit.RAISE, _Exit.RETURN}
    breaks = any(isinstance(node, ast.Break) for node in _walk_loop_body(loop.body))
    if _runs_at_least_once(loop) and not breaks and not body & {_Exit.FALL, _Exit.CONTINUE}:
        return leaving
    if isinstance(loop, ast.While) and _always_true(loop.test) and not breaks:
        return leaving  # runs until it raises or returns
    if loop.orelse and not breaks:
        return leaving | _exits(loop.orelse)
    return leaving | {_Exit.FALL}


def _walk_loop_body(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes of a loop body, not those of loops nested in it (their `break` is theirs)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (*LOOPS, *SCOPE_NODES)):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _runs_at_least_once(loop: ast.For | ast.AsyncFor | ast.While) -> bool:
    if isinstance(loop, ast.While):
        return _always_true(loop.test)
    if isinstance(loop, ast.AsyncFor):
        return False
    iterated = loop.iter
    if isinstance(iterated, ast.List | ast.Tuple | ast.Set):
        return bool(iterated.elts) and not any(isinstance(e, ast.Starred) for e in iterated.elts)
    if isinstance(iterated, ast.Dict):
        return bool(iterated.keys) and None not in iterated.keys
    if (  # range(3), range(1, 5)
        isinstance(iterated, ast.Call)
        and isinstance(iterated.func, ast.Name)
        and iterated.func.id == "range"
        and 1 <= len(iterated.args) <= 2
        and not iterated.keywords
        and all(isinstance(a, ast.Constant) and type(a.value) is int for a in iterated.args)
    ):
        bounds = [
            a.value for a in iterated.args if isinstance(a, ast.Constant) and type(a.value) is int
        ]
        start, stop = (0, bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
        return stop > start
    return (
        isinstance(iterated, ast.Constant)
        and isinstance(iterated.value, str | bytes)
        and bool(iterated.value)
    )


def _always_true(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value) and test.value is not ...


def _try_exits(statement: ast.Try | ast.TryStar) -> set[_Exit]:
    exits = _exits(statement.body)
    if statement.orelse and _Exit.FALL in exits:
        exits = (exits - {_Exit.FALL}) | _exits(statement.orelse)
    for handler in statement.handlers:
        exits |= _exits(handler.body)
    if statement.finalbody:
        final = _exits(statement.finalbody)
        exits = exits if _Exit.FALL in final else final
    return exits


# -- what happens after the handler ---------------------------------------------------------------


def _consequence(
    node: ast.stmt, exits: set[_Exit], assigned: set[str], checker: Checker
) -> str | None:
    """What swallowing in ``node`` leads to, as a message fragment; None when nothing much."""
    ancestors = _ancestors(node, checker)
    if _Exit.CONTINUE in exits:
        return _LOOP_GOES_ON
    if _Exit.FALL in exits and _goes_on(ancestors, 0, assigned):
        return _LOOP_GOES_ON
    if _Exit.BREAK in exits:
        broken = _innermost_loop(ancestors)
        if broken is not None and _goes_on(ancestors, broken, assigned):
            return _LOOP_GOES_ON
    return _caller_goes_on(checker)


def _ancestors(node: ast.stmt, checker: Checker) -> list[ast.AST]:
    """``node`` (the one being visited) then its ancestors up to its function, innermost first."""
    chain: list[ast.AST] = [node]
    for parent in reversed(checker.parents):
        chain.append(parent)
        if isinstance(parent, SCOPE_NODES):
            break
    return chain


def _innermost_loop(ancestors: list[ast.AST]) -> int | None:
    """Index of the loop whose body holds the handler (what its ``break`` leaves)."""
    for index in range(1, len(ancestors)):
        parent = ancestors[index]
        if isinstance(parent, LOOPS) and in_list(ancestors[index - 1], parent.body):
            return index
    return None


def _goes_on(ancestors: list[ast.AST], start: int, assigned: set[str]) -> bool:
    """Whether code that resumes after ``ancestors[start]`` enters or repeats a loop with awaits.

    A ``while`` whose condition tests something the handler assigns is taken to end.
    """
    for index in range(start + 1, len(ancestors)):
        child, parent = ancestors[index - 1], ancestors[index]
        if _loop_follows(child, parent):
            return True
        if isinstance(parent, LOOPS) and in_list(child, parent.body):
            ends = isinstance(parent, ast.While) and bool(assigned & _names_in(parent.test))
            if not ends:
                return True
    return False


def _loop_follows(child: ast.AST, parent: ast.AST) -> bool:
    """Whether a loop that awaits comes after ``child`` in the block of ``parent`` holding it."""
    for field in ("body", "orelse", "finalbody"):
        block = getattr(parent, field, None)
        if not isinstance(block, list) or not in_list(child, block):
            continue
        index = next(i for i, item in enumerate(block) if item is child)
        return any(
            isinstance(node, LOOPS) and _has_await_point([node])
            for statement in block[index + 1 :]
            for node in (statement, *walk_shallow(statement))
        )
    return False


def _caller_goes_on(checker: Checker) -> str | None:
    """The consequence for the caller when the function returns normally, if it has one of ours.

    None for a coroutine that is not awaited in line by code we can see: a task's top (the
    project runs it as a task or hands it over), a nested ``async def`` its enclosing function
    does not await, a decorated one the project never awaits by name, a test in a test file.
    """
    functions = [scope.node for scope in checker.ctx.scopes if scope.is_function]
    if not functions or not isinstance(functions[-1], ast.AsyncFunctionDef):
        return None
    function = functions[-1]
    name = function.name
    qualname = _qualname(function, checker)
    if len(functions) > 1:
        detached = not _awaited_by(functions[-2], name)
    else:
        detached = (
            (name.startswith("test") and in_test_file(checker))
            or (_decorated(function) and not checker.project.awaited(qualname))
            or checker.project.detached(qualname)
        )
    if detached:
        return None
    return (
        f"; `{name}()` then returns normally, so whatever awaits it carries on as if it had not"
        " been cancelled"
    )


def _awaited_by(enclosing: ast.AST, name: str) -> bool:
    """Whether ``enclosing`` awaits a call of its nested function ``name`` in line."""
    nodes = [enclosing, *walk_shallow(enclosing)]
    return any(
        isinstance(call.func, ast.Name) and call.func.id == name
        for call in calls_awaited_in_line(nodes)
    )


def _qualname(function: ast.AsyncFunctionDef, checker: Checker) -> str:
    owner = checker.ctx.class_qualname() if checker.ctx.classes else None
    return f"{owner or checker.ctx.module.name}.{function.name}"


def _decorated(function: ast.AsyncFunctionDef) -> bool:
    return any(
        getattr(d, "attr", getattr(d, "id", None)) not in _TRANSPARENT_DECORATORS
        for d in function.decorator_list
    )


# -- awaiting tasks --------------------------------------------------------------------------------


def _awaits_settled_first(node: ast.Try | ast.TryStar | ast.With, checker: Checker) -> bool:
    """Whether the first thing ``node``'s body awaits is a task (or future) settled before it."""
    function = checker.function
    if function is None:
        return False
    cancelled = set(_cancelled_before(function.node, node.lineno))
    return _first_await_is_settled(node.body, cancelled, checker)


def _first_await_is_settled(body: list[ast.stmt], cancelled: set[str], checker: Checker) -> bool:
    """Whether the first await of ``body`` waits for a task cancelled before it.

    ``task.cancel()`` may come first in ``body`` itself, so may statements that do not await;
    the await may be in an ``async with asyncio.timeout(...)``. When that task ends with its
    ``CancelledError``, the rest of the body is skipped: the handler is there for that error.
    """
    for index, statement in enumerate(body):
        value = statement.value if isinstance(statement, ast.Expr) else None
        last = index == len(body) - 1
        if not _has_await_point([statement]):
            cancelled.update(_cancel_receivers(statement))
        elif isinstance(statement, ast.AsyncWith):
            timeouts = all(_is_timeout(item, checker) for item in statement.items)
            return timeouts and _first_await_is_settled(statement.body, cancelled, checker)
        elif isinstance(statement, ast.If) and not _has_await_point([ast.Expr(statement.test)]):
            return not statement.orelse and _first_await_is_settled(
                statement.body, cancelled, checker
            )
        elif not isinstance(value, ast.Await):
            return False
        else:
            awaited = value.value
            return _awaits_task(awaited, cancelled, checker) or (
                last and _awaits_owned_task(awaited, checker)
            )
    return False


def _awaits_owned_task(awaited: ast.expr, checker: Checker) -> bool:
    """``await self._task`` (or through ``wait_for``/``shield``) as the whole guarded body: the
    object owns that task and may cancel it from another method (``stop()``, ``close()``), so
    the ``CancelledError`` caught is most often the task's, as in cancel-then-wait.

    Not when this very function starts the task (binds ``self._task`` before the wait) and the
    module never cancels it: the function then runs that task in line, and the
    ``CancelledError`` is its own cancellation passed on to the task.
    """
    while isinstance(awaited, ast.Call) and awaited.args:
        if checker.ctx.resolve_call(awaited) not in _PASS_THROUGH:
            return False
        awaited = awaited.args[0]
    if not (
        isinstance(awaited, ast.Attribute)
        and isinstance(awaited.value, ast.Name)
        and awaited.value.id in ("self", "cls")
    ):
        return False
    function = checker.function
    started_here = function is not None and _binds_before(function.node, awaited)
    return not started_here or _cancels_attribute(awaited.attr, checker)


def _binds_before(function: ast.AST, attribute: ast.Attribute) -> bool:
    """Whether ``function`` assigns ``attribute`` (``self._task = ...``) before that line."""
    key = ast.dump(attribute.value), attribute.attr
    for node in walk_shallow(function):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.lineno < attribute.lineno:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and (
                    (ast.dump(target.value), target.attr) == key
                ):
                    return True
    return False


def _cancels_attribute(attribute: str, checker: Checker) -> bool:
    """Whether the module cancels some ``<x>.<attribute>`` (``self._task.cancel()``, also
    ``call_soon(self._task.cancel)``)."""
    return attribute in checker.per_module(_cancelled_attributes)


def _cancelled_attributes(tree: ast.Module) -> frozenset[str]:
    """Each ``attribute`` of a ``<x>.<attribute>.cancel`` anywhere in the module."""
    return frozenset(
        node.value.attr
        for node in walk_all(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "cancel"
        and isinstance(node.value, ast.Attribute)
    )


def _is_timeout(item: ast.withitem, checker: Checker) -> bool:
    expr = item.context_expr
    return (
        item.optional_vars is None
        and isinstance(expr, ast.Call)
        and checker.ctx.resolve_call(expr) in _TIMEOUTS
    )


def _awaits_task(awaited: ast.expr, cancelled: set[str], checker: Checker) -> bool:
    if ast.dump(awaited) in cancelled:
        return True
    if not (isinstance(awaited, ast.Call) and awaited.args):
        return False
    callee = checker.ctx.resolve_call(awaited)
    if callee in _PASS_THROUGH:
        return _awaits_task(awaited.args[0], cancelled, checker)
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


def _cancel_receivers(statement: ast.stmt) -> Iterator[str]:
    for node in (statement, *walk_shallow(statement)):
        receiver = _cancel_receiver(node)
        if receiver is not None:
            yield receiver


def _cancel_receiver(node: ast.AST | None) -> str | None:
    """The key of ``x`` when ``node`` is ``x.cancel``, ``x.set_exception`` or a call of them."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and node.attr in _SETTLE_METHODS:
        return ast.dump(node.value)
    return None
