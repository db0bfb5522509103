"""LW005: blocking call in a coroutine."""

from __future__ import annotations

import ast
import functools

from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._blocking import (
    SPAWNS,
    THREAD,
    BlockingCalls,
    BlockingType,
    ConfiguredBlockingCalls,
    returns_at_once_anywhere,
)

_HTTP = f"use aiohttp or `loopwise.http.Client`, or {THREAD}"
_SUBPROCESS = "use `await asyncio.create_subprocess_exec(...)`"
_WAIT = (
    "start the process with `asyncio.create_subprocess_exec()` and `await proc.wait()`, "
    f"or use {THREAD}"
)
_DNS = "use `await loop.getaddrinfo(...)` (`loop = asyncio.get_running_loop()`)"
_SOCKET = "use `asyncio.open_connection()` streams, or `await loop.sock_*(...)`"

_REQUESTS_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")

# urllib3's pools: every method but these talks to the network (or closes connections).
_POOL = BlockingType(
    "a urllib3 pool",
    _HTTP,
    frozenset(
        {
            "connection_from_context",
            "connection_from_host",
            "connection_from_pool_key",
            "connection_from_url",
            "is_same_host",
        }
    ),
)
_TYPES = {
    name: _POOL
    for name in (
        "urllib3.PoolManager",
        "urllib3.ProxyManager",
        "urllib3.HTTPConnectionPool",
        "urllib3.HTTPSConnectionPool",
    )
}


