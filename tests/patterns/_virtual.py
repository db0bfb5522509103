"""A virtual-clock event loop for tests: time jumps to the next timer instead of sleeping.

``loop.time()`` starts at 0 and only moves when the loop has nothing ready to run, straight to
the next scheduled timer, so a test of a 10-second schedule takes microseconds and its times
are exact. Real I/O (threads waking the loop) still works.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events  # type: ignore[no-any-return]
        if timeout is None:  # nothing scheduled: wait for real I/O (another thread, say)
            return super().select(None)  # type: ignore[no-any-return]
        self.clock += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._virtual = _VirtualSelector()
        super().__init__(self._virtual)
        self.timers_scheduled = 0
        self.iterations = 0
        self.on_iteration: Callable[[int], None] | None = None

    def time(self) -> float:
        return self._virtual.clock  # type: ignore[no-any-return]

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        self.timers_scheduled += 1
        return super().call_at(when, callback, *args, context=context)

    def _run_once(self) -> None:
        self.iterations += 1
        if self.on_iteration is not None:
            self.on_iteration(self.iterations)
        super()._run_once()  # type: ignore[misc]

    def stall(self, seconds: float) -> None:
        """Pretend the current callback blocked the loop for ``seconds``."""
        self._virtual.clock += seconds


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh virtual-clock loop; fail if it leaves tasks behind."""

    async def checked() -> T:
        result = await main
        for _ in range(3):  # let cancelled tasks finish their last step
            await asyncio.sleep(0)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"tasks left running: {leftover}"
        return result

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(checked())


def virtual(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Decorate an async test to run on a virtual-clock loop (and check for leftover tasks)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return run_virtual(fn(*args, **kwargs))

    return wrapper


def vloop() -> VirtualClockLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualClockLoop)
    return loop


def now() -> float:
    return asyncio.get_running_loop().time()
