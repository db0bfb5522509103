"""Blocking calls in a coroutine: the machinery shared by LW005 (network, sleep, processes) and
LW012 (local file I/O). Each rule brings its own table of blocking callables; the exemptions
(a call that returns at once, a file streamed between awaits or shipped beside the module, the
main coroutine before its first await) are the same for both."""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from loopwise.lint._ast import AWAIT_POINTS, LOOPS, walk_all, walk_shallow
from loopwise.lint._checker import Checker
from loopwise.lint.rules._shared import call_name

__all__ = [
    "FILE_WHAT",
    "SPAWNS",
    "THREAD",
    "BlockingCalls",
    "BlockingType",
    "ConfiguredBlockingCalls",
    "returns_at_once_anywhere",
]

THREAD = "`await asyncio.to_thread(...)`"

_SOCKET_METHOD = "socket.socket."
_WAIT_WITH_OPTIONS = frozenset({"os.waitpid", "os.wait3", "os.wait4", "os.waitid"})


@dataclass(frozen=True)
class BlockingType:
    """A type every method of which blocks, but for ``harmless`` ones (no I/O)."""

    what: str  # how the message names a value of the type: "a file object"
    advice: str
    harmless: frozenset[str] = frozenset()


class ConfiguredBlockingCalls:
    """The configurations' `extend-blocking-calls`, for the rules that read them (LW005,
    LW017): set for a run as config root (absolute; "" for one that governs every file) -> the
    calls it adds."""

    extend_blocking_calls: Mapping[str, tuple[str, ...]] = MappingProxyType({})

    def entries_for(self, path: str) -> tuple[str, ...]:
        """The entries of the configuration that governs ``path``: the nearest root above it."""
        absolute = os.path.abspath(path)
        best: tuple[str, ...] = self.extend_blocking_calls.get("", ())
        depth = -1
        for root, entries in self.extend_blocking_calls.items():
            inside = absolute == root or absolute.startswith(root.rstrip(os.sep) + os.sep)
            if root and inside and len(root) > depth:
                best, depth = entries, len(root)
        return best

    def settings_key(self) -> str:
        return repr(sorted(self.extend_blocking_calls.items()))

    def classes_for(self, path: str) -> frozenset[str]:
        # `db.Session.query` names the class `db.Session`; `mylib.sync_fetch` names a module,
        # which is never constructed, so taking it for a class changes nothing.
        return frozenset(entry.rpartition(".")[0] for entry in self.entries_for(path))


class BlockingCalls:
    """Reports a call in a coroutine to one of ``table``'s callables (qualified name -> what to
    use instead), or to a method of one of ``types`` (qualified type name -> what it blocks
    on), unless that particular call cannot block for long."""

    def __init__(
        self, table: Mapping[str, str], types: Mapping[str, BlockingType] | None = None
    ) -> None:
        self.table = dict(table)
        self.types = dict(types or {})
        # The attribute names a blocking call can end with: a cheap filter before resolving.
        self.attributes = frozenset(name.rpartition(".")[2] for name in table)

    def visit(self, node: ast.Call, checker: Checker) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr not in self.attributes and not self.types:
                return
        elif not isinstance(func, ast.Name):
            return
        if not checker.in_async_function:
            return
        callee = checker.ctx.resolve_call(node)
        if callee is None:
            return
        advice = self.table.get(callee)
        if advice is None:
            self._visit_method(node, callee, checker)
            return
        if _returns_at_once(node, callee, checker):
            return
        written = call_name(node)
        same = callee in (written, f"builtins.{written}")
        culprit = f"`{written}()`" if same else f"`{written}()` (`{callee}`)"
        checker.report(node, f"blocking call {culprit} stalls the event loop: {advice}")

    def _visit_method(self, node: ast.Call, callee: str, checker: Checker) -> None:
        owner, _, method = callee.rpartition(".")
        kind = self.types.get(owner)
        if kind is None or method in kind.harmless or method.startswith("__"):
            return
        assert isinstance(node.func, ast.Attribute)
        if kind.what == FILE_WHAT and _file_at_once(node.func.value, checker):
            return
        if _before_anything_else_runs(checker):
            return
        written = call_name(node)
        checker.report(
            node,
            f"blocking call `{written}()` on {kind.what} stalls the event loop: {kind.advice}",
        )