# Qualified name of a blocking callable -> what to use instead. Local file I/O is LW012's.
_BLOCKING = BlockingCalls(
    {
        "time.sleep": "use `await asyncio.sleep()`",
        "urllib.request.urlopen": _HTTP,
        "urllib.request.urlretrieve": _HTTP,
        "builtins.input": f"use {THREAD}",
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
        "os.popen": "use `await asyncio.create_subprocess_shell(...)`",
        **dict.fromkeys(SPAWNS, _WAIT),
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
        "socket.getfqdn": f"use {THREAD}",
        "sqlite3.connect": f"use aiosqlite, or run the database work in {THREAD}",
        "urllib3.request": _HTTP,
        **{f"requests.{verb}": _HTTP for verb in _REQUESTS_VERBS},
        **{f"requests.Session.{verb}": _HTTP for verb in (*_REQUESTS_VERBS, "send", "close")},
        **{
            f"{httpx}.{verb}": "use `httpx.AsyncClient` or aiohttp"
            for httpx in ("httpx", "httpx2")
            for verb in _REQUESTS_VERBS
        },
        "httpx.stream": "use `httpx.AsyncClient().stream()` or aiohttp",
        "httpx2.stream": "use `httpx.AsyncClient().stream()` or aiohttp",
        **{
            f"httpx.Client.{verb}": "use `httpx.AsyncClient` or aiohttp"
            for verb in (*_REQUESTS_VERBS, "send", "stream", "close")
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
    },
    _TYPES,
)


class BlockingCallInCoroutine(ConfiguredBlockingCalls, Rule[ast.Call]):
    """## What it does
    Checks for calls that block the thread for as long as something outside the program takes,
    made directly in the body of an `async def`:

    - `time.sleep()`;
    - HTTP with `requests` (`requests.get/post/put/patch/delete/head/options/request`, and
      those methods plus `send` and `close` on a `requests.Session`), with sync `httpx` (and
      its continuation `httpx2`: `httpx.get/...`, `httpx.request`, `httpx.stream`, and the
      request methods, `send`, `stream` and `close` of an `httpx.Client`), with urllib3
      (`urllib3.request()`, and every method of a `PoolManager`, `ProxyManager`,
      `HTTPConnectionPool` or `HTTPSConnectionPool` but the ones that only pick a pool:
      `connection_from_*`, `is_same_host`), and `urllib.request.urlopen()`/`urlretrieve()`;
    - processes: `subprocess.run/call/check_call/check_output/getoutput/getstatusoutput`,
      `.wait()`/`.communicate()` on a `subprocess.Popen`, `os.system()`, `os.popen()`,
      `os.spawn*()` with `os.P_WAIT` (or no mode), and `os.wait/waitpid/wait3/wait4/waitid`
      (unless called with `os.WNOHANG`, which returns at once);
    - `input()`;
    - sockets: `socket.create_connection`, `getaddrinfo`, `gethostbyname`, `gethostbyname_ex`,
      `gethostbyaddr`, `getnameinfo`, `getfqdn`, and `connect/accept/recv/recv_into/recvfrom/
      recvfrom_into/send/sendall/sendto/makefile` on a value known to be a `socket.socket`
      (unless the module makes it non-blocking with `.setblocking(False)` or `.settimeout(0)`);
    - `sqlite3.connect()`.

    Import aliases are followed (`from time import sleep`, `import requests as rq`,
    `from subprocess import run as sh`), and so are the types of values built from known
    classes (`session = requests.Session()`, `with httpx.Client() as client`,
    `proc = subprocess.Popen(...)`, `self.sock = socket.socket()` in any method), annotated
    (`session: requests.Session`, `client: httpx.Client | None`,
    `Optional[urllib3.PoolManager]`), or held in an attribute of a project class
    (`self.http.get(url)`).

    The configuration can name more: `extend-blocking-calls = ["mylib.sync_fetch",
    "db.Session.query"]` adds a module function and a method of the class `db.Session`
    (called on a value built as `db.Session()` or annotated `db.Session`).

    ## What it does not flag
    - Local file I/O (`open()`, `Path.read_text()`, methods of file objects and the like):
      that is LW012 (blocking-file-io-in-coroutine), opt-in; `os.path.exists()` and other
      file-system metadata calls are LW018, opt-in.
    - Starting a process without waiting for it (`subprocess.Popen()`, `os.posix_spawn()`,
      `os.spawn*()` with `os.P_NOWAIT`): asyncio's own `create_subprocess_exec()` forks on the
      loop's thread too.
    - Code in a nested sync `def` or `lambda`: it may well run in a thread, as in
      `await asyncio.to_thread(lambda: requests.get(url))`.
    - Passing the function itself: `await asyncio.to_thread(time.sleep, 1)`,
      `loop.run_in_executor(None, requests.get, url)`.
    - A name shadowed locally (a parameter called `input`, `sleep = asyncio.sleep`), and a
      method called on a receiver of unknown type.
    - `sqlite3.connect(":memory:")`, `os.waitpid(pid, os.WNOHANG)` and a socket the module
      makes non-blocking: they return at once.
    - The program's main coroutine (the one this module hands to `asyncio.run()`) before its
      first `await`: no other task exists yet, so asking for `input()` or waiting for a setup
      command there stalls nothing.
    - Test code (the files `test-paths` matches): a test coroutine sleeping on purpose to
      provoke a timeout, running a helper process or connecting to its own local server
      stalls only its own test. On the 21 projects of the ecosystem check the 13 findings in
      tests were all of that kind, none one a maintainer would change; `test-paths = []`
      reports them.

    ## Why is this bad?
    The event loop runs one thing at a time. While a coroutine sits in a blocking call, every
    other task waits: no request is served, no timeout fires, no heartbeat is sent. A
    `time.sleep(1)` in a handler caps the whole server at one request per second, and a slow DNS
    lookup, HTTP call or child process stalls everything for as long as it takes, with no
    upper bound.

    ## Example
    ```python
    import subprocess
    import time

    import requests

    async def refresh(url):
        time.sleep(1)
        data = requests.get(url).text
        subprocess.run(["make", "reload"], check=True)
        return data
    ```

    ## Use instead
    ```python
    async def refresh(session, url):
        await asyncio.sleep(1)
        async with session.get(url) as response:  # an aiohttp.ClientSession
            data = await response.text()
        proc = await asyncio.create_subprocess_exec("make", "reload")
        await proc.wait()
        return data
    ```
    Whatever has no async version can run in a worker thread with
    `await asyncio.to_thread(func, *args)`.

    ## Fix safety
    No fix: the non-blocking replacement (`asyncio.to_thread`, an async library) depends on
    the call.
    """

    code = "LW005"
    name = "blocking-call-in-coroutine"
    summary = "blocking call in a coroutine stalls the event loop"
    node_types = (ast.Call,)
    in_tests = False

    def visit(self, node: ast.Call, checker: Checker) -> None:
        _BLOCKING.visit(node, checker)
        if self.extend_blocking_calls:
            extra = _extra_calls(self.entries_for(checker.path))
            if extra is not None:
                extra.visit(node, checker)


@functools.lru_cache(maxsize=16)
def _extra_calls(entries: tuple[str, ...]) -> BlockingCalls | None:
    """The configured calls LW005 does not know already, as a table of their own."""
    added = {
        entry: f"the configuration names it blocking (`extend-blocking-calls`): use {THREAD}"
        for entry in entries
        if entry not in _BLOCKING.table
    }
    return BlockingCalls(added) if added else None


def blocks_in_any_context(call: ast.Call, callee: str) -> bool:
    """Whether LW005 flags a call of ``callee`` wherever it is: for the calls a sync function
    makes (LW017 follows them from a coroutine). Socket methods are left out (whether the socket
    was made non-blocking is not visible from there), and so are the calls that return at once
    (`sqlite3.connect(":memory:")`, `waitpid(..., WNOHANG)`, `spawn*(P_NOWAIT, ...)`)."""
    if callee not in _BLOCKING.table or callee.startswith("socket.socket."):
        return False
    return not returns_at_once_anywhere(call, callee)
