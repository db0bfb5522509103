"""Recall on a peer's own test suite: flake8-async's eval files, converted for asyncio.

Run by hand (never from the tests)::

    python benchmarks/peer_suite.py            # print the table, write the result file
    python benchmarks/peer_suite.py --misses   # also list every missed case with its line

flake8-async ships, in its source distribution on the package index, the eval files its own
tests assert (``tests/eval_files/asyncNNN.py``, each expected error annotated on its line). This
script

1. downloads that source distribution (the pinned version below, sha256 checked) into a cache
   outside the repository (default ``<system temp dir>/loopwise-peer-suite``);
2. installs the same pinned flake8-async into a throwaway venv in that cache (never the active
   environment) and, with that venv's Python, runs flake8-async's *own* test helpers, taken
   from its ``tests/test_flake8_async.py``: ``find_magic_markers`` (``# NOASYNCIO``,
   ``# ASYNCIO_NO_ERROR``, ``# BASE_LIBRARY``), ``replace_library`` (trio/anyio -> asyncio) and
   ``_parse_eval_file`` (the expected errors);
3. adds, as one first line, the imports a real file would have where an eval file relies on
   bare names (``subprocess.run()`` with no ``import subprocess``), so that loopwise, which
   follows imports, sees what a real module would show it;
4. runs ``loopwise check --output-format json --select LW004,LW005,LW011,LW012,LW018`` on
   the converted files and scores each expectation: found when loopwise reports the mapped
   code on that line.

Mapping (peer code -> ours):

* ASYNC210-ASYNC251 (blocking calls) -> LW005, LW012 or LW018. loopwise splits blocking calls
  in three: LW005 (network, sleep, processes, ``input()``; on by default), LW012 (local file
  I/O: ``open()``, file objects, ``tempfile`` files; opt-in, because the size of a file is not
  visible in the code) and LW018 (file-system metadata: ``os.path.exists()`` and the like,
  ``tempfile.mkdtemp()``; opt-in, because on real code each is one quick ``stat()``).
  flake8-async makes a similar split (ASYNC230-240 apart from the rest), so a case counts as
  found when any of the three reports it; the table also says how many each found, and how
  many the default rule set alone finds.
* ASYNC300 (task created and thrown away) -> LW004.
* ASYNC103/ASYNC104 (cancellation caught and not re-raised) -> LW011, for the cases placed in
  a coroutine: LW011 looks at coroutines only (a sync function cannot be cancelled by asyncio).

Cases that do not apply to asyncio are listed with the reason and not counted: starting a
process without waiting for it (ASYNC220: asyncio itself calls ``Popen`` on the loop thread),
``os.path`` functions that do no I/O (``normpath``, ``relpath``...), the sync-function cases of
ASYNC103/104, and files that flake8-async itself marks as not meant for asyncio when an
``_asyncio`` variant of the same file exists (the variant is used instead).

"Extra" are findings of those codes on lines where flake8-async expects nothing: each one is
printed, to be judged by reading it.

The raw per-case outcome is written to ``benchmarks/results/peer_suite.json``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import venv
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import ecosystem

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "peer_suite.json"

PEER = "flake8-async"
PEER_VERSION = "26.8.1"
PEER_SHA256 = "c2d9e7b318169a85d821c8b2e661959481e59db1551626b7471c6e4627c99d9b"

SELECT = "LW004,LW005,LW011,LW012,LW018"
BLOCKING = ("LW005", "LW012", "LW018")
BLOCKING_KEY = "LW005/12/18"

# Which eval files are scored: the blocking-call, dangling-task and cancellation families.
EVAL_PREFIXES = ("async103", "async104", "async21", "async22", "async23", "async24", "async25")
EVAL_PREFIXES_EXACT = ("async300",)

# os.path functions that only compute on the string (or ask for the working directory).
PURE_OS_PATH = frozenset(
    {"normpath", "_path_normpath", "relpath", "abspath", "join", "basename", "dirname", "split"}
)

# Bare names the eval files use without importing them -> the import a real module would have.
IMPLIED_IMPORTS = {
    name: f"import {name}"
    for name in (
        "asyncio",
        "httpx",
        "io",
        "os",
        "requests",
        "socket",
        "subprocess",
        "tempfile",
        "time",
        "urllib",
        "urllib3",
        "httpx2",
    )
}
IMPLIED_IMPORTS.update(
    {
        "request": "from urllib import request",
        "urlopen": "from urllib.request import urlopen",
        "P_WAIT": "from os import P_WAIT",
        "P_NOWAIT": "from os import P_NOWAIT",
        "Optional": "from typing import Optional",
    }
)
# The heading under which flake8-async lists what its own typing gets wrong on purpose.
KNOWN_UNHANDLED = "***** Known unhandled cases *****"

# Run with the throwaway venv's Python: flake8-async's own helpers convert and parse the files.
CONVERTER = r"""
import ast, json, re, sys
from dataclasses import dataclass, fields
from pathlib import Path

