"""Knowledge shared by several rules: what is a coroutine, how to name a call in a message."""

from __future__ import annotations

import ast

from loopwise.lint._checker import Checker

__all__ = ["call_name", "coroutine_callee", "in_test_file"]

ASYNCIO_COROUTINE_FUNCTIONS = frozenset(
    {
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
        "asyncio.gather",
        "asyncio.open_connection",
        "asyncio.open_unix_connection",
        "asyncio.sleep",
        "asyncio.start_server",
        "asyncio.start_unix_server",
        "asyncio.to_thread",
        "asyncio.wait",
        "asyncio.wait_for",
    }
)

_QUEUES = ("asyncio.Queue", "asyncio.PriorityQueue", "asyncio.LifoQueue")
_LOOP_COROUTINES = (
    "create_connection",
    "create_server",
    "getaddrinfo",
    "getnameinfo",
    "shutdown_asyncgens",
    "shutdown_default_executor",
    "sock_accept",
    "sock_connect",
    "sock_recv",
    "sock_sendall",
    "subprocess_exec",
    "subprocess_shell",
)

_TEST_PACKAGES = frozenset({"tests", "test", "testing"})

KNOWN_COROUTINE_METHODS = frozenset(
    [f"{queue}.{method}" for queue in _QUEUES for method in ("put", "get", "join")]
    + [f"asyncio.AbstractEventLoop.{method}" for method in _LOOP_COROUTINES]
    + [
        "aiohttp.ClientSession.close",
        "asyncio.BoundedSemaphore.acquire",
        "asyncio.Condition.acquire",
        "asyncio.Condition.wait",
        "asyncio.Condition.wait_for",
        "asyncio.Event.wait",
        "asyncio.Lock.acquire",
        "asyncio.Semaphore.acquire",
    ]
)


def call_name(call: ast.Call) -> str:
    """The called expression as written, for messages: ``self.fetch``, ``asyncio.sleep``."""
    text = ast.unparse(call.func)
    return text if len(text) <= 60 else text[:57] + "..."


def in_test_file(checker: Checker) -> bool:
    """Whether the checked file is a test module.

    ``test_*.py``, ``*_test.py``, ``conftest.py``, or a module of a ``tests``/``test``/``testing``
    package. Judged by the dotted module name, so by where the file sits in its own project,
    not by the directories above the project.
    """
    *packages, stem = checker.ctx.module.name.split(".")
    return (
        stem.startswith("test_")
        or stem.endswith("_test")
        or stem == "conftest"
        or any(package in _TEST_PACKAGES for package in packages)
    )


def coroutine_callee(checker: Checker, call: ast.Call) -> bool:
    """True when ``call`` certainly creates a coroutine (or an awaitable that must be awaited)."""
    callee = checker.ctx.resolve_call(call)
    if callee is not None:
        if callee in ASYNCIO_COROUTINE_FUNCTIONS or callee in KNOWN_COROUTINE_METHODS:
            return True
        info = checker.project.function(callee)
        if info is not None:
            return info.coroutine
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    owner = checker.ctx.self_class(func.value)
    if owner is not None:
        method = checker.project.method(owner, func.attr)
        return method is not None and method.coroutine
    if _is_super_call(func.value):
        return _super_method_is_coroutine(checker, func.attr)
    return False


def _is_super_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
    )


def _super_method_is_coroutine(checker: Checker, name: str) -> bool:
    function = checker.function
    if function is None or function.class_qualname is None:
        return False
    info = checker.project._lookup(function.class_qualname, depth=0)
    bases = getattr(info, "bases", ())
    for base in bases:
        if base is None:
            return False
        method = checker.project.method(base, name)
        if method is not None:
            return method.coroutine
    return False
