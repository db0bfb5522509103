"""LW005: blocking call in a coroutine."""

from __future__ import annotations

import ast

from loopwise.lint._context import walk_shallow
from loopwise.lint._rule import Rule
from loopwise.lint._runner import Checker
from loopwise.lint.rules._shared import call_name

_THREAD = "`await asyncio.to_thread(...)`"
_HTTP = f"use aiohttp or `loopwise.http.Client`, or {_THREAD}"
_FILE = f"use {_THREAD} (or aiofiles)"
_SUBPROCESS = "use `await asyncio.create_subprocess_exec(...)`"
_WAIT = (
    "start the process with `asyncio.create_subprocess_exec()` and `await proc.wait()`, "
    f"or use {_THREAD}"
)
_DNS = "use `await loop.getaddrinfo(...)` (`loop = asyncio.get_running_loop()`)"
_SOCKET = "use `asyncio.open_connection()` streams, or `await loop.sock_*(...)`"

_REQUESTS_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")

# Qualified name of a blocking callable -> what to use instead.
_BLOCKING: dict[str, str] = {
    "time.sleep": "use `await asyncio.sleep()`",
    "urllib.request.urlopen": _HTTP,
    "urllib.request.urlretrieve": _HTTP,
    "builtins.open": _FILE,
    "io.open": _FILE,
    "builtins.input": f"use {_THREAD}",
    "subprocess.run": _SUBPROCESS,
    "subprocess.call": _SUBPROCESS,
    "subprocess.check_call": _SUBPROCESS,
    "subprocess.check_output": _SUBPROCESS,
    "subprocess.getoutput": "use `await asyncio.create_subprocess_shell(...)`",
    "subprocess.getstatusoutput": "use `await asyncio.create_subprocess_shell(...)`",
    "subprocess.Popen.wait": "use `asyncio.create_subprocess_exec()` and `await proc.wait()`",
    "subprocess.Popen.communicate": (
        "use `asyncio.create_subprocess_exec()` and `await proc.communicate()`"
    ),
    "os.system": "use `await asyncio.create_subprocess_shell(...)`",
    "os.wait": _WAIT,
    "os.waitpid": _WAIT,
    "os.wait3": _WAIT,
    "os.wait4": _WAIT,
    "os.waitid": _WAIT,
    "socket.create_connection": "use `await asyncio.open_connection(host, port)`",
    "socket.getaddrinfo": _DNS,
    "socket.gethostbyname": _DNS,
    "socket.gethostbyname_ex": _DNS,
    "socket.gethostbyaddr": "use `await loop.getnameinfo(...)`",
    "socket.getnameinfo": "use `await loop.getnameinfo(...)`",
    "socket.getfqdn": f"use {_THREAD}",
    "sqlite3.connect": f"use aiosqlite, or run the database work in {_THREAD}",
    **{f"requests.{verb}": _HTTP for verb in _REQUESTS_VERBS},
    **{f"requests.Session.{verb}": _HTTP for verb in (*_REQUESTS_VERBS, "send")},
    **{f"httpx.{verb}": "use `httpx.AsyncClient` or aiohttp" for verb in _REQUESTS_VERBS},
    "httpx.stream": "use `httpx.AsyncClient().stream()` or aiohttp",
    **{
        f"httpx.Client.{verb}": "use `httpx.AsyncClient` or aiohttp"
        for verb in (*_REQUESTS_VERBS, "send", "stream")
    },
    **{
        f"pathlib.Path.{method}": f"use {_THREAD}"
        for method in ("read_text", "read_bytes", "write_text", "write_bytes", "open")
    },
    **{
        f"socket.socket.{method}": _SOCKET
        for method in (
            "connect",
            "accept",
            "recv",
            "recv_into",
            "recvfrom",
            "recvfrom_into",
            "send",
            "sendall",
            "sendto",
            "makefile",
        )
    },
}

# The attribute names a blocking call can end with: a cheap filter before resolving names.
_ATTRIBUTES = frozenset(name.rpartition(".")[2] for name in _BLOCKING)
_SOCKET_METHOD = "socket.socket."
_WAIT_WITH_OPTIONS = frozenset({"os.waitpid", "os.wait3", "os.wait4", "os.waitid"})