FILE_WHAT = "a file object"


def _file_at_once(receiver: ast.expr, checker: Checker) -> bool:
    """Whether a method call on a file is not to be reported: a file kept on an object (a
    stream written a piece at a time), one used in a loop that awaits between chunks, one
    shipped beside the module, or one just opened in the same expression (`open(p).read()`,
    where the opening call is reported)."""
    if isinstance(receiver, ast.Attribute):
        return True
    if isinstance(receiver, ast.Call):
        return True  # `open(p).read()`: the opening call is the one reported
    function = checker.enclosing_function_node()
    if function is None:
        return False
    for parent in reversed(checker.parents):
        if parent is function:
            break
        if isinstance(parent, LOOPS) and _can_suspend_in(parent):
            return True
    if isinstance(receiver, ast.Name):
        for node in walk_shallow(function):
            opened = _opened_into(node, receiver.id)
            if opened is not None and _opens_a_bundled_file(opened, checker):
                return True
            if isinstance(node, LOOPS) and _can_suspend_in(node) and _uses(node, receiver.id):
                return True  # a stream: its last write or close() blocks for one chunk
    return False


def _uses(loop: ast.AST, name: str) -> bool:
    return any(isinstance(node, ast.Name) and node.id == name for node in walk_shallow(loop))


def _opened_into(node: ast.AST, name: str) -> ast.Call | None:
    """The call whose result ``node`` binds to ``name`` (`name = open(p)`, `with open(p) as
    name`)."""
    if (
        isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    ):
        return node.value
    if isinstance(node, ast.With | ast.AsyncWith):
        for item in node.items:
            target, opened = item.optional_vars, item.context_expr
            if isinstance(target, ast.Name) and target.id == name and isinstance(opened, ast.Call):
                return opened
    return None


def _returns_at_once(call: ast.Call, callee: str, checker: Checker) -> bool:
    """Whether this particular call cannot block for long: WNOHANG waits, non-blocking sockets,
    an in-memory database, a file opened as a stream or shipped beside the module, and
    anything before the main coroutine first yields."""
    if _before_anything_else_runs(checker):
        return True
    if callee in _OPENERS:
        return _opens_a_stream(call, checker) or _opens_a_bundled_file(call, checker)
    if callee.startswith(_SOCKET_METHOD) and isinstance(call.func, ast.Attribute):
        return ast.dump(call.func.value) in checker.per_module(_non_blocking_receivers)
    return returns_at_once_anywhere(call, callee)


def returns_at_once_anywhere(call: ast.Call, callee: str) -> bool:
    """What the call itself shows: `sqlite3.connect(":memory:")`, a `WNOHANG` wait, a spawn
    that does not wait."""
    if callee == "sqlite3.connect":
        return _first_argument_is(call, ":memory:")
    if callee in _WAIT_WITH_OPTIONS:
        return any(
            isinstance(node, ast.Name | ast.Attribute) and _name_of(node) == "WNOHANG"
            for argument in [*call.args, *(keyword.value for keyword in call.keywords)]
            for node in ast.walk(argument)
        )
    if callee in SPAWNS:
        return not _spawn_waits(call)
    return False


_OPENERS = frozenset({"builtins.open", "io.open"})
SPAWNS = frozenset(
    f"os.spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")
)


def _spawn_waits(call: ast.Call) -> bool:
    """Whether `os.spawn*()` waits for the child: its mode is `P_WAIT` (or not given)."""
    mode = next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None and call.args:
        mode = call.args[0]
    if mode is None:
        return True
    return isinstance(mode, ast.Name | ast.Attribute) and _name_of(mode) == "P_WAIT"


