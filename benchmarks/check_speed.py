"""Time ``loopwise check`` against flake8 + flake8-async and ruff on large real codebases.

Run by hand (never from the tests)::

    python benchmarks/check_speed.py [--rounds 3] [--only aiohttp|homeassistant] [--json [PATH]]

It downloads code nobody here wrote from the package index at run time, into a directory outside the
repository (default: ``<system temp dir>/loopwise-check-speed``, reused between runs):

* aiohttp, as its source distribution (library, tests, examples);
* Home Assistant, as the newest wheel installable on this Python (a big asyncio application).

Then, with the unpacked tree as the working directory (so each tool's cache lands there), it
times each tool in a subprocess, in interleaved rounds, and prints medians of wall and CPU
seconds (the child's CPU, its worker processes included):

* loopwise cold: ``loopwise check --no-cache --exit-zero --format json .``
* loopwise warm: the same without ``--no-cache`` (the cache is filled once, untimed)
* flake8: ``flake8 --isolated --select=ASYNC -j CORES`` with flake8-async installed; on a
  tree much bigger than 100k lines it checks every k-th file only (``--flake8-every``), and
  loopwise cold is timed on that same subset for the ratio
* ruff cold / warm: ``ruff check --isolated --select ASYNC`` with and without ``--no-cache``

flake8, flake8-async and ruff are pinned and installed into a throwaway environment under the
system temp dir (reused while the pins do not change), never into the active one.

Goals (issue 2): loopwise cold at least 20x faster than flake8 + flake8-async, and loopwise
warm within 3x of ruff warm. Files loopwise could not check (``syntax-error``, ``io-error``,
``internal-error``) are listed after the table: an ``internal-error`` is a bug in loopwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import _harness

CODEBASES = ("aiohttp", "homeassistant")
ERROR_CODES = frozenset({"syntax-error", "io-error", "internal-error"})
PRUNED_DIRS = frozenset({"__pycache__", "node_modules", "build", "dist", "venv"})
FLAKE8_TARGET_LINES = 100_000  # "auto" sampling keeps flake8 to about this many lines
FLAKE8_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+) ")


# -- tools ----------------------------------------------------------------------------------


PEERS = ("flake8==7.5.0", "flake8-async==26.8.1", "ruff==0.17.6")


def ensure_peers() -> _harness.PeerEnv:
    """flake8, flake8-async and ruff, pinned, in a throwaway environment (never the active one)."""
    return _harness.peer_env(PEERS)


def loopwise_command() -> list[str]:
    """The installed console script (not a pyenv shim, whose start-up would be timed too)."""
    script = Path(sysconfig.get_path("scripts")) / "loopwise"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "loopwise.cli"]


def ruff_command(peers: _harness.PeerEnv) -> list[str]:
    """The ruff binary itself (the peers environment's), not a Python wrapper or a shim."""
    return [str(peers.script("ruff"))]


def flake8_command(peers: _harness.PeerEnv) -> list[str]:
    return [str(peers.script("flake8"))]


cores = _harness.cores


def version_of(argv: list[str]) -> str:
    done = subprocess.run([*argv, "--version"], capture_output=True, text=True, check=False)
    return " ".join((done.stdout or done.stderr).split()) if done.returncode == 0 else "?"


# -- downloads ------------------------------------------------------------------------------


def pip_download(downloads: Path, args: list[str]) -> Path:
    """Download one distribution into a fresh directory and return its file."""
    scratch = Path(tempfile.mkdtemp(prefix="download-", dir=downloads))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(scratch)]
    try:
        subprocess.run([*command, *args], check=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(scratch)
        raise
    (found,) = list(scratch.iterdir())
    return found


def unpack_sdist(archive: Path, target: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=target.parent))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(scratch, filter="data")
        else:  # Python < 3.11.4: no extraction filters
            tar.extractall(scratch)  # an sdist we just fetched from the package index
    (top,) = list(scratch.iterdir())
    top.rename(target)
    shutil.rmtree(scratch)