class BlockingCallInCoroutine(Rule):
    """## What it does
    Checks for calls that block the thread made directly in the body of an `async def`:

    - `time.sleep()`;
    - HTTP with `requests` (`requests.get/post/put/patch/delete/head/options/request`, and
      those methods plus `send` on a `requests.Session`), with sync `httpx`
      (`httpx.get/...`, `httpx.request`, `httpx.stream`, and the methods of an `httpx.Client`),
      and `urllib.request.urlopen()`/`urlretrieve()`;
    - files: `open()`, `builtins.open()`, `io.open()` (also as `with open(...)`), and
      `read_text/read_bytes/write_text/write_bytes/open` on a value known to be a
      `pathlib.Path`;
    - processes: `subprocess.run/call/check_call/check_output/getoutput/getstatusoutput`,
      `.wait()`/`.communicate()` on a `subprocess.Popen`, `os.system()`, and
      `os.wait/waitpid/wait3/wait4/waitid` (unless called with `os.WNOHANG`, which returns at
      once);
    - `input()`;
    - sockets: `socket.create_connection`, `getaddrinfo`, `gethostbyname`, `gethostbyname_ex`,
      `gethostbyaddr`, `getnameinfo`, `getfqdn`, and `connect/accept/recv/recv_into/recvfrom/
      recvfrom_into/send/sendall/sendto/makefile` on a value known to be a `socket.socket`
      (unless the module makes it non-blocking with `.setblocking(False)` or `.settimeout(0)`);
    - `sqlite3.connect()`.

    Import aliases are followed (`from time import sleep`, `import requests as rq`,
    `from subprocess import run as sh`), and so are the types of values built from known
    classes (`session = requests.Session()`, `with httpx.Client() as client`, `path: Path`,
    `path: Path | None`, `proc = subprocess.Popen(...)`, `self.sock = socket.socket()` in any
    method, `path = Path(p) if local else None`, a parameter replaced by `path = Path(path)`),
    returned by a project function or method
    declared `-> Path` (`data_file("x").read_bytes()`), or held in an attribute of a project
    class (`self._store.path.read_text()`).

    ## What it does not flag
    - Code in a nested sync `def` or `lambda`: it may well run in a thread, as in
      `await asyncio.to_thread(lambda: requests.get(url))`.
    - Passing the function itself: `await asyncio.to_thread(time.sleep, 1)`,
      `loop.run_in_executor(None, requests.get, url)`.
    - A name shadowed locally (`open = aiofiles.open`, a parameter called `input`), and a
      method called on a receiver of unknown type.
    - `sqlite3.connect(":memory:")`, `os.waitpid(pid, os.WNOHANG)` and a socket the module
      makes non-blocking: they return at once.
    - `open()` of a file streamed in chunks between awaits (`f = open(p, "wb")` then
      `async for chunk in response: f.write(chunk)`, or a file kept on `self` to be read
      later): each step blocks for one chunk only, a common and deliberate design. Reading or
      writing the whole file with no await in between is flagged.
    - `open()` of a file shipped beside the module (a path built from `__file__`, directly
      or through a module constant): small and fixed, it is read in microseconds.
    - The program's main coroutine (the one this module hands to `asyncio.run()`) before its
      first `await`: no other task exists yet, so reading a config file or asking for `input()`
      there stalls nothing.
    - Test code (the files `test-paths` matches): a test coroutine reading a fixture file,
      running a helper process or sleeping on purpose to provoke a timeout stalls only its own
      test. On the 21 projects of the ecosystem check the 118 findings in tests were all of
      that kind, none one a maintainer would change; `test-paths = []` reports them.

    ## Why is this bad?
    The event loop runs one thing at a time. While a coroutine sits in a blocking call, every
    other task waits: no request is served, no timeout fires, no heartbeat is sent. A
    `time.sleep(1)` in a handler caps the whole server at one request per second, and a slow DNS
    lookup or HTTP call stalls everything for as long as it takes.

    ## Example
    ```python
    async def refresh(url, path):
        time.sleep(1)
        data = requests.get(url).text
        with open(path, "w") as file:
            file.write(data)
        subprocess.run(["make", "reload"], check=True)
    ```

    ## Use instead
    ```python
    async def refresh(session, url, path):
        await asyncio.sleep(1)
        async with session.get(url) as response:  # an aiohttp.ClientSession
            data = await response.text()
        await asyncio.to_thread(Path(path).write_text, data)
        proc = await asyncio.create_subprocess_exec("make", "reload")
        await proc.wait()
    ```
    Whatever has no async version can run in a worker thread with
    `await asyncio.to_thread(func, *args)`.
    """

    code = "LW005"
    name = "blocking-call-in-coroutine"
    summary = "blocking call in a coroutine stalls the event loop"
    nodes = (ast.Call,)
    in_tests = False

    def visit(self, node: ast.AST, checker: Checker) -> None:
        assert isinstance(node, ast.Call)
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr not in _ATTRIBUTES:
                return
        elif not isinstance(func, ast.Name):
            return
        if not checker.in_async_function:
            return
        callee = checker.ctx.resolve_call(node)
        if callee is None:
            return
        advice = _BLOCKING.get(callee)
        if advice is None or _returns_at_once(node, callee, checker):
            return
        written = call_name(node)
        same = callee in (written, f"builtins.{written}")
        culprit = f"`{written}()`" if same else f"`{written}()` (`{callee}`)"
        checker.report(node, f"blocking call {culprit} stalls the event loop: {advice}")