def _opens_a_stream(call: ast.Call, checker: Checker) -> bool:
    """Whether the opened file is kept for later (``self.stream = open(p)``) or read or written
    in a loop that awaits between chunks: each step then blocks only for one chunk."""
    parent = checker.parent
    if isinstance(parent, ast.Assign) and parent.value is call:
        if any(isinstance(target, ast.Attribute) for target in parent.targets):
            return True
        function = checker.enclosing_function_node()
        return function is not None and _awaiting_loop_after(function, parent.lineno)
    if isinstance(parent, ast.withitem) and parent.context_expr is call:
        statement = checker.parents[-2] if len(checker.parents) > 1 else None
        return isinstance(statement, ast.With) and any(
            _awaiting_loop_after(body, 0) for body in statement.body
        )
    return False


def _awaiting_loop_after(node: ast.AST, line: int) -> bool:
    return any(
        isinstance(loop, LOOPS) and loop.lineno > line and _can_suspend_in(loop)
        for loop in [node, *walk_shallow(node)]
    )


def _can_suspend_in(loop: ast.AST) -> bool:
    if isinstance(loop, ast.AsyncFor):
        return True
    return any(isinstance(node, AWAIT_POINTS) for node in walk_shallow(loop))


def _opens_a_bundled_file(call: ast.Call, checker: Checker) -> bool:
    """``open(os.path.join(os.path.dirname(__file__), "page.html"))``, also through a module
    constant: a file shipped beside the code is small and fixed, read in microseconds."""
    if not call.args:
        return False
    first = call.args[0]
    if isinstance(first, ast.Name):
        first = _module_constant(first.id, checker.tree) or first
    return any(isinstance(node, ast.Name) and node.id == "__file__" for node in ast.walk(first))


def _module_constant(name: str, tree: ast.Module) -> ast.expr | None:
    for statement in tree.body:
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and statement.targets[0].id == name
        ):
            return statement.value
    return None


def _first_argument_is(call: ast.Call, value: object) -> bool:
    first = call.args[0] if call.args else None
    return isinstance(first, ast.Constant) and first.value == value


def _before_anything_else_runs(checker: Checker) -> bool:
    """Whether the call is in the main coroutine (handed to `asyncio.run()` in this module),
    in a statement of its body before the first one that can suspend it."""
    function = checker.enclosing_function_node()
    if not isinstance(function, ast.AsyncFunctionDef):
        return False
    if function.name not in checker.per_module(_main_coroutines):
        return False
    if not any(statement is function for statement in checker.tree.body):
        return False
    for statement in function.body:
        if _can_suspend(statement):
            return False
        if any(parent is statement for parent in checker.parents):
            return True
    return False


_RUNNERS = frozenset({"run", "run_until_complete"})


def _main_coroutines(tree: ast.Module) -> frozenset[str]:
    """Names of the functions whose coroutine the module hands to `asyncio.run(main())`,
    `loop.run_until_complete(main())` or `runner.run(main())`."""
    found = set()
    for node in walk_all(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, first = node.func, node.args[0]
        runner = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if runner in _RUNNERS and isinstance(first, ast.Call) and isinstance(first.func, ast.Name):
            found.add(first.func.id)
    return frozenset(found)


def _can_suspend(statement: ast.stmt) -> bool:
    if isinstance(statement, ast.AsyncWith | ast.AsyncFor):
        return True
    return any(
        isinstance(node, ast.Await | ast.AsyncWith | ast.AsyncFor | ast.Yield | ast.YieldFrom)
        or (isinstance(node, ast.comprehension) and node.is_async)
        for node in walk_shallow(statement)
    )


def _name_of(node: ast.Name | ast.Attribute) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr


def _non_blocking_receivers(tree: ast.Module) -> frozenset[str]:
    """The receivers (as ``ast.dump`` text) the module calls ``receiver.setblocking(False)``
    or ``receiver.settimeout(0)`` on."""
    return frozenset(
        ast.dump(node.func.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("setblocking", "settimeout")
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in (False, 0)
    )
