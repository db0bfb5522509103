"""What ``loopwise ps``, ``pstree`` and ``top`` print, made from a monitor's answer."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["await_tree", "format_ps", "format_pstree", "render_top"]

Record = dict[str, Any]


def _at(place: dict[str, Any] | None) -> str:
    """``file:line``; a library file outside the current directory by its last two parts."""
    if not place:
        return "-"
    file = str(place["file"])
    if os.path.isabs(file):
        file = os.path.join(*file.split(os.sep)[-2:])
    return f"{file}:{place['line']}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f}s"
    if value < 3600:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _awaits(record: Record) -> str:
    awaits = record.get("awaits")
    return "-" if not awaits else str(awaits["what"])


def _natural(record: Record) -> tuple[int, str, int]:
    match = re.fullmatch(r"(.*?)(\d+)", record["name"])
    name, number = (match.group(1), int(match.group(2))) if match else (record["name"], -1)
    return (record["loop"], name, number)


def _loop_line(answer: dict[str, Any]) -> list[str]:
    lines = []
    for loop in answer.get("loops", []):
        line = (
            f"loop {loop['index']} ({loop['thread'] or '?'}): lag now {_ms(loop['lag_ms'])},"
            f" p99 last minute <= {_ms(loop['p99_ms'])}"
        )
        if loop.get("blocked_at"):
            line += f"; BLOCKED now at {_at(loop['blocked_at'])}"
        lines.append(line)
    return lines


def format_ps(answer: dict[str, Any]) -> str:
    """One line per task: id, name, coroutine, state, age, suspended-at line, what it awaits."""
    tasks = sorted(answer["tasks"], key=_natural)
    head = f"process {answer['pid']} (python {answer['python']}): {answer['tasks_total']} tasks" + (
        f", {len(tasks)} shown" if answer.get("truncated") else ""
    )
    columns = ("ID", "NAME", "COROUTINE", "STATE", "AGE", "AT", "AWAITS")
    rows = [
        (
            r["id"],
            r["name"],
            r["coroutine"],
            r["state"],
            _seconds(r["age_s"]),
            _at(r["at"]),
            _awaits(r),
        )
        for r in tasks
    ]
    widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    widths = [min(w, 40) for w in widths]

    def line(cells: tuple[str, ...]) -> str:
        shown = [c if i == len(cells) - 1 else c[: widths[i]] for i, c in enumerate(cells)]
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(shown)).rstrip()

    return "\n".join([head, *_loop_line(answer), line(columns), *map(line, rows)]) + "\n"


def await_tree(tasks: list[Record]) -> list[dict[str, Any]]:
    """The await graph as nested nodes ``{"task", "relation", "children", "repeat"}``.

    A task's children are the tasks it waits for: those it awaits, those of the TaskGroup it
    waits to end, the holder of the lock it waits for, then its TaskGroup's other tasks.
    ``repeat`` is ``"cycle"`` for a task already on the path from the root (a cycle: shown, not
    followed) and ``"shown"`` for one already shown elsewhere.
    """
    by_id = {r["id"]: r for r in tasks}
    edges: dict[str, list[tuple[str, str]]] = {r["id"]: [] for r in tasks}
    for record in sorted(tasks, key=_natural):
        awaits = record.get("awaits") or {}
        relation = "holds the lock" if awaits.get("kind") == "lock" else "awaited"
        if awaits.get("kind") == "taskgroup":
            relation = "in its TaskGroup"
        for target in awaits.get("tasks", []):
            if target in by_id:
                edges[record["id"]].append((target, relation))
        parent = record.get("group_parent")
        if parent in edges and all(t != record["id"] for t, _ in edges[parent]):
            edges[parent].append((record["id"], "in its TaskGroup"))
    targets = {t for children in edges.values() for t, _ in children}
    roots = [r for r in sorted(tasks, key=_natural) if r["id"] not in targets]
    shown: set[str] = set()

    def build(task_id: str, relation: str | None, path: tuple[str, ...]) -> dict[str, Any]:
        node: dict[str, Any] = {"task": by_id[task_id], "relation": relation, "children": []}
        if task_id in path:
            node["repeat"] = "cycle"
            return node
        if task_id in shown:
            node["repeat"] = "shown"
            return node
        shown.add(task_id)
        node["repeat"] = None
        node["children"] = [build(t, how, (*path, task_id)) for t, how in edges[task_id]]
        return node

    forest = [build(r["id"], None, ()) for r in roots]
    # Tasks only reachable through a cycle have no root: start from the first one left.
    for record in sorted(tasks, key=_natural):
        if record["id"] not in shown:
            forest.append(build(record["id"], None, ()))
    return forest


def _node_text(node: dict[str, Any]) -> str:
    record = node["task"]
    text = f"{record['name']} {record['coroutine']}() {record['state']} at {_at(record['at'])}"
    awaits = record.get("awaits")
    if awaits:
        text += f" -> {awaits['what']}"
    if node["relation"]:
        text = f"[{node['relation']}] {text}"
    if node["repeat"] == "cycle":
        text = f"[{node['relation']}] {record['name']} (CYCLE: already on this path, not followed)"
    elif node["repeat"] == "shown":
        text = f"[{node['relation']}] {record['name']} (shown above)"
    return text


def _tree_lines(node: dict[str, Any], prefix: str, last: bool, root: bool) -> Iterator[str]:
    if root:
        yield _node_text(node)
        inner = ""
    else:
        yield f"{prefix}{'└── ' if last else '├── '}{_node_text(node)}"
        inner = prefix + ("    " if last else "│   ")
    children = node["children"]
    for i, child in enumerate(children):
        yield from _tree_lines(child, inner, i == len(children) - 1, False)


def format_pstree(answer: dict[str, Any]) -> str:
    """The await graph as text: each task above the tasks it waits for."""
    forest = await_tree(answer["tasks"])
    lines = [f"process {answer['pid']} (python {answer['python']}): {answer['tasks_total']} tasks"]
    for node in forest:
        lines.extend(_tree_lines(node, "", True, True))
    return "\n".join(lines) + "\n"


def render_top(answer: dict[str, Any]) -> Any:
    """A rich renderable of one ``top`` frame."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    summary = answer["summary"]
    states = ", ".join(f"{n} {s}" for s, n in summary["by_state"].items()) or "none"
    title = Text.assemble(
        (f"loopwise top {answer['pid']}", "bold"),
        f"  python {answer['python']}  up {_seconds(answer['uptime_s'])}  "
        f"{summary['tasks_total']} tasks ({states})",
    )
    loops = Table(title="Event loops", title_justify="left", expand=True)
    for column in ("loop", "thread", "lag now", "p99 (1 min)", "max (1 min)", "blocked now at"):
        loops.add_column(column)
    for loop in answer["loops"]:
        loops.add_row(
            str(loop["index"]),
            str(loop["thread"] or "?"),
            _ms(loop["lag_ms"]),
            "<= " + _ms(loop["p99_ms"]),
            "<= " + _ms(loop["max_ms"]),
            Text(_at(loop["blocked_at"]), style="bold red") if loop["blocked_at"] else "-",
        )
    coroutines = Table(title="Tasks by coroutine", title_justify="left", expand=True)
    coroutines.add_column("coroutine")
    coroutines.add_column("tasks", justify="right")
    for name, count in summary["by_coroutine"].items():
        coroutines.add_row(name, str(count))
    waiting = Table(title="Longest waiting", title_justify="left", expand=True)
    for column in ("task", "coroutine", "waiting", "at", "awaits"):
        waiting.add_column(column, overflow="fold")
    for record in summary["longest_waiting"]:
        waiting.add_row(
            record["name"],
            record["coroutine"],
            ">= " + _seconds(record["suspended_s"]),
            _at(record["at"]),
            _awaits(record),
        )
    blocked = Table(title="Last blocked", title_justify="left", expand=True)
    for column in ("ago", "blocked for", "at"):
        blocked.add_column(column, overflow="fold")
    for event in answer["blocked"][:8]:
        blocked.add_row(
            _seconds(event["ago_s"]) + " ago", _ms(event["duration_ms"]), _at(event["location"])
        )
    if not answer["blocked"]:
        blocked.add_row("-", "-", "never")
    return Group(title, loops, coroutines, waiting, blocked)
