"""LW017: blocking call in a helper called from a coroutine."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._project import FunctionInfo, Project
from loopwise.lint._rule import Rule
from loopwise.lint.rules._blocking import ConfiguredBlockingCalls
from loopwise.lint.rules._shared import call_name

# The helper the coroutine calls, then up to three further sync functions of the project.
_DEPTH = 4


class BlockingCallInHelper(ConfiguredBlockingCalls, Rule[ast.Call]):
    """## What it does
    Checks, in the body of an `async def`, for calls of a sync function of the project (in any
    module) that makes a call LW005 (blocking-call-in-coroutine) flags, directly or through up
    to three further sync functions of the project. The message names the chain with file and
    line: `` `load_rates()` blocks the event loop: it calls `fetch()` at app/rates.py:8, which
    calls `requests.get()` at app/http.py:21``.

    Functions are followed by name (`load_rates()`, `rates.load()`, `from .rates import load`)
    and, for the first call, as methods of the coroutine's own class or of a project class the
    receiver is known to be (`self.load()`). The blocking calls are LW005's, but not socket
    methods (whether that socket was made non-blocking is not visible from the helper) nor
    calls that return at once (`sqlite3.connect(":memory:")`, `os.waitpid(pid, os.WNOHANG)`).
    The functions the configuration's `extend-blocking-calls` names count too (the methods it
    names only where the receiver's type is known, at the first call).

    ## What it does not flag
    - The helper handed to a thread: `await asyncio.to_thread(load_rates)`,
      `loop.run_in_executor(None, load_rates)`, `pool.submit(load_rates)` pass it uncalled.
    - Calls made in a nested sync `def` or `lambda` of the coroutine.
    - A helper cached with `functools.cache` or `functools.lru_cache` is flagged at its first
      call in the module only, and the message says so: only its first call blocks.
    - Test code (the files `test-paths` matches), as for LW005.
    - Blocking calls that are LW012's (local file I/O, opt-in) or LW018's.

    ## Why it is opt-in
    On the 21 real asyncio projects of the ecosystem check it found one helper, reached from
    two coroutines: redis's cluster `get_node()`, which calls `socket.gethostbyname()` only
    when the host is `"localhost"` (answered from the hosts file). Both findings were judged
    noise, and one project is too few to know how often the rule is right. Turn it on with
    `--select LW017` to see which helpers your coroutines reach that block; the chain in the
    message shows where.

    ## Why is this bad?
    A blocking call does not stop blocking because it sits one function further away. While
    `load_rates()` waits for `requests.get()`, every other task of the process waits too. Per-file
    linters cannot see it: the helper may live in another module, and the coroutine only shows a
    harmless-looking call.

    ## Example
    ```python
    # rates.py
    import requests

    def load_rates():
        return requests.get(RATES_URL, timeout=10).json()

    # handlers.py
    async def quote(request):
        rates = load_rates()
        return web.json_response(convert(request, rates))
    ```

    ## Use instead
    ```python
    async def quote(request):
        rates = await asyncio.to_thread(load_rates)
        return web.json_response(convert(request, rates))
    ```
    Or make the helper async with an async client (aiohttp, `loopwise.http.Client`).

    ## Fix safety
    No fix: whether to run the helper in a thread or rewrite it depends on the helper.
    """

    code = "LW017"
    default = False
    name = "blocking-call-in-helper"
    summary = "a sync helper called from a coroutine makes a blocking call"
    node_types = (ast.Call,)
    in_tests = False

    def visit(self, node: ast.Call, checker: Checker) -> None:
        func = node.func
        written = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if written is None or checker.project is None:
            return
        extra = frozenset(self.entries_for(checker.path)) if self.extend_blocking_calls else None
        names = _blocking_names(checker.project, extra or frozenset())
        if written not in names or not checker.in_async_function:
            return
        info = _helper(node, checker)
        if info is None:
            return
        chain = _chain(info, checker, extra or frozenset())
        if chain is None:
            return
        cached = ""
        if info.cached:
            if not _first_call_here(node, checker):
                return
            cached = " (it is cached: only its first call blocks; flagged at the first call here)"
        steps = ", which calls ".join(f"`{name}()` at {where}" for name, where in chain)
        checker.report(
            node,
            f"`{call_name(node)}()` blocks the event loop: it calls {steps}{cached}: run it in "
            f"a thread (`await asyncio.to_thread({call_name(node)}, ...)`) or make it async",
        )


def _helper(call: ast.Call, checker: Checker) -> FunctionInfo | None:
    """The sync project function ``call`` calls, with its facts."""
    qualname = checker.ctx.resolve(call.func)
    if qualname is None and isinstance(call.func, ast.Attribute):
        owner = checker.ctx._type_of(call.func.value)
        if owner is not None:
            qualname = f"{owner}.{call.func.attr}"
    if qualname is None or checker.project is None:
        return None
    info = checker.project.function(qualname)
    if info is None or info.is_async:
        return None
    return info


def _chain(
    info: FunctionInfo, checker: Checker, extra: frozenset[str]
) -> list[tuple[str, str]] | None:
    """The calls from ``info`` to its first blocking call (name, where), through at most
    ``_DEPTH - 1`` further sync project functions."""
    project = checker.project
    if project is None:
        return None
    path = _path(info, project, 1, extra)
    if path is None:
        return None
    steps = []
    for caller, (callee, line) in path:
        steps.append((_short(callee), f"{_file_of(caller, checker)}:{line}"))
    return steps


def _path(
    info: FunctionInfo, project: Project, depth: int, extra: frozenset[str]
) -> list[tuple[FunctionInfo, tuple[str, int]]] | None:
    """Each function on the way to the first blocking call (LW005's, or one ``extra`` names),
    with the call it makes."""
    blocking = [*info.blocking, *(call for call in info.call_lines if call[0] in extra)]
    if blocking:
        return [(info, min(blocking, key=lambda call: call[1]))]
    if depth >= _DEPTH:
        return None
    for callee, line in info.call_lines:
        further = project.function(callee)
        if further is None or further.is_async or further is info:
            continue
        rest = _path(further, project, depth + 1, extra)
        if rest is not None:
            return [(info, (callee, line)), *rest]
    return None


_last_project: tuple[Project, frozenset[str], frozenset[str]] | None = None


def _blocking_names(project: Project, extra: frozenset[str]) -> frozenset[str]:
    """The names of the project's sync functions and methods that block within reach: a cheap
    filter before a call is resolved (computed once per project and configuration)."""
    global _last_project
    if _last_project is not None and _last_project[0] is project and _last_project[1] == extra:
        return _last_project[2]
    names = set()
    for module in project.modules.values():
        candidates = [*module.functions.items()]
        for info_of_class in module.classes.values():
            candidates.extend(info_of_class.methods.items())
        for name, info in candidates:
            if name not in names and not info.is_async and _path(info, project, 1, extra):
                names.add(name)
    found = frozenset(names)
    _last_project = (project, extra, found)
    return found


def _file_of(info: FunctionInfo, checker: Checker) -> str:
    project = checker.project
    if project is not None:
        for module in project.modules.values():
            if any(f is info for f in module.functions.values()) or any(
                m is info for c in module.classes.values() for m in c.methods.values()
            ):
                return module.file or module.name
    return "?"


def _short(qualname: str) -> str:
    """`requests.get`, `time.sleep`; a project function by its last two parts."""
    parts = qualname.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else qualname


def _first_call_here(call: ast.Call, checker: Checker) -> bool:
    written = ast.unparse(call.func)
    first = checker.per_module(_first_calls).get(written)
    return first is None or first == (call.lineno, call.col_offset)


def _first_calls(tree: ast.Module) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            key = ast.unparse(node.func)
            position = (node.lineno, node.col_offset)
            if key not in found or position < found[key]:
                found[key] = position
    return found
