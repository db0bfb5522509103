"""LW012: blocking file I/O in a coroutine."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint._types import FILE_TYPE
from loopwise.lint.rules._blocking import FILE_WHAT, THREAD, BlockingCalls, BlockingType

_FILE = f"use {THREAD} (or aiofiles)"

# File-object methods that do no I/O.
_FILE_HARMLESS = frozenset({"fileno", "isatty", "readable", "writable", "seekable", "detach"})

# Qualified name of a callable doing local file I/O -> what to use instead.
_BLOCKING = BlockingCalls(
    {
        "builtins.open": _FILE,
        "io.open": _FILE,
        "io.open_code": _FILE,
        "os.fdopen": _FILE,
        "tempfile.TemporaryFile": _FILE,
        "tempfile.NamedTemporaryFile": _FILE,
        **{
            f"pathlib.Path.{method}": f"use {THREAD}"
            for method in ("read_text", "read_bytes", "write_text", "write_bytes", "open")
        },
    },
    {FILE_TYPE: BlockingType(FILE_WHAT, _FILE, _FILE_HARMLESS)},
)


class BlockingFileIoInCoroutine(Rule[ast.Call]):
    """## What it does
    Checks for local file I/O made directly in the body of an `async def`: `open()`,
    `builtins.open()`, `io.open()`, `io.open_code()`, `os.fdopen()`,
    `tempfile.TemporaryFile()`, `tempfile.NamedTemporaryFile()` (also as `with open(...)`),
    `read_text/read_bytes/write_text/write_bytes/open` on a value known to be a
    `pathlib.Path`, and any method (`read`, `write`, `readlines`, `close`...) of a value known
    to be a file object, but `fileno`, `isatty`, `readable`, `writable`, `seekable` and
    `detach`, which do no I/O.

    A file object is known as the result of one of those calls (`f = open(p)`,
    `with path.open() as f`, `g = f`) or by a concrete annotation: `io.TextIOWrapper`,
    `io.BufferedReader`, `io.BufferedWriter`, `io.BufferedRandom`, `io.FileIO`, also in a
    union or `Optional`. `typing.IO`, `TextIO` and `BinaryIO` are not taken as files: they
    name any file-like object, as often an in-memory `io.BytesIO` (on the ecosystem check the
    one such call was a write into a caller's buffer).

    A `Path` is known through the types of values built from it (`Path(p)`,
    `Path.home() / "x"`, `typed.parent / "out.txt"`), annotations (`path: Path`,
    `path: Path | None`), conditional expressions (`path = Path(p) if local else None`), a
    parameter replaced by `path = Path(path)`, a project function or method declared
    `-> Path` (`data_file("x").read_bytes()`), or an attribute of a project class
    (`self._store.path.read_text()`). Import aliases are followed (`from io import open`).

    ## What it does not flag
    - A file streamed in chunks between awaits (`f = open(p, "wb")` then
      `async for chunk in response: f.write(chunk)`, or a file kept on `self` to be read
      later): each step blocks for one chunk only, a common and deliberate design. Reading or
      writing the whole file with no await in between is flagged.
    - A method call on a file kept on an object (`self.log.write(line)`), in a loop that
      awaits between chunks, or on a file the function streams in such a loop (its final
      `close()`).
    - `os.path.exists()`, `tempfile.mkdtemp()` and other file-system metadata calls: LW018
      (file-metadata-in-coroutine), opt-in.
    - A file shipped beside the module (a path built from `__file__`, directly or through a
      module constant): small and fixed, it is read in microseconds.
    - The program's main coroutine (the one this module hands to `asyncio.run()`) before its
      first `await`: no other task exists yet, so reading a config file there stalls nothing.
    - Code in a nested sync `def` or `lambda`, the function passed rather than called
      (`await asyncio.to_thread(path.read_text)`), a name shadowed locally
      (`open = aiofiles.open`), and a method called on a receiver of unknown type.
    - Test code (the files `test-paths` matches): a test coroutine reading a fixture file
      stalls only its own test; `test-paths = []` reports them.

    ## Why it is opt-in
    The calls LW005 flags (network, sleep, child processes, sockets, `input()`) wait for
    something outside the program, for a time nothing bounds: on the 21 real asyncio
    projects of the ecosystem check, every such finding was a real bug. Local file I/O takes
    time in proportion to the file, and two independent reviews judged 3 of its 8 findings
    there noise: an avatar saved once, a TLS certificate read at start-up, a small decrypted
    file, code whose maintainers chose plain file I/O on purpose. The real ones read or wrote
    in one call a whole file of unbounded size (an attachment, a download of up to 2 GB).
    The size of a file is not visible in the code, so this rule runs only when asked:
    `--select LW012`, for code that handles user-supplied or unbounded files. ruff and
    flake8-async make the same split, keeping file I/O (ASYNC230, ASYNC240) apart from HTTP,
    sleep and subprocess calls.

    ## Why is this bad?
    The event loop runs one thing at a time. While a coroutine reads or writes a file, every
    other task waits: reading a 500 MB upload in one call, or writing it to a slow or network
    disk, freezes every request, timeout and heartbeat of the process until it is done.

    ## Example
    ```python
    async def save_attachment(message, target: Path):
        data = await message.read()
        target.write_bytes(data)
        with open(target.with_suffix(".json"), "w") as meta:
            meta.write(message.headers_json)
    ```

    ## Use instead
    ```python
    async def save_attachment(message, target: Path):
        data = await message.read()
        await asyncio.to_thread(target.write_bytes, data)
        await asyncio.to_thread(target.with_suffix(".json").write_text, message.headers_json)
    ```
    A large download is better streamed to disk in chunks, with an await between them
    (`async for chunk in response.content.iter_chunked(65536): file.write(chunk)`), or with
    aiofiles.

    ## Fix safety
    No fix: the non-blocking replacement (`asyncio.to_thread`, `aiofiles`) depends on the
    code around the call.
    """

    code = "LW012"
    default = False
    name = "blocking-file-io-in-coroutine"
    summary = "blocking file I/O in a coroutine"
    node_types = (ast.Call,)
    in_tests = False

    def visit(self, node: ast.Call, checker: Checker) -> None:
        _BLOCKING.visit(node, checker)
