"""The doctor's findings: immutable events made of source frames."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventKind", "Frame", "display_path", "set_base_directory"]

_base: str | None = None
_shown: dict[str, str] = {}


def set_base_directory(path: str) -> None:
    """Show paths below ``path`` relative to it from now on (the doctor uses its start cwd)."""
    global _base
    _base = os.path.abspath(path)
    _shown.clear()


def display_path(file: str) -> str:
    """``file`` as reports show it: relative to the base directory when below it, else absolute.

    Pseudo-files such as ``<string>`` are shown as they are.
    """
    shown = _shown.get(file)
    if shown is None:
        if file.startswith("<"):
            shown = file
        else:
            base = _base if _base is not None else os.getcwd()
            path = os.path.normpath(os.path.join(base, file))
            shown = os.path.relpath(path, base) if path.startswith(base + os.sep) else path
        _shown[file] = shown
    return shown


class EventKind(enum.StrEnum):
    """What the doctor found; the value is the ``kind`` written to the JSON report.

    Members are listed most severe first, the order of the text report.
    """

    BLOCKED = "blocked"
    EXCEPTION_NOT_RETRIEVED = "exception-not-retrieved"
    TASK_LEAK = "task-leak"
    NEVER_AWAITED = "never-awaited"
    UNCLOSED_RESOURCE = "unclosed-resource"

    @property
    def severity(self) -> int:
        """0 for the most severe kind, larger for milder ones."""
        return list(EventKind).index(self)


@dataclass(frozen=True, slots=True)
class Frame:
    """One source location: ``file`` as the interpreter knows it, 1-based ``line``."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.at} in {self.function}"

    @property
    def at(self) -> str:
        """``file:line`` as reports show it (see :func:`display_path`)."""
        return f"{display_path(self.file)}:{self.line}"

    def to_json(self) -> dict[str, Any]:
        """The frame as ``{"file": …, "line": …, "function": …}``, the file as reports show it."""
        return {"file": display_path(self.file), "line": self.line, "function": self.function}


@dataclass(frozen=True, slots=True)
class Event:
    """One finding.

    ``stack`` holds the frames that locate it, innermost last: the loop thread's stack while it
    was blocked, the exception's traceback, or the creation site. ``location`` is the frame a
    user should look at first (the innermost frame of their own code), ``None`` when unknown.
    ``samples`` is, for a blocked loop, each distinct location seen while blocked with the number
    of stack samples taken there, most frequent first.
    """

    kind: EventKind
    message: str
    stack: tuple[Frame, ...] = ()
    location: Frame | None = None
    duration_ms: float | None = None
    samples: tuple[tuple[Frame, int], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The event in the documented JSON shape."""
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "message": self.message,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 1),
            "stack": [frame.to_json() for frame in self.stack],
            "location": None if self.location is None else self.location.to_json(),
        }
        if self.samples:
            data["samples"] = [{**frame.to_json(), "count": n} for frame, n in self.samples]
        return data
