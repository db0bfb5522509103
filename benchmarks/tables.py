"""The benchmark tables of README.md and docs/*.md, generated from benchmarks/results/*.json.

    python benchmarks/tables.py --write    # rewrite every table between its marker comments
    python benchmarks/tables.py --check    # exit 1 when a table and its results file disagree

A table sits between ``<!-- benchmark-table: NAME ... -->`` and ``<!-- end benchmark-table:
NAME -->``; NAME says how it is drawn and from which results files (:data:`TABLES`). Each
table ends with a line saying the command, the date and the machine it was measured on.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness

ROOT = Path(__file__).resolve().parent.parent
Document = dict[str, Any]
Row = dict[str, Any]
BLOCK = re.compile(
    r"(?P<start><!-- benchmark-table: (?P<name>[\w-]+)[^>]*-->\n)"
    r"(?P<body>.*?)"
    r"(?P<end><!-- end benchmark-table: (?P=name) -->)",
    re.DOTALL,
)


class TableError(Exception):
    """A table cannot be drawn: a results file is missing or lacks what the table shows."""


# -- formatting -----------------------------------------------------------------------------


def seconds(value: float) -> str:
    if value < 1:
        return f"{value:.2f} s"
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


def times(value: float) -> str:
    return f"{value:.2f}x"


def rows_of(document: Document, part: str) -> list[Row]:
    rows = document["summary"].get(part)
    if not rows:
        raise TableError(f"{document['benchmark']}: no {part!r} rows in its results")
    return list(rows)


def find(rows: list[Row], **where: Any) -> Row:
    for row in rows:
        if all(row.get(k) == v for k, v in where.items()):
            return row
    raise TableError(f"no results row with {where}")


def provenance(*documents: Document) -> str:
    """The command(s), dates and machine the figures come from."""
    commands = "; ".join(f"`{d['command']}` ({d['started'][:10]})" for d in documents)
    machine = documents[0]["machine"]
    text = (
        f"Measured with {commands} on {machine['cores']} cores ({machine['cpu']}), "
        f"{machine['python']}, load average {', '.join(map(str, machine['load_average']))} "
        "at the start"
    )
    note = machine.get("note")
    return f"_{text}; {note}._" if note else f"_{text}._"


def markdown(header: Sequence[str], align: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -- the tables -----------------------------------------------------------------------------


def check_table(aiohttp: Document, homeassistant: Document) -> str:
    columns = []
    for document in (aiohttp, homeassistant):
        tools = rows_of(document, "tools")
        cold, warm = find(tools, tool="loopwise cold"), find(tools, tool="loopwise warm")
        ruff = find(tools, tool="ruff warm")
        flake8 = next(r for r in tools if r["tool"].startswith("flake8"))
        subset = next((r for r in tools if r["tool"] == "loopwise cold (flake8 subset)"), None)
        against = subset or cold
        step = document["options"]["flake8_every"]
        flake8_cell = seconds(flake8["wall"])
        if subset is not None:
            flake8_cell += (
                f" on 1 file in {step} (loopwise: {seconds(subset['wall'])} on the same files)"
            )
        columns.append(
            {
                "title": f"{'aiohttp' if document is aiohttp else 'Home Assistant'} "
                f"({round(cold['tree_lines'] / 1000):,}k lines)",
                "cold": seconds(cold["wall"]),
                "warm": seconds(warm["wall"]),
                "flake8": flake8_cell,
                "ruff": seconds(ruff["wall"]),
                "speedup": f"**{flake8['wall'] / against['wall']:.0f}x faster** "
                f"({flake8['cpu'] / against['cpu']:.0f}x less CPU)",
                "slower": f"{warm['wall'] / ruff['wall']:.1f}x the time",
            }
        )
    cores = aiohttp["machine"]["cores"]
    labels = [
        ("cold", "loopwise, cold (no cache)"),
        ("warm", "loopwise, warm (cache)"),
        ("flake8", f"flake8 + flake8-async (`-j{cores}`)"),
        ("ruff", "ruff `--select ASYNC`, warm"),
        ("speedup", "**loopwise cold vs flake8-async**"),
        ("slower", "loopwise warm vs ruff warm"),
    ]
    table = markdown(
        ["", *(c["title"] for c in columns)],
        ["---", *("---:" for _ in columns)],
        [[label, *(c[key] for c in columns)] for key, label in labels],
    )
    return f"{table}\n\n{provenance(aiohttp, homeassistant)}"


DOCTOR_MODES = {
    "plain": "plain",
    "doctor": "**loopwise doctor (defaults)**",
    "doctor-coros": "doctor with `track_coroutines=True`",
    "doctor-monitor": "doctor with `monitor=True`, a `loopwise top` client attached",
    "aiomonitor": "aiomonitor (its task-factory hook)",
    "debug": "`PYTHONASYNCIODEBUG=1`",
    "blockbuster": "blockbuster",
    "pyleak": "pyleak",
}


def require_rows(part: str, key: str, present: Iterable[object], expected: Iterable[str]) -> None:
    """Raise :class:`TableError` when some ``expected`` row of the table was not measured."""
    missing = sorted(set(expected) - {str(value) for value in present})
    if missing:
        raise TableError(
            f"results summary {part!r} has no row for {key} {', '.join(missing)}: "
            "rerun the benchmark (a table is never drawn without one of its rows)"
        )


def doctor_table(document: Document) -> str:
    require_rows("modes", "mode", (r["mode"] for r in rows_of(document, "modes")), DOCTOR_MODES)
    rows: list[list[str]] = []
    for row in rows_of(document, "modes"):
        mode = str(row["mode"])
        cells = [times(row["http_cpu_vs_plain"]), times(row["pingpong_cpu_vs_plain"])]
        if mode == "doctor":
            cells = [f"**{cell}**" for cell in cells]
        rows.append([DOCTOR_MODES.get(mode, mode), *cells])
    header = ["mode", "aiohttp server+client (CPU time)", "queue ping-pong (CPU time)"]
    return f"{markdown(header, ['---'] * 3, rows)}\n\n{provenance(document)}"


CONTENDERS = {
    "queue pool": "hand-written `asyncio.Queue` worker pool",
    "loopwise.amap unordered": "`loopwise.amap`, unordered",
    "loopwise.amap ordered": "`loopwise.amap`, ordered",
    "gather+Semaphore": "`asyncio.gather` + `Semaphore`",
    "aiometer.amap": "`aiometer.amap`",
    "aiostream map": "`aiostream` `map(task_limit=100)`",
}


def items(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def patterns_table(document: Document) -> str:
    map_rows = [r for r in rows_of(document, "map") if r["workload"] == "trivial"]
    require_rows("map", "contender", (r["contender"] for r in map_rows), CONTENDERS)
    sizes = sorted({int(r["n"]) for r in map_rows})
    # every ratio is to the queue pool, measured at each size
    queue_pool_sizes = {int(r["n"]) for r in map_rows if r["contender"] == "queue pool"}
    require_rows("map", "queue pool at n", map(str, queue_pool_sizes), map(str, sizes))
    largest = sizes[-1]
    rows = []
    for contender, label in CONTENDERS.items():
        cells = []
        for n in sizes:
            found = [r for r in map_rows if r["contender"] == contender and r["n"] == n]
            if not found:
                cells.append("-")
            elif contender == "queue pool":
                cells.append(f"{found[0]['cpu_us']:.2f} µs")
            else:
                cpu, ratio = found[0]["cpu_us"], found[0]["vs_queue_pool"]
                cells.append(
                    f"{cpu:.2f} µs ({ratio:.2f}x)" if cpu < 10 else f"{cpu:.1f} µs ({ratio:.1f}x)"
                )
        at_largest = [r for r in map_rows if r["contender"] == contender and r["n"] == largest]
        cells.append(f"+{max(at_largest[0]['rss_mb'], 0):.0f} MB" if at_largest else "-")
        rows.append([label, *cells])
    header = ["", *(f"{items(n)} items" for n in sizes), f"peak RSS at {items(largest)}"]
    table = markdown(header, ["---", *("---:" for _ in range(len(sizes) + 1))], rows)
    return f"{table}\n\n{provenance(document)}"


CLIENTS = {
    "loopwise": "loopwise `Client` (retries on)",
    "aiohttp": "aiohttp, one shared session",
    "aiohttp-per-request": "aiohttp, a session per request",
    "httpx": "httpx.AsyncClient",
}


def client_table(document: Document) -> str:
    rows = rows_of(document, "clients")
    body = []
    for client, label in CLIENTS.items():
        cells = [label]
        for loop in ("asyncio", "uvloop"):
            row = find(rows, client=client, loop=loop)
            cells += [f"{row['rate']:,.0f}", times(row["rate_ratio"])]
        body.append(cells)
    header = ["client", "asyncio req/s", "vs aiohttp", "uvloop req/s", "vs aiohttp"]
    table = markdown(header, ["---", "---:", "---:", "---:", "---:"], body)
    return f"{table}\n\n{provenance(document)}"


def client_full_table(document: Document) -> str:
    rows = rows_of(document, "clients")
    body = []
    for loop in ("asyncio", "uvloop"):
        for client, label in CLIENTS.items():
            row = find(rows, client=client, loop=loop)
            body.append(
                [
                    label,
                    loop,
                    f"{row['rate']:,.0f}",
                    times(row["rate_ratio"]),
                    f"{row['cpu_us']:,.0f}",
                    times(row["cpu_ratio"]),
                ]
            )
    header = ["client", "loop", "req/s", "vs aiohttp", "client CPU µs/req"]
    header.append("vs aiohttp (req per CPU s)")
    table = markdown(header, ["---", "---", "---:", "---:", "---:", "---:"], body)
    return f"{table}\n\n{provenance(document)}"


def _instruction_cell(rows: list[Row], stack: str, loop: str) -> str:
    ratio = find(rows, stack=stack, loop=loop)["ratio"]
    return f"{ratio:.2f}x ({1 / ratio:.2f}x)"


def server_table(document: Document) -> str:
    instructions = rows_of(document, "instructions")
    http = rows_of(document, "http")
    fanout = rows_of(document, "fanout")
    stalled = rows_of(document, "stalled")[0]
    loops = ("asyncio", "uvloop")

    def per_loop(render: Callable[[str], str]) -> list[str]:
        return [render(loop) for loop in loops]

    def measured(loop: str) -> str:
        row = find(http, stack="loopwise", loop=loop)
        return (
            f"{row['rate_ratio']:.2f}x ({row['rate_ratio_low']:.2f}-{row['rate_ratio_high']:.2f})"
        )

    def fan(loop: str) -> str:
        ratios = [r["rate_ratio"] for r in fanout if r["loop"] == loop]
        return " / ".join(f"{x:.2f}" for x in ratios) + "x the deliveries/s"

    first = find(instructions, stack="loopwise", loop="asyncio")["ratio"]
    rounds = document["options"]["http_rounds"]
    body = [
        [
            "JSON endpoint, `create_app()` stack vs bare aiohttp: instructions per request",
            f"{first:.2f}x ({1 / first:.2f}x the req/s they allow)",
            _instruction_cell(instructions, "loopwise", "uvloop"),
        ],
        [
            "its speed relative to aiohttp + one no-op middleware (aiohttp's own cost of having "
            "any), by instructions",
            *per_loop(
                lambda loop: f"{find(instructions, stack='loopwise', loop=loop)['vs_noop']:.3f}x"
            ),
        ],
        [
            f"the same, measured requests/s vs bare aiohttp (median of {rounds} rounds, range)",
            *per_loop(measured),
        ],
        [
            "the four middlewares stacked separately: instructions",
            *per_loop(lambda loop: _instruction_cell(instructions, "separate", loop)),
        ],
        [
            "`request_id_middleware()` alone: instructions",
            *per_loop(lambda loop: _instruction_cell(instructions, "request_id", loop)),
        ],
        [
            "WebSocket fan-out to 100 / 1000 clients, hub vs naive `for ws in clients` loop",
            *per_loop(fan),
        ],
        [
            f"the same with one client that never reads ({stalled['messages']} x 32 KiB messages)",
            f"naive loop stuck after {stalled['naive_published']:.0f} messages; hub delivers "
            f"{stalled['hub_published']:.0f} to everyone else",
            "",
        ],
    ]
    table = markdown(["", *loops], ["---", "---:", "---:"], body)
    return f"{table}\n\n{provenance(document)}"


STACKS = {
    "aiohttp": "bare aiohttp",
    "noop": "aiohttp + one no-op middleware",
    "loopwise": "`create_app()` stack (one middleware)",
    "separate": "the four middlewares stacked separately",
    "request_id": "`request_id_middleware()` alone",
}


def server_instructions_table(document: Document) -> str:
    rows = rows_of(document, "instructions")
    body = []
    for stack, label in STACKS.items():
        cells = [label]
        for loop in ("asyncio", "uvloop"):
            row = find(rows, stack=stack, loop=loop)
            count = f"{row['instructions']:,.0f}"
            cells.append(count if stack == "aiohttp" else f"{count} ({row['ratio']:.3f}x)")
        body.append(cells)
    header = ["JSON endpoint", "instructions/request, asyncio", "uvloop"]
    requests = document["options"]["instruction_requests"]
    table = markdown(header, ["---", "---:", "---:"], body)
    return f"{table}\n\n{requests} requests counted after a warm-up. {provenance(document)}"


def server_fanout_table(document: Document) -> str:
    rounds = document["options"]["rounds"]
    body = [
        [
            f"{row['loop']}, {row['clients']} clients x {row['messages']} msgs",
            f"{row['naive_rate']:,.0f}/s, {row['naive_cpu_us']:.1f} µs",
            f"{row['hub_rate']:,.0f}/s, {row['hub_cpu_us']:.1f} µs",
            times(row["rate_ratio"]),
            times(row["cpu_ratio"]),
        ]
        for row in rows_of(document, "fanout")
    ]
    rounds_text = f"{rounds} round" + ("s" if rounds != 1 else "")
    header = [f"WebSocket fan-out, {rounds_text}", "naive loop", "`WebSocketHub`"]
    header += ["rate ratio", "CPU ratio"]
    table = markdown(header, ["---", "---:", "---:", "---:", "---:"], body)
    return f"{table}\n\n{provenance(document)}"


@dataclass(frozen=True)
class Table:
    sources: tuple[str, ...]  # results files, without .json
    render: Callable[..., str]


TABLES = {
    "check": Table(("check_speed-aiohttp", "check_speed-homeassistant"), check_table),
    "doctor": Table(("doctor_overhead",), doctor_table),
    "patterns": Table(("patterns",), patterns_table),
    "client": Table(("http_client",), client_table),
    "client-full": Table(("http_client",), client_full_table),
    "server": Table(("server",), server_table),
    "server-instructions": Table(("server",), server_instructions_table),
    "server-fanout": Table(("server",), server_fanout_table),
}


# -- the files ------------------------------------------------------------------------------


def render(name: str, results: Path) -> str:
    table = TABLES.get(name)
    if table is None:
        raise TableError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}")
    documents = []
    for source in table.sources:
        path = results / f"{source}.json"
        if not path.is_file():
            raise TableError(f"table {name!r} needs {path.name}: run its benchmark with --json")
        documents.append(_harness.load(path))
    try:
        return table.render(*documents)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        raise TableError(f"table {name!r}: its results lack {exc}") from exc


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def regenerate(text: str, results: Path) -> str:
    def fill(match: re.Match[str]) -> str:
        body = render(match["name"], results)
        return f"{match['start']}{body}\n{match['end']}"

    return BLOCK.sub(fill, text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite the tables in place")
    action.add_argument("--check", action="store_true", help="exit 1 when a table is stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: ours)")
    options = parser.parse_args(argv)
    results = options.root / "benchmarks" / "results"
    stale = []
    try:
        for page in pages(options.root):
            if not page.is_file():
                continue
            text = page.read_text(encoding="utf-8")
            updated = regenerate(text, results)
            if updated == text:
                continue
            relative = page.relative_to(options.root)
            if options.write:
                page.write_text(updated, encoding="utf-8")
                print(f"rewrote the tables of {relative}")
            else:
                names = [m["name"] for m in BLOCK.finditer(text)]
                fresh = {m["name"]: m["body"] for m in BLOCK.finditer(updated)}
                stale += [f"{relative}: table {n!r}" for n in names if fresh[n] != _body(text, n)]
    except (TableError, _harness.BenchmarkError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for entry in stale:
        print(f"{entry} disagrees with its results file", file=sys.stderr)
    if stale:
        print("run: python benchmarks/tables.py --write", file=sys.stderr)
        return 1
    return 0


def _body(text: str, name: str) -> str:
    return next(m["body"] for m in BLOCK.finditer(text) if m["name"] == name)


if __name__ == "__main__":
    sys.exit(main())
