"""LW018: file-system metadata call in a coroutine."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._blocking import THREAD, BlockingCalls

# os.path functions that ask the file system (the others compute on the string).
_DISK_PATH_FUNCTIONS = (
    "exists",
    "lexists",
    "isfile",
    "isdir",
    "islink",
    "ismount",
    "getsize",
    "getmtime",
    "getatime",
    "getctime",
    "samefile",
    "sameopenfile",
    "realpath",
)

_BLOCKING = BlockingCalls(
    {
        **{f"os.path.{function}": f"use {THREAD}" for function in _DISK_PATH_FUNCTIONS},
        "tempfile.mkstemp": f"use {THREAD}",
        "tempfile.mkdtemp": f"use {THREAD}",
    }
)


class FileMetadataInCoroutine(Rule[ast.Call]):
    """## What it does
    Checks for calls that ask the file system about a path, or create an empty file or
    directory, made directly in the body of an `async def`: `os.path.exists`, `lexists`,
    `isfile`, `isdir`, `islink`, `ismount`, `getsize`, `getmtime`, `getatime`, `getctime`,
    `samefile`, `sameopenfile`, `realpath`, and `tempfile.mkstemp` / `tempfile.mkdtemp`.
    Import aliases are followed (`from os.path import isfile`).

    ## What it does not flag
    - `os.path` functions that compute on the string only: `join`, `normpath`, `relpath`,
      `basename`, `dirname`, `split`...
    - Reading or writing a file's content: that is LW012 (blocking-file-io-in-coroutine).
    - The same exemptions as LW005 and LW012: a nested sync `def` or `lambda`, the function
      passed rather than called, the program's main coroutine before its first `await`, and
      test code.

    ## Why it is opt-in
    Each call is one system call on a path (a `stat()`, a `mkdir()`): on a local disk it takes
    microseconds, and on the 21 real asyncio projects of the ecosystem check all three such
    calls in coroutines were of that kind (a file-or-name test before an upload, a size read
    before streaming, a socket path checked at start-up), none one a maintainer would change.
    On a network file system or a disk under heavy load, though, a `stat()` can take
    seconds, and a coroutine that checks thousands of paths adds up: select it
    (`--select LW018`) for code that walks big or remote trees. flake8-async's ASYNC240 checks
    the same calls.

    ## Why is this bad?
    The event loop runs one thing at a time. While a coroutine waits for the file system,
    every other task waits too; a path on an NFS mount whose server is slow or gone can
    stall the whole process for as long as the mount's timeout.

    ## Example
    ```python
    import os.path

    async def newest(paths):
        return max(paths, key=os.path.getmtime)  # passed, not called: not flagged

    async def size_of(path):
        if os.path.exists(path):
            return os.path.getsize(path)
        return 0
    ```

    ## Use instead
    ```python
    async def size_of(path):
        def size():
            return os.path.getsize(path) if os.path.exists(path) else 0

        return await asyncio.to_thread(size)
    ```

    ## Fix safety
    No fix: whether to move the call to a thread depends on where the paths live.
    """

    code = "LW018"
    default = False
    name = "file-metadata-in-coroutine"
    summary = "file-system metadata call in a coroutine"
    node_types = (ast.Call,)
    in_tests = False

    def visit(self, node: ast.Call, checker: Checker) -> None:
        _BLOCKING.visit(node, checker)