def unpack_wheel(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as wheel:  # extractall drops absolute and ".." parts
        wheel.extractall(target)


def fetch(name: str, downloads: Path, refresh: bool) -> tuple[str, Path]:
    """(version, unpacked tree) of ``name``, downloaded unless a previous run left it."""
    sources = downloads / "src"
    sources.mkdir(parents=True, exist_ok=True)
    marker = sources / f"{name}.current"
    if not refresh and marker.is_file():
        root = sources / marker.read_text().strip()
        if root.is_dir():
            return root.name.split("-", 1)[1], root
    print(f"downloading {name} from the package index ...", file=sys.stderr)
    if name == "aiohttp":
        archive = pip_download(downloads, ["--no-binary", ":all:", "aiohttp"])
        stem = archive.name.removesuffix(".tar.gz")
        unpack = unpack_sdist
    else:
        try:  # the newest wheel this Python can install: its syntax is what we can parse
            archive = pip_download(downloads, ["--only-binary", ":all:", name])
        except subprocess.CalledProcessError:
            print(f"no {name} wheel for this Python; trying one for 3.13", file=sys.stderr)
            args = ["--only-binary", ":all:", "--python-version", "3.13", name]
            archive = pip_download(downloads, args)
        stem = "-".join(archive.name.split("-")[:2])
        unpack = unpack_wheel
    root = sources / stem
    if root.exists():
        shutil.rmtree(root)
    unpack(archive, root)
    shutil.rmtree(archive.parent)
    marker.write_text(stem + "\n")
    return stem.split("-", 1)[1], root


# -- the codebase ---------------------------------------------------------------------------


@dataclass
class Tree:
    name: str
    version: str
    root: Path
    files: list[str]  # relative to root, sorted
    lines: dict[str, int]

    @property
    def total_lines(self) -> int:
        return sum(self.lines.values())


def scan(name: str, version: str, root: Path) -> Tree:
    """The Python files a linter would see (hidden and build directories left out)."""
    lines: dict[str, int] = {}
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".") and d not in PRUNED_DIRS and not d.endswith(".egg-info")
        ]
        for filename in filenames:
            if filename.endswith(".py"):
                path = Path(directory, filename)
                lines[path.relative_to(root).as_posix()] = path.read_bytes().count(b"\n")
    return Tree(name, version, root, sorted(lines), lines)


def flake8_subset(tree: Tree, every: str) -> tuple[int, list[str]]:
    """Every k-th file (sorted by path): a deterministic sample across the whole tree."""
    if every != "auto":
        step = int(every)
    elif tree.total_lines <= 2 * FLAKE8_TARGET_LINES:
        step = 1
    else:
        step = math.ceil(tree.total_lines / FLAKE8_TARGET_LINES)
    return step, tree.files[::step]


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    timed_out: bool
    returncode: int
    stdout: str
    stderr: str


