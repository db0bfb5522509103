"""LW015: an awaited aiohttp response that is never read, released or closed."""

from __future__ import annotations

import ast

from loopwise.lint._ast import single_name_target, walk_shallow
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule
from loopwise.lint.rules._local_names import INERT_PARENTS, name_uses
from loopwise.lint.rules._shared import call_name

_LOOPS_AND_SCOPES = (
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
)
_SESSIONS = frozenset({"aiohttp.ClientSession", "aiohttp.client.ClientSession"})
# Requests whose response may carry a body. A `head()` response has none: aiohttp hands its
# connection back as soon as the headers are in.
_REQUESTS = frozenset({"get", "post", "put", "patch", "delete", "options", "request"})
# Reading any of these gives the connection back (or starts to: `content` is the body stream).
_CONSUMERS = frozenset(
    {"read", "text", "json", "release", "close", "content", "wait_for_close", "__aexit__"}
)
# Reading these leaves the body unread and the connection checked out. Any other attribute
# is something the rule does not know, and keeps it quiet.
_METADATA = frozenset(
    {
        "charset",
        "content_disposition",
        "content_length",
        "content_type",
        "cookies",
        "get_encoding",
        "headers",
        "history",
        "host",
        "links",
        "method",
        "ok",
        "raise_for_status",
        "raw_headers",
        "real_url",
        "reason",
        "request_info",
        "status",
        "url",
        "version",
    }
)


class ResponseNeverReleased(Rule[ast.Assign | ast.AnnAssign]):
    """## What it does
    Checks for a response of an aiohttp `ClientSession` request awaited into a local name
    (`resp = await session.get(url)`, also `.post`, `.put`, `.patch`, `.delete`, `.options`
    and `.request`) outside `async with`, whose body is never read (`read()`, `text()`,
    `json()`, anything on `resp.content`) and that is never `release()`d or `close()`d: the
    function only looks at its status, headers or other metadata.

    The session is known as LW008 knows it: made by `aiohttp.ClientSession(...)` (however
    imported), annotated `ClientSession` (parameter, variable or `self._session` attribute),
    or bound by `async with ClientSession() as session`.

    ## What it does not flag
    - A response that is returned, yielded, stored (on `self`, in a container), passed to any
      call, captured by a nested function, used in `async with resp:`, or read through an
      attribute the rule does not know: someone else may release it.
    - `session.head(...)`: a HEAD response has no body, so aiohttp gives its connection back
      as soon as the headers arrive.
    - A session of unknown type (an unannotated parameter): only aiohttp's session is known to
      behave this way.
    - A name assigned again before it is used (`resp = await ...; resp = await ...`): a known
      miss, kept out to stay precise.
    - A request on a session the same function opens with
      `async with ClientSession() as session:`, when the request is not in a loop or the
      `async with` is inside the loop too: closing the session at the end of the block closes
      the connection, so nothing is held for long (a one-shot script, a health check, a retry
      loop that opens a session per attempt).
    - Test code (the files `test-paths` matches): a test's session lives for one test.

    ## Why it is opt-in
    Whether an unreleased response holds its connection depends on the size of its body,
    which the code does not show. aiohttp keeps receiving the body in the background and
    hands the connection back by itself once all of it has arrived: measured with aiohttp
    3.14, responses of up to 200 KB freed their connections with nobody reading them, while
    one of 1 MB held its connection for good (the response is kept alive by its own
    connection, so not even garbage collection frees it). On the 21 projects of the
    ecosystem check it reports nothing (their two findings while it was written were
    requests in tests on a session closed right after, hence the exemption above). On Home
    Assistant 2024.3 (6725 files) it reports one: the analytics upload looks only at the
    status of a `post()` to a server that answers with a small body, so nothing is held:
    correct to the letter, harmless in fact. Searched for on public code
    (`benchmarks/ecosystem/wild.jsonl`), it found the same in a border-router client library
    (eight status-only reads of small answers) and one retry loop that opens a session per
    attempt (no longer reported). Run it with `--select LW015` on code that talks
    to servers whose answers may be large or streamed (downloads, exports, event streams).

    ## Why is this bad?
    An awaited request returns as soon as the headers have arrived; the body is still on the
    connection, and the connection stays checked out of the session's pool until the body is
    read or the response released. A small body arrives whole on its own and aiohttp then
    frees the connection, but a large or streamed one stalls when the read buffer is full,
    and the connection (which keeps the response alive) is never handed back. With a
    connection limit (`TCPConnector(limit_per_host=...)`, 100 in all by default), a few such
    requests stall every later request of the session, forever.

    ## Example
    ```python
    import aiohttp

    async def is_up(session: aiohttp.ClientSession, url: str) -> bool:
        resp = await session.get(url)
        return resp.status == 200
    ```

    ## Use instead
    ```python
    async def is_up(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.get(url) as resp:
            return resp.status == 200
    ```
    Or call `resp.release()` in a `finally:` when the response must outlive one block.

    ## Fix safety
    No fix: where the response's lifetime should end depends on the code around it.
    """

    code = "LW015"
    default = False
    name = "response-never-released"
    summary = "response of an aiohttp request is never read, released or closed"
    node_types = (ast.Assign, ast.AnnAssign)
    in_tests = False

    def visit(self, node: ast.Assign | ast.AnnAssign, checker: Checker) -> None:
        awaited = node.value
        if not isinstance(awaited, ast.Await):
            return
        call = awaited.value
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr in _REQUESTS
        ):
            return
        target = single_name_target(node)
        function = checker.function
        if (
            target is None
            or function is None
            or not isinstance(function.node, ast.AsyncFunctionDef)
            or target.id in function.declared_outer
        ):
            return
        session = call.func.value
        if checker.ctx.origin(session) not in _SESSIONS:
            return
        if _scoped_here(function.node, session) and (
            checker.enclosing_loop(node) is None or _session_closed_each_round(checker, session)
        ):
            return
        if _only_metadata_read(function.node, target.id):
            checker.report(
                call,
                f"response `{target.id}` of `{call_name(call)}()` is never read, released or "
                "closed: its connection stays out of the pool; use "
                f"`async with {call_name(call)}(...) as {target.id}:`",
            )