from flake8_async.base import Error, Statement
from flake8_async.visitors import ERROR_CLASSES, ERROR_CLASSES_CST


class _Skip(Exception):
    pass


class pytest:  # the only use the helpers make of pytest
    @staticmethod
    def skip(reason=""):
        raise _Skip(reason)


tests, prefixes, exact = Path(sys.argv[1]), tuple(sys.argv[2].split(",")), sys.argv[3].split(",")
source = (tests / "test_flake8_async.py").read_text()
wanted = {"replace_library", "MagicMarkers", "find_magic_markers", "_parse_eval_file",
          "check_version", "ParseError", "ERROR_CODES"}
module = ast.parse(source)
kept = []
for node in module.body:
    name = getattr(node, "name", None)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        name = node.target.id
    if name in wanted:
        kept.append(node)
namespace = {"__name__": "flake8_async_helpers", "re": re, "sys": sys, "Path": Path,
             "dataclass": dataclass, "fields": fields, "Error": Error, "Statement": Statement,
             "ERROR_CLASSES": ERROR_CLASSES, "ERROR_CLASSES_CST": ERROR_CLASSES_CST,
             "pytest": pytest, "__annotations__": {}, "Flake8AsyncVisitor": object}
exec(compile(ast.Module(body=kept, type_ignores=[]), "test_flake8_async.py", "exec"), namespace)
assert wanted <= set(namespace), sorted(wanted - set(namespace))

out = []
for path in sorted((tests / "eval_files").iterdir()):
    stem = path.stem
    if not (stem.startswith(prefixes) or stem in exact):
        continue
    content = path.read_text()
    markers = namespace["find_magic_markers"](content)
    if markers.BASE_LIBRARY != "asyncio":
        content = namespace["replace_library"](content, original=markers.BASE_LIBRARY,
                                               new="asyncio")
    try:
        expected, _, _ = namespace["_parse_eval_file"](
            stem.upper(), content, only_check_not_crash=markers.NOASYNCIO)
    except _Skip as skip:
        out.append({"file": path.name, "skipped": str(skip)})
        continue
    if markers.library_no_error("asyncio"):
        expected = []
    out.append({
        "file": path.name,
        "noasyncio": markers.NOASYNCIO,
        "notrio": markers.NOTRIO,
        "content": content,
        "expected": [{"code": e.code, "line": e.line, "args": [str(a) for a in e.args]}
                     for e in expected],
    })
json.dump(out, sys.stdout)
"""


def default_cache() -> Path:
    return Path(tempfile.gettempdir()) / "loopwise-peer-suite"


def fetch_peer(cache: Path, index: str) -> Path:
    """flake8-async's unpacked source distribution (pinned and checked)."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"flake8_async-{PEER_VERSION}"
    if (root / "tests" / "eval_files").is_dir():
        return root
    files = ecosystem.index_files(index, PEER)
    file = next(
        (f for f in files if str(f["filename"]) == f"flake8_async-{PEER_VERSION}.tar.gz"), None
    )
    if file is None:
        raise SystemExit(f"peer_suite: no source distribution of {PEER} {PEER_VERSION}")
    archive = cache / str(file["filename"])
    print(f"downloading {archive.name} ...", file=sys.stderr)
    ecosystem.download(str(file["url"]), archive, PEER_SHA256)
    ecosystem.unpack(archive, root)
    return root


def peer_python(cache: Path) -> Path:
    """The Python of a throwaway venv holding the pinned flake8-async (made once)."""
    home = cache / f"venv-{PEER}-{PEER_VERSION}"
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = home / "installed"
    if not marker.is_file():
        print(f"installing {PEER}=={PEER_VERSION} in a throwaway venv ...", file=sys.stderr)
        venv.EnvBuilder(clear=True, with_pip=True).create(home)
        pip = [str(python), "-m", "pip", "install", "-q", f"{PEER}=={PEER_VERSION}"]
        subprocess.run(pip, check=True)
        marker.write_text(PEER_VERSION)
    return python


