"""Fork safety: after ``fork()`` the child's doctor is cleanly re-armed, never half-on.

The child of a fork gets a copy of the installed doctor but not its watchdog thread, nor the
thread behind ``faulthandler.dump_traceback_later``. Around every fork the doctor's
``faulthandler`` timer is disarmed (a child inheriting it armed hangs in its next
``faulthandler`` call) and its locks are held, so the child inherits a consistent state: it
forgets the parent's loops and watches its own with a fresh watchdog thread.
"""

from __future__ import annotations

import os
import threading

from loopwise.doctor import _doctor

__all__: list[str] = []

_forking: _doctor.Doctor | None = None


def _installed_doctor() -> _doctor.Doctor | None:
    if _doctor._active is not None:
        return _doctor._active
    ambient = _doctor._ambient
    return ambient if ambient is not None and ambient.installed else None


def _before_fork() -> None:
    global _forking
    _doctor._active_lock.acquire()
    _forking = _installed_doctor()
    if _forking is not None:
        _forking._watchdog.before_fork()


def _after_fork_in_parent() -> None:
    global _forking
    doctor, _forking = _forking, None
    if doctor is not None:
        doctor._watchdog.after_fork(child=False)
    _doctor._active_lock.release()


def _after_fork_in_child() -> None:
    global _forking
    doctor, _forking = _forking, None
    _doctor._active_lock = threading.Lock()
    if doctor is not None:
        doctor._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