def _returns_at_once(call: ast.Call, callee: str, checker: Checker) -> bool:
    """Whether this particular call cannot block for long: WNOHANG waits, non-blocking sockets,
    an in-memory database, a file opened as a stream or shipped beside the module, and
    anything before the main coroutine first yields."""
    if _before_anything_else_runs(checker):
        return True
    if callee in _OPENERS:
        return _opens_a_stream(call, checker) or _opens_a_bundled_file(call, checker)
    if callee == "sqlite3.connect":
        return _first_argument_is(call, ":memory:")
    if callee in _WAIT_WITH_OPTIONS:
        return any(
            isinstance(node, ast.Name | ast.Attribute) and _name_of(node) == "WNOHANG"
            for argument in [*call.args, *(keyword.value for keyword in call.keywords)]
            for node in ast.walk(argument)
        )
    if callee.startswith(_SOCKET_METHOD) and isinstance(call.func, ast.Attribute):
        return _made_non_blocking(ast.dump(call.func.value), checker.tree)
    return False


_OPENERS = frozenset({"builtins.open", "io.open"})
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


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
        isinstance(loop, _LOOPS) and loop.lineno > line and _can_suspend_in(loop)
        for loop in [node, *walk_shallow(node)]
    )


def _can_suspend_in(loop: ast.AST) -> bool:
    if isinstance(loop, ast.AsyncFor):
        return True
    return any(
        isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith) for node in walk_shallow(loop)
    )


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
    if not isinstance(function, ast.AsyncFunctionDef) or function.name not in _main_coroutines(
        checker.tree
    ):
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
_main_coroutines_cache: dict[int, tuple[ast.Module, frozenset[str]]] = {}


def _main_coroutines(tree: ast.Module) -> frozenset[str]:
    """Names of the functions whose coroutine the module hands to `asyncio.run(main())`,
    `loop.run_until_complete(main())` or `runner.run(main())`."""
    cached = _main_coroutines_cache.get(id(tree))
    if cached is not None and cached[0] is tree:
        return cached[1]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func, first = node.func, node.args[0]
        runner = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if runner in _RUNNERS and isinstance(first, ast.Call) and isinstance(first.func, ast.Name):
            found.add(first.func.id)
    _main_coroutines_cache.clear()  # one module at a time: keep only the latest
    _main_coroutines_cache[id(tree)] = (tree, frozenset(found))
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


def _made_non_blocking(receiver: str, tree: ast.Module) -> bool:
    """Whether the module calls ``receiver.setblocking(False)`` or ``receiver.settimeout(0)``."""
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("setblocking", "settimeout")
            and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in (False, 0)
        ):
            continue
        if ast.dump(node.func.value) == receiver:
            return True
    return False
