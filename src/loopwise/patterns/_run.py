"""run: asyncio.run with uvloop when available, and a home loop for run_sync()."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from loopwise._exceptions import ConfigError, UsageError
from loopwise.patterns._bridge import home_loop

__all__ = ["run"]

T = TypeVar("T")


def loop_factory(uvloop: bool | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory both runners use: uvloop's for ``True`` (required) and ``None``
    (when installed), ``None`` (asyncio's default) otherwise.

    Raises :class:`TypeError` for anything but ``True``/``False``/``None``, and
    :class:`~loopwise.ConfigError` for ``True`` without uvloop installed.
    """
    if uvloop is not None and not isinstance(uvloop, bool):
        raise TypeError(
            f"uvloop= takes True (require uvloop), False (never use it) or None (use it when "
            f"installed), got {uvloop!r}"
        )
    if uvloop is False:
        return None
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        if uvloop:
            raise ConfigError(
                "uvloop=True but uvloop is not installed: `pip install 'loopwise[uvloop]'` "
                "(not available on Windows), or pass uvloop=None to use it only when installed"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def refuse_running_loop(what: str, instead: str) -> None:
    """Raise :class:`~loopwise.UsageError` when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise UsageError(f"{what} was called inside a running event loop: {instead}")


def home_context(loop: asyncio.AbstractEventLoop) -> contextvars.Context:
    """A copy of the current context in which ``loop`` is the loop :func:`loopwise.run_sync`
    uses from worker threads: run the main task in it."""
    context = contextvars.copy_context()
    context.run(home_loop.set, loop)
    return context


def run(
    main: Coroutine[Any, Any, T], *, uvloop: bool | None = None, debug: bool | None = None
) -> T:
    """Run the coroutine ``main`` in a new event loop and return its result: the one entry point
    the loopwise docs recommend.

    Like :func:`asyncio.run` (a fresh loop, then cancels the tasks still pending, shuts down async
    generators and the default executor, and closes the loop), plus:

    * ``uvloop=None`` (default) uses uvloop when it is installed, ``True`` requires it (raises
      :class:`~loopwise.ConfigError` when missing: ``pip install 'loopwise[uvloop]'``),
      ``False`` never uses it; anything else is a :class:`TypeError`. The server's
      :func:`loopwise.http.server.run` chooses its loop the same way.
    * :func:`loopwise.run_sync` called from worker threads started with ``asyncio.to_thread()``
      runs its coroutine on this loop.
    * Called inside a running event loop it raises :class:`~loopwise.UsageError` (``await main``
      there instead).

    ``main`` is closed when it cannot be run, so no "never awaited" warning follows.
    """
    try:
        refuse_running_loop(
            "loopwise.run()",
            "`await` the coroutine there instead (or run it in another thread with "
            "loopwise.LoopThread)",
        )
        if not asyncio.iscoroutine(main):
            raise TypeError(
                f"loopwise.run() takes a coroutine, got {main!r}: call the async function"
            )
        factory = loop_factory(uvloop)
    except BaseException:
        if asyncio.iscoroutine(main):
            main.close()
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main, context=home_context(runner.get_loop()))
