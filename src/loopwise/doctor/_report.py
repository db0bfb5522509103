"""Rendering events: a grouped text report for people and a JSON document for tools."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from loopwise.doctor._frames import is_user_file, library_name
from loopwise.doctor._model import Event, EventKind, Frame

__all__ = ["format_report", "report_json", "write_json"]

_TITLES = {
    EventKind.BLOCKED: "event loop blocked",
    EventKind.EXCEPTION_NOT_RETRIEVED: "task exception never retrieved",
    EventKind.TASK_LEAK: "task still pending",
    EventKind.NEVER_AWAITED: "coroutine never awaited",
    EventKind.UNCLOSED_RESOURCE: "resource never closed",
}
_SHOWN_WITHOUT_USER_FRAMES = 3


def _group(events: Iterable[Event]) -> list[list[Event]]:
    groups: dict[tuple[EventKind, Frame | None, str], list[Event]] = {}
    for event in events:
        key = (event.kind, event.location, "" if event.location else event.message)
        groups.setdefault(key, []).append(event)

    def order(group: list[Event]) -> tuple[int, float]:
        worst = max((e.duration_ms or 0.0) for e in group)
        return (group[0].kind.severity, -worst)

    return sorted(groups.values(), key=order)


def _fold_line(frames: Sequence[Frame], where: str = "") -> str:
    names = ", ".join(dict.fromkeys(library_name(f.file) for f in reversed(frames)))
    noun = "library frame" if len(frames) == 1 else "library frames"
    return f"      … {len(frames)} {noun}{where} ({names})"


def _stack_lines(stack: Sequence[Frame], *, full_stacks: bool = False) -> list[str]:
    """The stack, outermost first, your frames marked ``>``.

    Unless ``full_stacks``, runs of library frames between yours are folded into one
    "… N library frames" line, and those outside your outermost frame (the interpreter,
    asyncio's runner, pytest, pluggy) are summed up on a last line, so your frames come first.
    """
    if full_stacks:
        return [f"    {'>' if is_user_file(f.file) else ' '} {f.at} in {f.function}" for f in stack]
    mine = [i for i, frame in enumerate(stack) if is_user_file(frame.file)]
    if not mine:  # no frame of yours: the innermost library frames say the most
        shown = list(stack[-_SHOWN_WITHOUT_USER_FRAMES:])
        outer = list(stack[: len(stack) - len(shown)])
        lines = [f"      {f.at} in {f.function}" for f in shown]
    else:
        outer = list(stack[: mine[0]])
        lines = []
        run: list[Frame] = []
        for frame in stack[mine[0] :]:
            if is_user_file(frame.file):
                if run:
                    lines.append(_fold_line(run))
                    run = []
                lines.append(f"    > {frame.at} in {frame.function}")
            else:
                run.append(frame)
        if run:
            lines.append(_fold_line(run))
    if outer:
        lines.append(_fold_line(outer, " outside"))
    return lines


def format_report(events: Sequence[Event], *, full_stacks: bool = False) -> str:
    """A readable report: grouped by kind (most severe first), then by location.

    Library frames are folded unless ``full_stacks`` (see :func:`_stack_lines`).
    """
    if not events:
        return "loopwise doctor: no problems found\n"
    noun = "finding" if len(events) == 1 else "findings"
    lines = [f"loopwise doctor: {len(events)} {noun}"]
    for group in _group(events):
        first = group[0]
        where = first.location
        title = _TITLES[first.kind]
        head = f"{where.at}" if where is not None else "(location unknown)"
        times = f" (x{len(group)})" if len(group) > 1 else ""
        lines.append("")
        lines.append(f"[{first.kind.value}] {title} at {head}{times}")
        worst = max(group, key=lambda e: e.duration_ms or 0.0)
        lines.append(f"  {worst.message}")
        if len(worst.samples) > 1:
            for frame, count in worst.samples[1:4]:
                lines.append(f"  also sampled at {frame.at} ({count})")
        lines.extend(_stack_lines(worst.stack, full_stacks=full_stacks))
    return "\n".join(lines) + "\n"


def report_json(events: Sequence[Event]) -> dict[str, Any]:
    """``{"events": [...]}``, each event as :meth:`Event.to_json` gives it, in discovery order."""
    return {"events": [event.to_json() for event in events]}


def write_json(path: str, events: Sequence[Event]) -> None:
    """Write :func:`report_json` to ``path`` (UTF-8, indented)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report_json(events), handle, indent=2)
        handle.write("\n")
