"""Handing the GIL from a busy loop thread to the doctor's thread at a moment that suits the loop.

A thread that wakes up and needs the GIL waits on CPython's GIL condition with a 5 ms timeout,
and only a timeout lets it ask the holder to let go. An event loop that never idles releases
the GIL for a microsecond around every ``select`` (and every socket call): each release wakes
the waiting thread, which finds the GIL taken again and starts a new 5 ms wait. So the
doctor's thread, woken for a 50 ms tick, could wait hundreds of milliseconds, woken a thousand
times a second, and every one of those wake-ups cost the loop thread a futex call and a
contended lock: measured, 3-4 % of a busy loop's throughput for 2 ticks in 0.6 s.

The :class:`Handoff` lets the loop thread give the GIL away on purpose instead: a thread of the
doctor says when it will want the GIL next (:meth:`Handoff.expect`); a loop thread that
reaches the end of an iteration after that moment waits, with the GIL released, until the
doctor's thread has done its work (:meth:`Handoff.done`) — at most :data:`MAX_YIELD` seconds
per wait. How often a loop thread waits for one moment is its watch's business (a few times, a
few milliseconds apart: see ``LoopWatch._yield_if_due``), so a doctor thread that is late costs
the loop a few milliseconds per moment, and one that is gone (a forked child inherits the
parent's moment but not its thread) a few milliseconds in all.

The wait releases the GIL to whichever thread wants it: beside a program thread that is busy
in Python, that thread may take it before the doctor's thread does.
"""

from __future__ import annotations

import contextlib
import threading

__all__ = ["MAX_YIELD", "Handoff", "yield_to_doctor"]

#: The longest a loop thread waits for the doctor's thread at one expected moment (seconds).
MAX_YIELD = 0.001

_INF = float("inf")
_NEVER: tuple[float, threading.Lock | None] = (_INF, None)


class Handoff:
    """When the doctor's thread wants the GIL next, and the gate a loop thread waits at until then.

    ``state`` is read by loop threads once per iteration: ``(due, gate)``, replaced as a whole
    so that a reader never pairs one moment's time with another moment's gate. One thread
    names the moments (the watchdog); a moment named replaces the one before.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = _NEVER

    def __repr__(self) -> str:
        return f"<Handoff due={self.state[0]!r}>"

    def expect(self, due: float) -> threading.Lock:
        """Say that this thread will want the GIL at ``due`` (monotonic); then call :meth:`done`."""
        gate = threading.Lock()
        gate.acquire()
        self.state = (due, gate)
        return gate

    def done(self, gate: threading.Lock) -> None:
        """This thread has had the GIL it wanted: loop threads waiting at ``gate`` go on."""
        if self.state[1] is gate:
            self.state = _NEVER
        _open(gate)

    def close(self) -> None:
        """No more moments: let every waiting loop thread go."""
        gate = self.state[1]
        self.state = _NEVER
        if gate is not None:
            _open(gate)


def _open(gate: threading.Lock) -> None:
    with contextlib.suppress(RuntimeError):  # already open: done() and close() may both run
        gate.release()


def yield_to_doctor(gate: threading.Lock) -> None:
    """Called by a loop thread past the expected moment: wait (GIL released) until ``gate`` opens.

    Bounded by :data:`MAX_YIELD`; a gate that opens is left open for other loop threads.
    """
    if gate.acquire(timeout=MAX_YIELD):
        _open(gate)