def convert(root: Path, python: Path) -> list[dict[str, Any]]:
    argv = [
        str(python),
        "-c",
        CONVERTER,
        str(root / "tests"),
        ",".join(EVAL_PREFIXES),
        ",".join(EVAL_PREFIXES_EXACT),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"peer_suite: converting the eval files failed:\n{done.stderr}")
    converted: list[dict[str, Any]] = json.loads(done.stdout)
    return converted


def implied_imports(content: str) -> str:
    """One line of the imports a real module would have for the bare names ``content`` uses."""
    tree = ast.parse(content)
    bound: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    missing = sorted(name for name in used - bound if name in IMPLIED_IMPORTS)
    return "; ".join(IMPLIED_IMPORTS[name] for name in missing)


PLACED_IN_COROUTINES = ("async103", "async104")
_COMPOUND = (ast.If, ast.For, ast.While, ast.With, ast.Try, ast.TryStar, ast.Match)
_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def place_in_coroutines(content: str) -> tuple[str, list[int]]:
    """The cancellation cases moved into coroutines, and for each new line its original one.

    flake8-async's ASYNC103/104 files hold their cases at module level and in sync functions
    (its checks do not care). asyncio delivers cancellation to coroutines only, so each run of
    module-level statements becomes the body of an ``async def`` and each module-level ``def``
    an ``async def``; nothing else changes.
    """
    tree = ast.parse(content)
    lines = content.split("\n")
    starts: dict[int, str] = {}
    indented: set[int] = set()
    previous_was_case = False
    for number, statement in enumerate(tree.body):
        is_case = not isinstance(statement, _DEFINITIONS) and not (
            number == 0 and isinstance(statement, ast.Expr)
        )
        first = min(
            [statement.lineno, *(d.lineno for d in getattr(statement, "decorator_list", []))]
        )
        if is_case:
            if not previous_was_case:
                starts[first] = f"async def _case_{statement.lineno}():"
            indented.update(range(first, (statement.end_lineno or first) + 1))
        elif isinstance(statement, ast.FunctionDef):
            row = lines[statement.lineno - 1]
            column = statement.col_offset
            lines[statement.lineno - 1] = row[:column] + "async " + row[column:]
        previous_was_case = is_case
    # A try body stands for code that awaits: asyncio delivers cancellation only there.
    for node in ast.walk(tree):
        if isinstance(node, ast.Try | ast.TryStar):
            first = node.body[0]
            if not isinstance(first, ast.stmt) or first.lineno != first.end_lineno:
                continue
            if any(isinstance(n, ast.Await) for n in ast.walk(first)) or isinstance(
                first, _COMPOUND
            ):
                continue
            row = lines[first.lineno - 1]
            column = first.col_offset
            lines[first.lineno - 1] = f"{row[:column]}await asyncio.sleep(0); {row[column:]}"
    out: list[str] = []
    origin: list[int] = []
    for number, text in enumerate(lines, start=1):
        if number in starts:
            out.append(starts[number])
            origin.append(0)
        out.append(f"    {text}" if number in indented and text else text)
        origin.append(number)
    # Every case coroutine awaited in line, as a caller would (appended: no line moves).
    names = [
        text.split("def ", 1)[1].split("(")[0] for text in out if text.startswith("async def ")
    ]
    out.append("async def _run_every_case():")
    out.extend(f"    await {name}()" for name in names)
    out.append("    pass")
    origin.extend([0] * (len(names) + 2))
    return "\n".join(out), origin


def handler_lines(tree: ast.Module) -> dict[int, int]:
    """For each line inside an ``except`` clause, the line of that (innermost) clause."""
    found: dict[int, int] = {}
    handlers = [node for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler)]
    for handler in sorted(handlers, key=lambda h: h.lineno):
        for line in range(handler.lineno, (handler.end_lineno or handler.lineno) + 1):
            found[line] = handler.lineno
    return found


