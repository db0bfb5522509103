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


def _uvloop_factory(uvloop: bool | None) -> Callable[[], asyncio.AbstractEventLoop] | None:
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


def run(
    main: Coroutine[Any, Any, T], *, uvloop: bool | None = None, debug: bool | None = None
) -> T:
    """Run the coroutine ``main`` in a new event loop and return its result: the one entry point
    the loopwise docs recommend.

    Like :func:`asyncio.run` (a fresh loop, then cancels the tasks still pending, shuts down async
    generators and the default executor, and closes the loop), plus:

    * ``uvloop=None`` (default) uses uvloop when it is installed, ``True`` requires it (raises
      :class:`~loopwise.ConfigError` when missing: ``pip install 'loopwise[uvloop]'``),
      ``False`` never uses it.
    * :func:`loopwise.run_sync` called from worker threads started with ``asyncio.to_thread()``
      runs its coroutine on this loop.
    * Called inside a running event loop it raises :class:`~loopwise.UsageError` (``await main``
      there instead) and closes ``main`` so no "never awaited" warning follows.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if asyncio.iscoroutine(main):
            main.close()
        raise UsageError(
            "loopwise.run() was called inside a running event loop: `await` the coroutine there "
            "instead (or run it in another thread with loopwise.LoopThread)"
        )
    if not asyncio.iscoroutine(main):
        raise TypeError(f"loopwise.run() takes a coroutine, got {main!r}: call the async function")
    try:
        factory = _uvloop_factory(uvloop)
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        context = contextvars.copy_context()
        context.run(home_loop.set, runner.get_loop())
        return runner.run(main, context=context)