def run_timed(argv: Sequence[str], cwd: Path, timeout: float | None) -> Run:
    """Run one child and reap it with wait4: its rusage covers the worker processes it reaped.

    CPU is user + system seconds of the child and its workers; the peak is the largest
    resident set of any one of those processes.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # a timeout kills the whole group, workers included
        )
        reaped: list[tuple[int, int, resource.struct_rusage]] = []
        waiter = threading.Thread(target=lambda: reaped.append(os.wait4(process.pid, 0)))
        waiter.start()
        waiter.join(timeout)
        timed_out = waiter.is_alive()
        if timed_out:
            os.killpg(process.pid, signal.SIGKILL)
            waiter.join()
        wall = time.perf_counter() - start
        _, status, usage = reaped[0]
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return Run(wall, cpu, peak_mb, timed_out, process.returncode, stdout, stderr)


def count_json(stdout: str) -> tuple[Counter[str], list[dict[str, object]]]:
    items = json.loads(stdout) if stdout.strip() else []
    return Counter(str(item["code"]) for item in items), items


def count_flake8(stdout: str) -> tuple[Counter[str], list[dict[str, object]]]:
    counts: Counter[str] = Counter()
    for line in stdout.splitlines():
        match = FLAKE8_LINE.match(line)
        if match:
            counts[match["code"]] += 1
    return counts, []


@dataclass
class Tool:
    label: str
    argv: list[str]
    parse: Callable[[str], tuple[Counter[str], list[dict[str, object]]]]
    rounds: int
    files: int
    lines: int
    timeout: float | None = None
    is_loopwise: bool = False
    note: str = ""
    runs: list[Run] = field(default_factory=list)
    findings: Counter[str] = field(default_factory=Counter)
    items: list[dict[str, object]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def record(self, run: Run) -> None:
        self.runs.append(run)
        if run.timed_out:
            self.problems.append(f"timed out after {run.wall:.0f} s")
            return
        if self.is_loopwise and (run.returncode != 0 or "Traceback" in run.stderr):
            tail = " | ".join(run.stderr.strip().splitlines()[-3:])
            self.problems.append(f"exit {run.returncode}: {tail}")
        try:
            self.findings, self.items = self.parse(run.stdout)
        except (ValueError, KeyError, TypeError) as exc:
            self.problems.append(f"unreadable output ({exc}): {run.stderr.strip()[-300:]}")

    @property
    def wall(self) -> float:
        return _harness.summarize([run.wall for run in self.runs]).median

    @property
    def cpu(self) -> float:
        return _harness.summarize([run.cpu for run in self.runs]).median

    @property
    def peak_mb(self) -> float:
        return max(run.peak_mb for run in self.runs)

    @property
    def timed_out(self) -> bool:
        return any(run.timed_out for run in self.runs)


def clear_caches(root: Path) -> None:
    for name in (".loopwise_cache", ".ruff_cache"):
        shutil.rmtree(root / name, ignore_errors=True)


def bench_tree(
    tree: Tree, options: argparse.Namespace, peers: _harness.PeerEnv, results: _harness.Results
) -> list[Tool]:
    loopwise, ruff = loopwise_command(), ruff_command(peers)
    flake8 = [*flake8_command(peers), "--isolated", "--select=ASYNC", f"-j{cores()}"]
    lw_json = [*loopwise, "check", "--exit-zero", "--format", "json"]
    ruff_args = [*ruff, "check", "--isolated", "--select", "ASYNC", "--exit-zero"]
    ruff_json = [*ruff_args, "--output-format", "json"]
    step, subset = flake8_subset(tree, options.flake8_every)
    sampled = step > 1
    files, lines = len(tree.files), tree.total_lines
    sub_files, sub_lines = len(subset), sum(tree.lines[f] for f in subset)
    scope = subset if sampled else ["."]
    tools = [
        Tool(
            "loopwise cold",
            [*lw_json, "--no-cache", "."],
            count_json,
            options.rounds,
            files,
            lines,
            is_loopwise=True,
        ),
        Tool(
            "loopwise warm",
            [*lw_json, "."],
            count_json,
            options.rounds,
            files,
            lines,
            is_loopwise=True,
        ),
        Tool(
            "ruff cold", [*ruff_json, "--no-cache", "."], count_json, options.rounds, files, lines
        ),
        Tool("ruff warm", [*ruff_json, "."], count_json, options.rounds, files, lines),
    ]
    if sampled:
        tools.append(
            Tool(
                "loopwise cold (flake8 subset)",
                [*lw_json, "--no-cache", *subset],
                count_json,
                options.rounds,
                sub_files,
                sub_lines,
                is_loopwise=True,
            )
        )
    tools.append(
        Tool(
            "flake8 + flake8-async" + (" (subset)" if sampled else ""),
            [*flake8, *scope],
            count_flake8,
            options.flake8_rounds,
            sub_files,
            sub_lines,
            timeout=options.flake8_timeout,
            note=(
                f"flake8 checks 1 file in {step} ({sub_files} of "
                f"{files}, sorted by path) to bound its time; loopwise cold is timed on the same "
                "files for the ratio"
                if sampled
                else ""
            ),
        )
    )

    clear_caches(tree.root)
    fills = [
        Tool(
            "loopwise first run (fills cache)",
            [*lw_json, "."],
            count_json,
            1,
            files,
            lines,
            is_loopwise=True,
        ),
        Tool("ruff first run (fills cache)", [*ruff_json, "."], count_json, 1, files, lines),
    ]
    for tool in fills:
        print(f"  {tree.name}: {tool.label} ...", file=sys.stderr, flush=True)
        tool.record(run_timed(tool.argv, tree.root, None))
    for index, tool in _harness.interleave(tools, max(t.rounds for t in tools)):
        if len(tool.runs) < tool.rounds:
            print(f"  {tree.name} round {index + 1}: {tool.label} ...", file=sys.stderr, flush=True)
            run = run_timed(tool.argv, tree.root, tool.timeout)
            tool.record(run)
            results.add(
                index,
                {"tree": tree.name, "tool": tool.label},
                wall=run.wall,
                cpu=run.cpu,
                peak_mb=run.peak_mb,
                timed_out=run.timed_out,
                returncode=run.returncode,
            )
    return fills + tools


def summary_rows(tree: Tree, tools: list[Tool]) -> list[dict[str, object]]:
    """One row per tool: what the table prints, for the results file."""
    return [
        {
            "tree": tree.name,
            "version": tree.version,
            "tree_files": len(tree.files),
            "tree_lines": tree.total_lines,
            "tool": tool.label,
            "files": tool.files,
            "lines": tool.lines,
            "wall": tool.wall,
            "wall_low": min(run.wall for run in tool.runs),
            "wall_high": max(run.wall for run in tool.runs),
            "cpu": tool.cpu,
            "peak_mb": tool.peak_mb,
            "runs": len(tool.runs),
            "timed_out": tool.timed_out,
            "findings": sum(n for code, n in tool.findings.items() if code not in ERROR_CODES),
        }
        for tool in tools
        if tool.runs
    ]


# -- reporting ------------------------------------------------------------------------------


def by_label(tools: list[Tool], prefix: str) -> Tool | None:
    return next((tool for tool in tools if tool.label.startswith(prefix)), None)


def breakdown(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    return ", ".join(f"{code} {n}" for code, n in sorted(counts.items()))


def print_tree(tree: Tree, tools: list[Tool]) -> None:
    print()
    print(f"== {tree.name} {tree.version}: {len(tree.files)} files, {tree.total_lines:,} lines")
    header = (
        f"{'tool':<34} {'files':>6} {'lines':>9} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}"
        f" {'runs':>4}"
    )
    print(header + f" {'findings':>8}")
    print("-" * (len(header) + 9))
    for tool in tools:
        found = sum(n for code, n in tool.findings.items() if code not in ERROR_CODES)
        mark = ">" if tool.timed_out else " "
        print(
            f"{tool.label:<34} {tool.files:>6} {tool.lines:>9,} {mark}{tool.wall:>7.2f}"
            f" {tool.cpu:>8.2f} {tool.peak_mb:>8.0f} {len(tool.runs):>4} {found:>8}"
        )
    for tool in tools:
        if tool.note:
            print(f"  note: {tool.note}")
    print()
    for tool in tools:
        if tool.label.endswith("(fills cache)"):
            continue
        print(f"  {tool.label}: {breakdown(tool.findings)}")
        for problem in tool.problems:
            print(f"  !! {tool.label}: {problem}")
    print_ratios(tools)


def ratio_line(what: str, slow: Tool | None, fast: Tool | None, goal: str) -> None:
    if slow is None or fast is None or not slow.runs or not fast.runs:
        return
    bound = ">= " if slow.timed_out else ""
    wall, cpu = slow.wall / fast.wall, slow.cpu / max(fast.cpu, 1e-9)
    print(f"  {what}: {bound}{wall:.1f}x wall, {bound}{cpu:.1f}x cpu   ({goal})")


def print_ratios(tools: list[Tool]) -> None:
    cold = by_label(tools, "loopwise cold")
    subset = by_label(tools, "loopwise cold (flake8 subset)")
    flake8, warm = by_label(tools, "flake8"), by_label(tools, "loopwise warm")
    ruff_cold, ruff_warm = by_label(tools, "ruff cold"), by_label(tools, "ruff warm")
    print()
    against = subset or cold
    label = "loopwise cold vs flake8+flake8-async" + (" (same subset)" if subset else "")
    if flake8 and against and flake8.wall and against.wall:
        speedup = flake8.wall / against.wall
        verdict = "met" if speedup >= 20 else "NOT met"
        ratio_line(label, flake8, against, f"times faster; goal >= 20x: {verdict}")
    if warm and ruff_warm:
        slower = warm.wall / ruff_warm.wall
        verdict = "met" if slower <= 3 else "NOT met"
        print(
            f"  loopwise warm vs ruff warm: {slower:.1f}x the wall time,"
            f" {warm.cpu / max(ruff_warm.cpu, 1e-9):.1f}x the cpu   (goal <= 3x: {verdict})"
        )
    if cold and ruff_cold:
        print(
            f"  loopwise cold vs ruff cold: {cold.wall / ruff_cold.wall:.1f}x the wall time,"
            f" {cold.cpu / max(ruff_cold.cpu, 1e-9):.1f}x the cpu   (for information)"
        )


def print_errors(tree: Tree, tools: list[Tool]) -> int:
    """Every file loopwise could not check, once each; returns how many were internal errors."""
    seen: dict[tuple[str, int, str, str], None] = {}
    for tool in tools:
        if tool.is_loopwise:
            for item in tool.items:
                if item["code"] in ERROR_CODES:
                    key = (
                        str(item["path"]),
                        int(str(item["line"])),
                        str(item["code"]),
                        str(item["message"]),
                    )
                    seen[key] = None
    print()
    print(f"  files loopwise could not check in {tree.name}: {len(seen)}")
    for path, line, code, message in sorted(seen):
        print(f"    {path}:{line}: {code}: {message}")
    return sum(1 for key in seen if key[2] == "internal-error")


def stratified(
    pool: list[tuple[Tree, dict[str, object]]], size: int, rng: random.Random
) -> list[tuple[Tree, dict[str, object]]]:
    """Up to ``size`` findings, taken from each code in turn so that rare codes show up too."""
    by_code: dict[str, list[tuple[Tree, dict[str, object]]]] = {}
    for entry in pool:
        by_code.setdefault(str(entry[1]["code"]), []).append(entry)
    queues = [rng.sample(entries, len(entries)) for _, entries in sorted(by_code.items())]
    picked: list[tuple[Tree, dict[str, object]]] = []
    while len(picked) < size and any(queues):
        for queue in queues:
            if queue and len(picked) < size:
                picked.append(queue.pop())
    return picked


def print_sample(trees: list[tuple[Tree, list[Tool]]], size: int, seed: int) -> None:
    """Random loopwise findings with their source line, for a precision audit."""
    pool: list[tuple[Tree, dict[str, object]]] = []
    for tree, tools in trees:
        cold = by_label(tools, "loopwise cold")
        if cold is not None:
            pool.extend((tree, item) for item in cold.items if item["code"] not in ERROR_CODES)
    picked = stratified(pool, size, random.Random(seed))
    print()
    print(f"== {len(picked)} of {len(pool)} loopwise findings, a few of each code (seed {seed})")
    for tree, item in sorted(picked, key=lambda p: (str(p[1]["code"]), p[0].name)):
        line = int(str(item["line"]))
        source = (tree.root / str(item["path"])).read_text("utf-8", errors="replace").splitlines()
        text = source[line - 1].strip() if 0 < line <= len(source) else ""
        print(f"  {tree.name}/{item['path']}:{line}: {item['code']} {item['message']}")
        print(f"      > {text}")


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per tool (default 3)")
    parser.add_argument(
        "--flake8-rounds", type=int, default=1, help="timed flake8 runs (slow; default 1)"
    )
    parser.add_argument(
        "--flake8-every",
        default="auto",
        help="flake8 checks every k-th file; 'auto' (default) samples trees much bigger than "
        f"{FLAKE8_TARGET_LINES:,} lines down to about that size, 1 checks everything",
    )
    parser.add_argument(
        "--flake8-timeout", type=float, default=1800, help="seconds per flake8 run (default 1800)"
    )
    parser.add_argument("--only", choices=CODEBASES, help="benchmark one codebase only")
    parser.add_argument(
        "--downloads",
        type=Path,
        default=Path(tempfile.gettempdir()) / "loopwise-check-speed",
        help="where the codebases are downloaded and unpacked (default: a directory under the "
        "system temp dir, reused between runs)",
    )
    parser.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep the downloads directory for the next run (default) or delete it at the end",
    )
    parser.add_argument("--refresh", action="store_true", help="download the newest versions")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="print N loopwise findings (a few of each code) to audit",
    )
    parser.add_argument("--seed", type=int, default=2, help="seed of --sample")
    _harness.add_json_options(parser)
    options = parser.parse_args(argv)
    if options.flake8_every != "auto" and (
        not options.flake8_every.isdigit() or int(options.flake8_every) < 1
    ):
        parser.error("--flake8-every takes 'auto' or a positive number")
    if min(options.rounds, options.flake8_rounds) < 1:
        parser.error("--rounds and --flake8-rounds must be at least 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    peers = ensure_peers()
    options.downloads.mkdir(parents=True, exist_ok=True)
    recorded = {
        k: vars(options)[k] for k in ("rounds", "flake8_rounds", "flake8_every", "flake8_timeout")
    }
    recorded["only"] = options.only
    results = _harness.Results("check_speed", recorded, note=options.note, peers=peers)
    names = [options.only] if options.only else list(CODEBASES)
    try:
        trees = [scan(name, *fetch(name, options.downloads, options.refresh)) for name in names]
        print(f"python {sys.version.split()[0]}, {cores()} cores")
        print(f"loopwise: {version_of(loopwise_command())}")
        print(f"ruff: {version_of(ruff_command(peers))}")
        print(f"flake8: {version_of(flake8_command(peers))}")
        print(f"flake8 runs with -j{cores()}; loopwise with its default --jobs (cores)")
        measured = [(tree, bench_tree(tree, options, peers, results)) for tree in trees]
        internal = 0
        for tree, tools in measured:
            print_tree(tree, tools)
            internal += print_errors(tree, tools)
            results.summary.setdefault("tools", []).extend(summary_rows(tree, tools))
        if options.sample:
            print_sample(measured, options.sample, options.seed)
        results.write(options.json)
    finally:
        if not options.keep:
            shutil.rmtree(options.downloads, ignore_errors=True)
    if internal:
        print(f"\n{internal} internal error(s): bugs in loopwise, please report them")
    return 1 if internal else 0


if __name__ == "__main__":
    sys.exit(main())
