"""The GIL fallback: ``faulthandler`` dumps the stacks when a C call freezes every Python thread.

A C call that keeps the GIL also freezes the watchdog thread; ``faulthandler``'s own C thread
still runs, so the doctor keeps ``dump_traceback_later`` armed while loops are watched and reads
the dump afterwards. The timer is disarmed around ``fork()``: a child inheriting it armed hangs
in its next ``faulthandler`` call.
"""

from __future__ import annotations

import collections
import contextlib
import faulthandler
import os
import re
import tempfile
import threading
from typing import IO

from loopwise.doctor._model import Frame

__all__ = ["Fallback", "parse_faulthandler_dump"]

_Stack = tuple[Frame, ...]

_HEADER = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-fA-F]+)")
_FRAME_LINE = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')


def parse_faulthandler_dump(text: str) -> dict[int, _Stack]:
    """The stacks of a ``faulthandler`` dump by thread id, innermost frame last."""
    stacks: dict[int, list[Frame]] = {}
    current: list[Frame] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = stacks.setdefault(int(header.group(1), 16), [])
            continue
        frame = _FRAME_LINE.match(line)
        if frame and current is not None:
            current.append(Frame(frame.group(1), int(frame.group(2)), frame.group(3)))
        elif not line.strip():
            current = None
    return {tid: tuple(reversed(frames)) for tid, frames in stacks.items()}


class Fallback:
    """``faulthandler.dump_traceback_later`` armed while loops run, read after a freeze."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._file: IO[bytes] | None = None
        self._armed_at: float | None = None
        # Held across fork(): faulthandler's timer thread is not inherited, and a child that
        # inherits it armed hangs in its next dump_traceback_later/cancel call.
        self._lock = threading.Lock()
        self._forking = False
        self.dumps: collections.deque[tuple[float, dict[int, _Stack]]] = collections.deque(
            maxlen=16
        )

    def arm(self, now: float) -> None:
        with self._lock:
            if self._forking or (
                self._armed_at is not None and now - self._armed_at < self.timeout / 2
            ):
                return
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
                faulthandler.dump_traceback_later(self.timeout, repeat=False, file=self._file)
                self._armed_at = now
            except (OSError, RuntimeError, ValueError):
                self._armed_at = None

    def disarm(self) -> None:
        with self._lock:
            self._disarm()

    def _disarm(self) -> None:
        if self._armed_at is not None:
            faulthandler.cancel_dump_traceback_later()
            self._armed_at = None

    def before_fork(self) -> None:
        """Disarm and keep disarmed until :meth:`after_fork` (so no child inherits it armed)."""
        self._lock.acquire()
        self._forking = True
        self._disarm()

    def after_fork(self, *, child: bool) -> None:
        """Allow arming again; in a child, forget the parent's dump file (it is shared)."""
        self._forking = False
        if child:
            self._lock = threading.Lock()
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
            self.dumps.clear()
        else:
            self._lock.release()

    def collect(self, now: float) -> None:
        """Read a dump written since the last call, if any."""
        if self._file is None:
            return
        fd = self._file.fileno()
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return
            data = os.pread(fd, size, 0)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError:
            return
        self._armed_at = None  # a dump that fired is no longer armed
        self.dumps.append((now, parse_faulthandler_dump(data.decode("utf-8", "replace"))))

    def take(self, thread_id: int | None, start: float, end: float) -> _Stack | None:
        for seen, stacks in self.dumps:
            if start <= seen <= end and thread_id in stacks:
                return stacks[thread_id]
        return None

    def close(self) -> None:
        with self._lock:
            self._disarm()
            if self._file is not None:
                self._file.close()
                self._file = None
