"""Rendering events: a grouped text report for people and a JSON document for tools."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from loopwise.doctor._frames import is_user_file
from loopwise.doctor._model import Event, EventKind, Frame

__all__ = ["format_report", "report_json", "write_json"]

_TITLES = {
    EventKind.BLOCKED: "event loop blocked",
    EventKind.EXCEPTION_NOT_RETRIEVED: "task exception never retrieved",
    EventKind.TASK_LEAK: "task still pending",
    EventKind.NEVER_AWAITED: "coroutine never awaited",
    EventKind.UNCLOSED_RESOURCE: "resource never closed",
}
_STACK_LINES = 8


def _group(events: Iterable[Event]) -> list[list[Event]]:
    groups: dict[tuple[EventKind, Frame | None, str], list[Event]] = {}
    for event in events:
        key = (event.kind, event.location, "" if event.location else event.message)
        groups.setdefault(key, []).append(event)

    def order(group: list[Event]) -> tuple[int, float]:
        worst = max((e.duration_ms or 0.0) for e in group)
        return (group[0].kind.severity, -worst)

    return sorted(groups.values(), key=order)


def _stack_lines(stack: Sequence[Frame]) -> list[str]:
    shown = list(stack[-_STACK_LINES:])
    lines = []
    if len(stack) > len(shown):
        lines.append(f"      ... {len(stack) - len(shown)} outer frames")
    for frame in shown:
        marker = ">" if is_user_file(frame.file) else " "
        lines.append(f"    {marker} {frame.at} in {frame.function}")
    return lines


def format_report(events: Sequence[Event]) -> str:
    """A readable report: grouped by kind (most severe first), then by location."""
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
        lines.extend(_stack_lines(worst.stack))
    return "\n".join(lines) + "\n"


def report_json(events: Sequence[Event]) -> dict[str, Any]:
    """``{"events": [...]}``, each event as :meth:`Event.to_json` gives it, in discovery order."""
    return {"events": [event.to_json() for event in events]}


def write_json(path: str, events: Sequence[Event]) -> None:
    """Write :func:`report_json` to ``path`` (UTF-8, indented)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report_json(events), handle, indent=2)
        handle.write("\n")