def coroutine_lines(tree: ast.Module) -> set[int]:
    """Lines that belong to the body of an ``async def`` (not of a def nested in it)."""
    lines: set[int] = set()

    def visit(node: ast.AST, in_coroutine: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_coroutine
            if isinstance(child, ast.AsyncFunctionDef):
                inside = True
            elif isinstance(child, ast.FunctionDef | ast.Lambda):
                inside = False
            if inside and hasattr(child, "lineno"):
                end = getattr(child, "end_lineno", child.lineno) or child.lineno
                if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines.update(range(child.lineno, end + 1))
            visit(child, inside)

    visit(tree, False)
    return lines


def mapped_code(peer: str) -> str | None:
    number = int(peer[5:8])
    if 210 <= number <= 251:
        return BLOCKING_KEY
    if number == 300:
        return "LW004"
    if number in (103, 104):
        return "LW011"
    return None


def not_applicable(peer: str, line: str, in_coroutine: bool) -> str | None:
    """Why an expectation does not apply to asyncio, or None when it does."""
    number = int(peer[5:8])
    if number == 220 or line.startswith(("os.posix_spawn(", "os.posix_spawnp(")):
        return "starts a process without waiting for it: asyncio itself calls Popen on the loop"
    if number == 240:
        called = line.split("(")[0].strip().rpartition(".")[2]
        if called in PURE_OS_PATH:
            return f"os.path.{called} computes on the string: no I/O"
    if number in (103, 104) and not in_coroutine:
        return "in a sync function: asyncio cancels coroutines only"
    return None


def run_loopwise(directory: Path) -> list[dict[str, Any]]:
    argv = [*ecosystem.loopwise_command(), "check", "--isolated", "--no-cache", "--exit-zero"]
    known = {rule.code for rule in ecosystem.all_rules()}  # an older loopwise may lack some
    select = ",".join(code for code in SELECT.split(",") if code in known)
    argv += ["--output-format", "json", "--quiet", "--select", select, "."]
    done = subprocess.run(argv, cwd=directory, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"peer_suite: loopwise failed:\n{done.stderr}")
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return findings


def score(converted: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    files = {item["file"]: item for item in converted if "content" in item}
    cases: list[dict[str, Any]] = []
    skipped_files: list[dict[str, str]] = []
    origins: dict[str, list[int]] = {}
    # A file flake8-async marks as not for asyncio is left out when files it does check for
    # asyncio cover the same codes; it is kept (converted the same way) when it is the only
    # one to test its codes (os.path calls, input()).
    covered = {
        expectation["code"][:8]
        for item in files.values()
        if not item["noasyncio"]
        for expectation in item["expected"]
    }
    for name, item in files.items():
        codes = {expectation["code"][:8] for expectation in item["expected"]}
        if item["noasyncio"] and codes <= covered:
            variant = name.replace(".py", "_asyncio.py")
            reason = f"flake8-async uses {variant}" if variant in files else "covered elsewhere"
            skipped_files.append({"file": name, "reason": f"marked NOASYNCIO; {reason}"})
            continue
        content: str = item["content"]
        origin = list(range(1, content.count("\n") + 2))
        if name.startswith(PLACED_IN_COROUTINES):
            content, origin = place_in_coroutines(content)
            item["content"] = content  # scored as placed
            item["origin"] = origin
        header = implied_imports(content)
        origins[name] = [0, *origin] if header else origin
        (work / name).write_text(f"{header}\n{content}" if header else content)
    findings = run_loopwise(work)
    by_line: dict[tuple[str, int], list[str]] = defaultdict(list)
    for finding in findings:
        name = Path(finding["path"]).name
        by_line[name, origins[name][finding["line"] - 1]].append(finding["code"])
    expected_lines: dict[tuple[str, str], set[int]] = defaultdict(set)
    for name in origins:
        item = files[name]
        tree = ast.parse(item["content"])
        new_line = {old: new for new, old in enumerate(item.get("origin", []), start=1) if old}
        text_lines = item["content"].split("\n")
        in_coroutine = coroutine_lines(tree)
        handlers = handler_lines(tree)
        for expectation in item["expected"]:
            ours = mapped_code(expectation["code"])
            if ours is None:
                continue
            line = expectation["line"]
            placed = new_line.get(line, line)
            source = text_lines[placed - 1].split("#")[0].strip()
            reason = not_applicable(expectation["code"], source, placed in in_coroutine)
            if KNOWN_UNHANDLED in "\n".join(text_lines[: placed - 1]):
                reason = "flake8-async's own known-unhandled section (a guess it knows is wrong)"
            wanted = BLOCKING if ours == BLOCKING_KEY else (ours,)
            # LW011 reports the except clause; flake8-async the clause or the statement leaving it.
            lines = {line}
            if ours == "LW011" and placed in handlers:
                handler = handlers[placed]
                lines.add(item.get("origin", [])[handler - 1] if "origin" in item else handler)
            expected_lines[name, ours].update(lines)
            found = sorted(
                {code for at in lines for code in by_line.get((name, at), []) if code in wanted}
            )
            cases.append(
                {
                    "file": name,
                    "line": line,
                    "peer": expectation["code"],
                    "ours": ours,
                    "source": source,
                    "applicable": reason is None,
                    "reason": reason,
                    "found": found,
                }
            )
    extra = []
    for (name, line), codes in sorted(by_line.items()):
        for code in codes:
            ours = BLOCKING_KEY if code in BLOCKING else code
            if line in expected_lines.get((name, ours), set()):
                continue
            item = files[name]
            placed = {old: new for new, old in enumerate(item.get("origin", []), start=1)}
            at = placed.get(line, line)
            source = item["content"].split("\n")[at - 1].strip() if line > 0 else ""
            extra.append({"file": name, "line": line, "code": code, "source": source})
    return {
        "peer": f"{PEER} {PEER_VERSION}",
        "skipped_files": skipped_files,
        "cases": cases,
        "extra": extra,
    }


def summary(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for case in result["cases"]:
        row = table[case["ours"]]
        row["expected"] += 1
        if not case["applicable"]:
            continue
        row["applicable"] += 1
        if case["found"]:
            row["found"] += 1
            if "LW005" in case["found"] or case["ours"] != BLOCKING_KEY:
                row["found_by_default"] += 1
            for code in case["found"]:
                row[f"found_{code}"] += 1
    for extra in result["extra"]:
        table[BLOCKING_KEY if extra["code"] in BLOCKING else extra["code"]]["extra"] += 1
    return {code: dict(row) for code, row in sorted(table.items())}


def print_report(result: dict[str, Any], show_misses: bool) -> None:
    print(f"{result['peer']}: eval files converted for asyncio by its own test helpers\n")
    print(f"{'code':<12} {'expected':>8} {'applic.':>8} {'found':>6} {'recall':>7} {'extra':>6}")
    for code, row in result["summary"].items():
        applicable = row.get("applicable", 0)
        found = row.get("found", 0)
        recall = f"{found / applicable:.2f}" if applicable else "-"
        print(
            f"{code:<12} {row.get('expected', 0):>8} {applicable:>8} {found:>6} {recall:>7} "
            f"{row.get('extra', 0):>6}"
        )
    blocking = result["summary"].get(BLOCKING_KEY, {})
    if blocking:
        print(
            f"\nblocking calls: LW005 found {blocking.get('found_LW005', 0)}, "
            f"LW012 (opt-in) found {blocking.get('found_LW012', 0)}, "
            f"LW018 (opt-in) found {blocking.get('found_LW018', 0)}; "
            f"the default rule set alone: {blocking.get('found_by_default', 0)} "
            f"of {blocking.get('applicable', 0)}"
        )
    print("\nnot applicable to asyncio:")
    reasons = Counter(c["reason"] for c in result["cases"] if not c["applicable"])
    for reason, count in reasons.most_common():
        print(f"  {count:>3}  {reason}")
    for skipped in result["skipped_files"]:
        print(f"  file {skipped['file']}: {skipped['reason']}")
    misses = [c for c in result["cases"] if c["applicable"] and not c["found"]]
    if show_misses:
        print(f"\nmissed ({len(misses)}):")
        for case in misses:
            print(f"  {case['ours']:<11} {case['file']}:{case['line']}  {case['source']}")
    print(f"\nextra ({len(result['extra'])}), findings flake8-async does not expect:")
    for extra in result["extra"]:
        print(f"  {extra['code']} {extra['file']}:{extra['line']}  {extra['source']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="download cache")
    parser.add_argument("--index", default=ecosystem.DEFAULT_INDEX, help="package index")
    parser.add_argument("--misses", action="store_true", help="list every missed case")
    parser.add_argument("--output", type=Path, default=RESULT, help="result file")
    options = parser.parse_args(argv)
    root = fetch_peer(options.cache, options.index)
    converted = convert(root, peer_python(options.cache))
    with tempfile.TemporaryDirectory(prefix="peer-suite-") as scratch:
        result = score(converted, Path(scratch))
    result["summary"] = summary(result)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=1) + "\n")
    print_report(result, options.misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