def _scoped_here(function: ast.AsyncFunctionDef, session: ast.expr) -> bool:
    """Whether ``session`` is a name the function binds with ``async with ... as session``."""
    if not isinstance(session, ast.Name):
        return False
    return any(
        isinstance(node, ast.AsyncWith)
        and any(
            isinstance(item.optional_vars, ast.Name) and item.optional_vars.id == session.id
            for item in node.items
        )
        for node in walk_shallow(function)
    )


def _session_closed_each_round(checker: Checker, session: ast.expr) -> bool:
    """Whether the request sits in an ``async with ... as session`` opened inside its innermost
    loop: the session, and with it the connection, is closed on every round."""
    assert isinstance(session, ast.Name)
    for parent in reversed(checker.parents):
        if isinstance(parent, ast.AsyncWith) and any(
            isinstance(item.optional_vars, ast.Name) and item.optional_vars.id == session.id
            for item in parent.items
        ):
            return True
        if isinstance(parent, _LOOPS_AND_SCOPES):
            return False
    return False


def _only_metadata_read(function: ast.AsyncFunctionDef, name: str) -> bool:
    """Whether ``function`` reads the response in ``name`` only for its metadata."""
    stores = 0
    for use, parent, nested in name_uses(function, name):
        if not isinstance(use.ctx, ast.Load):
            stores += 1
            if stores > 1:
                return False  # assigned again: which response a read sees is path-dependent
            continue
        if nested:
            return False
        if isinstance(parent, ast.Attribute):
            if parent.attr not in _METADATA:
                return False  # read, released, or something not known: stay quiet
        elif not isinstance(parent, INERT_PARENTS):
            return False  # returned, stored, passed on, `async with resp:` ...
    return True
