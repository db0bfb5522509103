"""The ecosystem check: ``loopwise check`` on real asyncio projects nobody here wrote.

Run by hand (never from the tests)::

    python benchmarks/ecosystem.py                 # check, diff against the snapshot, precision
    python benchmarks/ecosystem.py --update        # also rewrite the snapshot
    python benchmarks/ecosystem.py --unlabelled 5  # print findings the ledger lacks, to label
    python benchmarks/ecosystem.py --peers         # also time ruff and flake8-async on the trees

It downloads each pinned project's source distribution (a wheel where the project has none)
from the package index into a cache outside the repository (default:
``<system temp dir>/loopwise-ecosystem``, reused between runs; the archive's sha256 is checked
against the one recorded in the snapshot), runs ``loopwise check`` over the whole unpacked tree
(library, tests, examples) with the default rule set and no project configuration, and prints

* findings per rule per project and the wall time of each check;
* what changed against the committed snapshot ``benchmarks/ecosystem/findings.json``: every
  finding added or removed, so a rule change shows its effect on real code;
* precision per rule from the committed review ledger ``benchmarks/ecosystem/review.jsonl``.

The ledger holds one JSON object per line: ``project``, ``path``, ``line``, ``code``,
``label`` (``true``: a real instance the project's maintainers would want to fix; ``false``:
wrong; ``noise``: matches the rule's letter, but nobody would act on it) and ``reason`` (one
line). Precision is true / labelled, over the ledger entries that the current run still
reports; noise counts against it. Entries whose finding is gone (a fixed false finding, say)
are counted apart and do not count. A rule's sample is complete when it holds every current
finding, or at least ``SAMPLE_PER_RULE`` of them.

Raw results (findings, times, peers' times) are written as JSON in the cache directory
(``results-<date>-<pid>.json``). The snapshot and the ledger are committed; so are the times of
a full ``--peers`` run (``benchmarks/ecosystem/timings.json``), printed there as ratios.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SNAPSHOT = HERE / "ecosystem" / "findings.json"
LEDGER = HERE / "ecosystem" / "review.jsonl"
TIMINGS = HERE / "ecosystem" / "timings.json"
DEFAULT_INDEX = "https://pypi.org/simple"
SAMPLE_PER_RULE = 10
LABELS = ("true", "false", "noise")
GOAL_OVERALL = 0.90
GOAL_PER_RULE = 0.80

# Broad asyncio users: servers and frameworks, database and messaging drivers, API clients, bots.
PROJECTS: tuple[tuple[str, str], ...] = (
    ("aio-pika", "10.2.1"),
    ("aiobotocore", "3.10.0"),
    ("aiocache", "0.12.3"),
    ("aiogram", "3.31.0"),
    ("aiohttp", "3.14.5"),
    ("aiokafka", "0.14.0"),
    ("aiomysql", "0.3.2"),
    ("aiormq", "7.2.4"),
    ("aiosmtplib", "5.1.3"),
    ("aiosqlite", "0.22.1"),
    ("asyncpg", "0.32.0"),
    ("discord.py", "2.7.1"),
    ("nats-py", "2.16.0"),
    ("python-telegram-bot", "22.8"),
    ("quart", "0.23.1"),
    ("redis", "8.1.0"),
    ("sanic", "25.12.1"),
    ("telethon", "1.45.0"),
    ("tortoise-orm", "1.1.9"),
    ("uvicorn", "0.54.0"),
    ("websockets", "17.4"),
)
PRUNED_DIRS = frozenset({"__pycache__", "node_modules", "build", "dist", "venv", ".git"})


# -- downloads ------------------------------------------------------------------------------


def normalise(name: str) -> str:
    return "".join("-" if c in "._" else c for c in name.lower())


def index_files(index: str, name: str) -> list[dict[str, object]]:
    """The project's files as the index lists them (the JSON form of the simple API)."""
    request = urllib.request.Request(
        f"{index.rstrip('/')}/{normalise(name)}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        files: list[dict[str, object]] = json.load(response)["files"]
    return files


def pick_file(files: list[dict[str, object]], name: str, version: str) -> dict[str, object]:
    """The sdist of ``version``, or a pure-Python wheel, or any wheel when there is no sdist."""
    stem = normalise(name).replace("-", "_")

    def of_version(filename: str) -> bool:
        lowered = filename.lower().replace("-", "_").replace(".", "_")
        return lowered.startswith(f"{stem}_{version.replace('.', '_')}_") or lowered.startswith(
            f"{stem}_{version.replace('.', '_')}"
        )

    candidates = [f for f in files if of_version(str(f["filename"]))]
    for suffix in (".tar.gz", "-none-any.whl", ".whl"):
        for file in candidates:
            if str(file["filename"]).endswith(suffix):
                return file
    raise SystemExit(f"ecosystem: no file of {name} {version} on the index")


def download(url: str, target: Path, sha256: str | None) -> str:
    digest = hashlib.sha256()
    partial = target.with_suffix(target.suffix + ".part")
    with urllib.request.urlopen(url, timeout=120) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 16):
            digest.update(chunk)
            out.write(chunk)
    if sha256 is not None and digest.hexdigest() != sha256:
        partial.unlink()
        raise SystemExit(f"ecosystem: {target.name}: sha256 differs from the index's")
    partial.rename(target)
    return digest.hexdigest()


def unpack(archive: Path, target: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="unpack-", dir=target.parent))
    try:
        if archive.name.endswith(".whl"):
            with zipfile.ZipFile(archive) as wheel:
                wheel.extractall(scratch / "wheel")
        else:
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
        (top,) = list(scratch.iterdir())
        top.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Project:
    name: str
    version: str
    archive: str
    sha256: str
    root: Path


def fetch(name: str, version: str, cache: Path, index: str, pinned: dict[str, str]) -> Project:
    """The unpacked tree of ``name`` ``version``, downloaded unless the cache has it."""
    trees = cache / "trees"
    archives = cache / "archives"
    trees.mkdir(parents=True, exist_ok=True)
    archives.mkdir(parents=True, exist_ok=True)
    root = trees / f"{normalise(name)}-{version}"
    record = root.with_suffix(".json")
    if root.is_dir() and record.is_file():
        meta = json.loads(record.read_text())
        return Project(name, version, meta["archive"], meta["sha256"], root)
    try:
        file = pick_file(index_files(index, name), name, version)
        filename = str(file["filename"])
        hashes = file.get("hashes")
        expected = pinned.get(name) or (hashes.get("sha256") if isinstance(hashes, dict) else None)
        print(f"downloading {filename} ...", file=sys.stderr)
        archive = archives / filename
        sha256 = download(str(file["url"]), archive, expected)
    except (OSError, ValueError, KeyError) as exc:  # network, HTTP, or a reply not as expected
        raise SystemExit(f"ecosystem: cannot fetch {name} {version} from {index}: {exc}") from None
    if root.exists():
        shutil.rmtree(root)
    unpack(archive, root)
    record.write_text(json.dumps({"archive": filename, "sha256": sha256}))
    return Project(name, version, filename, sha256, root)


def python_files(root: Path) -> list[Path]:
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in PRUNED_DIRS and not d.startswith(".")]
        found += [Path(directory, name) for name in filenames if name.endswith(".py")]
    return found


def lines_and_parse_cpu(root: Path) -> tuple[int, float]:
    """Lines of Python, and the CPU seconds a bare ``ast.parse`` of every file takes."""
    lines = 0
    cpu = 0.0
    for path in python_files(root):
        source = path.read_bytes()
        lines += source.count(b"\n")
        started = time.process_time()
        with contextlib.suppress(SyntaxError, ValueError):
            ast.parse(source)
        cpu += time.process_time() - started
    return lines, cpu


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- running the checker --------------------------------------------------------------------


def loopwise_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "loopwise"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "loopwise.cli"]


Finding = dict[str, object]


def all_rules() -> tuple[Any, ...]:
    from loopwise.lint import RULES

    return tuple(RULES)


def opt_in_codes() -> frozenset[str]:
    from loopwise.lint._api import OPT_IN

    return OPT_IN


def check(
    project: Project, empty_config: Path, jobs: int | None
) -> tuple[list[Finding], float, float]:
    """Findings of the default rule set on the whole tree, with wall and CPU seconds (no cache)."""
    argv = [*loopwise_command(), "check", "--no-cache", "--exit-zero", "--format", "json"]
    argv += ["--config", str(empty_config), "--no-respect-gitignore", "--quiet"]
    argv += ["--select", ",".join(rule.code for rule in all_rules())]  # opt-in rules too
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    started, cpu_before = time.perf_counter(), children_cpu()
    done = subprocess.run(
        [*argv, "."], cwd=project.root, capture_output=True, text=True, check=False
    )
    elapsed, cpu = time.perf_counter() - started, children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"ecosystem: loopwise failed on {project.name}:\n{done.stderr}")
    findings = []
    for item in json.loads(done.stdout):
        findings.append(
            {
                "project": project.name,
                "path": item["path"],
                "line": item["line"],
                "column": item["column"],
                "code": item["code"],
                "message": item["message"],
            }
        )
    return findings, elapsed, cpu


def key(finding: Finding) -> tuple[str, str, int, str]:
    """What a ledger entry names: project, path, line and rule."""
    return (
        str(finding["project"]),
        str(finding["path"]),
        int(str(finding["line"])),
        str(finding["code"]),
    )


def exact_key(finding: Finding) -> tuple[str, str, int, int, str, str]:
    """What the snapshot diff compares: the ledger's key, the column and the message."""
    project, path, line, code = key(finding)
    return project, path, line, int(str(finding["column"])), code, str(finding["message"])


# -- peers ----------------------------------------------------------------------------------


PEERS = ("flake8==7.5.0", "flake8-async==26.8.1", "ruff==0.17.6")  # as check_speed.py


def peer_venv() -> Path:
    """The throwaway virtual environment with the pinned ruff, flake8 and flake8-async (made
    once per set of pins, under the system temp dir; shared with check_speed.py)."""
    import _harness  # the benchmarks' directory is on sys.path when this runs as a script

    return _harness.peer_env(PEERS).root


def timed(argv: Sequence[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def time_peers(project: Project, venv: Path, jobs: int) -> dict[str, float]:
    ruff = [str(venv / "bin" / "ruff"), "check", "--isolated", "--no-cache", "--select", "ASYNC"]
    ruff += ["--exit-zero", "-q", "."]
    flake8 = [str(venv / "bin" / "flake8"), "--isolated", "--select=ASYNC", f"-j{jobs}", "."]
    return {"ruff": timed(ruff, project.root), "flake8-async": timed(flake8, project.root)}


# -- the ledger -----------------------------------------------------------------------------


def read_ledger(path: Path) -> list[dict[str, object]]:
    entries = []
    if not path.is_file():
        return entries
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("label") not in LABELS:
            raise SystemExit(f"ecosystem: {path.name}:{number}: label must be one of {LABELS}")
        if not str(entry.get("reason", "")).strip():
            raise SystemExit(f"ecosystem: {path.name}:{number}: every label needs a reason")
        entries.append(entry)
    return entries


@dataclass
class RulePrecision:
    code: str
    findings: int
    labels: Counter[str]
    gone: int
    default: bool = True

    @property
    def labelled(self) -> int:
        return sum(self.labels.values())

    @property
    def precision(self) -> float | None:
        return self.labels["true"] / self.labelled if self.labelled else None

    @property
    def sample_complete(self) -> bool:
        return self.labelled >= min(self.findings, SAMPLE_PER_RULE)


def precision(findings: list[Finding], ledger: list[dict[str, object]]) -> list[RulePrecision]:
    current = {key(f) for f in findings}
    per_rule: dict[str, RulePrecision] = {}
    for code, count in sorted(Counter(str(f["code"]) for f in findings).items()):
        per_rule[code] = RulePrecision(code, count, Counter(), 0)
    for entry in ledger:
        code = str(entry["code"])
        rule = per_rule.setdefault(code, RulePrecision(code, 0, Counter(), 0))
        if key(entry) in current:
            rule.labels[str(entry["label"])] += 1
        else:
            rule.gone += 1
    opt_in = opt_in_codes()
    for rule in per_rule.values():
        rule.default = rule.code not in opt_in
    return [per_rule[code] for code in sorted(per_rule)]


def print_precision(rules: list[RulePrecision]) -> bool:
    """Print the table; True when every goal is met and every sample is complete."""
    print("\nprecision from the review ledger (noise counts against):")
    print(
        f"  {'rule':<6} {'findings':>8} {'labelled':>8} {'true':>5} {'false':>5} {'noise':>5}"
        f" {'precision':>9}  {'gone':>4}"
    )
    ok = True
    for rule in rules:
        value = "-" if rule.precision is None else f"{rule.precision:.2f}"
        flag = ""
        if not rule.sample_complete:
            flag = f"  sample short: label {min(rule.findings, SAMPLE_PER_RULE) - rule.labelled}"
            ok = False
        elif not rule.default:
            flag = "  opt-in: not counted in the overall figure"
        elif rule.precision is not None and rule.precision < GOAL_PER_RULE:
            flag = f"  below {GOAL_PER_RULE:.2f}"
            ok = False
        print(
            f"  {rule.code:<6} {rule.findings:>8} {rule.labelled:>8} {rule.labels['true']:>5}"
            f" {rule.labels['false']:>5} {rule.labels['noise']:>5} {value:>9}  {rule.gone:>4}"
            f"{flag}"
        )
    true = sum(r.labels["true"] for r in rules if r.default)
    labelled = sum(r.labelled for r in rules if r.default)
    if labelled:
        overall = true / labelled
        print(
            f"  overall, default rules: {true}/{labelled} = {overall:.2f} (goal {GOAL_OVERALL:.2f})"
        )
        ok = ok and overall >= GOAL_OVERALL
    return ok


def print_unlabelled(
    findings: list[Finding],
    ledger: list[dict[str, object]],
    roots: dict[str, Path],
    each: int,
    seed: int,
) -> None:
    """Up to ``each`` unlabelled findings per rule, with their source lines, as ledger stubs."""
    labelled = {key(entry) for entry in ledger}
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        if key(finding) not in labelled:
            by_rule[str(finding["code"])].append(finding)
    chooser = random.Random(seed)
    for code in sorted(by_rule):
        pool = by_rule[code]
        for finding in chooser.sample(pool, min(each, len(pool))):
            path = roots[str(finding["project"])] / str(finding["path"])
            lines = path.read_text(errors="replace").splitlines()
            line = int(str(finding["line"]))
            print(f"\n# {finding['project']} {finding['path']}:{line} {code} {finding['message']}")
            for number in range(max(1, line - 3), min(len(lines), line + 2) + 1):
                marker = ">" if number == line else " "
                print(f"#{marker}{number:5} {lines[number - 1]}")
            stub = {k: finding[k] for k in ("project", "path", "line", "code")}
            print(json.dumps({**stub, "label": "?", "reason": "?"}))


def precision_markdown(
    rules: list[RulePrecision], codes: Sequence[str], projects: int, pages: str = ""
) -> str:
    """The table docs/rules/README.md and the README show, between their markers."""
    from loopwise.lint._docs import PRECISION_END, PRECISION_START

    by_code = {rule.code: rule for rule in rules}
    rows = [
        "| Rule | Findings | Labelled | True | False | Noise | Precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    opt_in = opt_in_codes()
    for code in codes:
        rule = by_code.get(code, RulePrecision(code, 0, Counter(), 0, code not in opt_in))
        value = "-" if rule.precision is None else f"{rule.precision:.2f}"
        name = code if rule.default else f"{code} (opt-in)"
        rows.append(
            f"| [{name}]({pages}{code}.md) | {rule.findings} | {rule.labelled}"
            f" | {rule.labels['true']} | {rule.labels['false']} | {rule.labels['noise']}"
            f" | {value} |"
        )
    default = [r for r in rules if r.default]
    true = sum(r.labels["true"] for r in default)
    labelled = sum(r.labelled for r in default)
    findings = sum(r.findings for r in default)
    overall = f"{true / labelled:.2f}" if labelled else "-"
    falses = sum(r.labels["false"] for r in default)
    noise = sum(r.labels["noise"] for r in default)
    rows.append(
        f"| **default rules** | {findings} | {labelled} | {true} | {falses} | {noise}"
        f" | **{overall}** |"
    )
    text = (
        f"Findings of every rule on {projects} asyncio projects from the package index"
        " (pinned in `benchmarks/ecosystem/findings.json`), and their review"
        " (`benchmarks/ecosystem/review.jsonl`: every finding, or a random sample of at least"
        f" {SAMPLE_PER_RULE} a rule): *true* is a real instance the project's"
        " maintainers would want to fix, *false* is wrong, *noise* matches the rule's letter but"
        " nobody would act on it. Precision is true / labelled: noise counts against it."
        " Opt-in rules are measured too (the check selects every rule) and left out of the"
        " default rules' total. Measured with `python benchmarks/ecosystem.py`."
    )
    return "\n".join([PRECISION_START, text, "", *rows, PRECISION_END])


def replace_block(path: Path, block: str) -> None:
    from loopwise.lint._docs import precision_block

    text = path.read_text(encoding="utf-8")
    old = precision_block(text)
    if not old:
        raise SystemExit(f"ecosystem: {path} has no precision table markers")
    path.write_text(text.replace(old, block, 1), encoding="utf-8")


def snapshot_markdown(document: Path) -> str:
    """The precision table of the committed snapshot and ledger (what ``document`` must show)."""
    from loopwise.lint import RULES

    snapshot = read_snapshot()
    findings = snapshot["findings"]
    projects = snapshot["projects"]
    assert isinstance(findings, list) and isinstance(projects, dict)
    rules = precision(findings, read_ledger(LEDGER))
    pages = os.path.relpath(RULE_PAGES, document.parent).replace(os.sep, "/")
    pages = "" if pages == "." else pages + "/"
    return precision_markdown(rules, [rule.code for rule in RULES], len(projects), pages)


RULE_PAGES = HERE.parent / "docs" / "rules"
DOCUMENTS = (RULE_PAGES / "README.md", HERE.parent / "README.md")


# -- the snapshot ---------------------------------------------------------------------------


def read_snapshot() -> dict[str, object]:
    if SNAPSHOT.is_file():
        loaded: dict[str, object] = json.loads(SNAPSHOT.read_text())
        return loaded
    return {"projects": {}, "findings": []}


def write_snapshot(projects: dict[str, object], findings: list[Finding]) -> None:
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "projects": dict(sorted(projects.items())),
        "findings": sorted(findings, key=exact_key),
    }
    SNAPSHOT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def print_diff(old: Iterable[Finding], new: Iterable[Finding], only: set[str] | None) -> int:
    old_by_key = {exact_key(f): f for f in old if only is None or f["project"] in only}
    new_by_key = {exact_key(f): f for f in new}
    added = sorted(set(new_by_key) - set(old_by_key))
    removed = sorted(set(old_by_key) - set(new_by_key))
    print(f"\nagainst the snapshot: +{len(added)} -{len(removed)}")
    for sign, keys, source in (("+", added, new_by_key), ("-", removed, old_by_key)):
        for k in keys:
            f = source[k]
            print(f"  {sign} {f['project']} {f['path']}:{f['line']} {f['code']} {f['message']}")
    return len(added) + len(removed)


def timings(results: dict[str, dict[str, object]]) -> dict[str, object]:
    """What ``--peers`` keeps in the repository: per-project seconds, and the tools' versions."""
    from loopwise import __version__

    keys = ("lines", "loopwise_s", "loopwise_cpu_s", "parse_cpu_s", "ruff_s", "flake8-async_s")
    return {
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "loopwise": __version__,
        "projects": {name: {k: row[k] for k in keys if k in row} for name, row in results.items()},
    }


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_cache = Path(tempfile.gettempdir()) / "loopwise-ecosystem"
    parser.add_argument("--cache", type=Path, default=default_cache, help="download cache")
    parser.add_argument(
        "--index",
        default=os.environ.get("LOOPWISE_INDEX", DEFAULT_INDEX),
        help="the package index's simple API (default: %(default)s)",
    )
    parser.add_argument("--only", action="append", help="check only this project (repeatable)")
    parser.add_argument("--update", action="store_true", help="rewrite the snapshot")
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=0,
        metavar="N",
        help="print up to N unlabelled findings per rule as ledger stubs",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --unlabelled")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also time ruff and flake8-async (a throwaway venv; slow)",
    )
    parser.add_argument("--jobs", type=int, default=None, help="loopwise worker processes")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write the snapshot's precision table into the README and docs/rules",
    )
    options = parser.parse_args(argv)
    known = {name for name, _ in PROJECTS}
    for name in options.only or ():
        if name not in known:
            parser.error(f"unknown project {name!r}; known: {', '.join(sorted(known))}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    only = set(options.only) if options.only else None
    snapshot = read_snapshot()
    pinned_projects = snapshot.get("projects", {})
    assert isinstance(pinned_projects, dict)
    pinned = {
        name: str(meta["sha256"])
        for name, meta in pinned_projects.items()
        if meta.get("version") == dict(PROJECTS).get(name)
    }
    options.cache.mkdir(parents=True, exist_ok=True)
    empty_config = options.cache / "pyproject.toml"
    empty_config.write_text("[tool.loopwise]\n")
    venv = peer_venv() if options.peers else None
    jobs = options.jobs or os.cpu_count() or 1

    projects: list[Project] = []
    findings: list[Finding] = []
    results: dict[str, dict[str, object]] = {}
    total_lines = 0
    print(f"{'project':<22} {'version':>8} {'lines':>8} {'loopwise':>9}  findings per rule")
    for name, version in PROJECTS:
        if only is not None and name not in only:
            continue
        project = fetch(name, version, options.cache, options.index, pinned)
        projects.append(project)
        lines, parse_cpu = lines_and_parse_cpu(project.root)
        total_lines += lines
        found, seconds, cpu = check(project, empty_config, options.jobs)
        findings += found
        per_rule = Counter(str(f["code"]) for f in found)
        row = {
            "version": version,
            "lines": lines,
            "loopwise_s": round(seconds, 3),
            "loopwise_cpu_s": round(cpu, 3),
            "parse_cpu_s": round(parse_cpu, 3),
            "findings": dict(sorted(per_rule.items())),
        }
        breakdown = " ".join(f"{code}:{n}" for code, n in sorted(per_rule.items())) or "-"
        peers = ""
        if venv is not None:
            times = time_peers(project, venv, jobs)
            row.update({f"{tool}_s": round(t, 3) for tool, t in times.items()})
            peers = f"  ruff {times['ruff']:.2f}s  flake8-async {times['flake8-async']:.1f}s"
        results[name] = row
        print(f"{name:<22} {version:>8} {lines:>8} {seconds:>8.2f}s  {breakdown}{peers}")

    per_rule_total = Counter(str(f["code"]) for f in findings)
    wall = sum(float(str(r["loopwise_s"])) for r in results.values())
    print(
        f"{'total':<22} {'':>8} {total_lines:>8} {wall:>8.2f}s  "
        + " ".join(f"{c}:{n}" for c, n in sorted(per_rule_total.items()))
        + f"  ({len(findings)} findings)"
    )
    cpu = sum(float(str(r["loopwise_cpu_s"])) for r in results.values())
    parse = sum(float(str(r["parse_cpu_s"])) for r in results.values())
    print(
        f"loopwise CPU {cpu:.1f}s (worker start-up included) = {cpu / parse:.1f}x a bare"
        f" ast.parse of the same files ({parse:.1f}s in this process)"
    )
    if venv is not None:
        for tool in ("ruff", "flake8-async"):
            theirs = sum(float(str(r[f"{tool}_s"])) for r in results.values())
            ratios = [
                float(str(r[f"{tool}_s"])) / float(str(r["loopwise_s"])) for r in results.values()
            ]
            print(
                f"{tool}: {theirs:.2f}s in all; per project, {tool} time / loopwise time:"
                f" median {statistics.median(ratios):.2f}x"
            )

    old = snapshot.get("findings", [])
    assert isinstance(old, list)
    print_diff(old, findings, only)
    ledger = read_ledger(LEDGER)
    if only is None:
        print("\nat the snapshot:", end="")
        print_precision(precision([f for f in old if isinstance(f, dict)], ledger))
        print("\nnow:", end="")
    goals_met = print_precision(precision(findings, ledger))
    if options.unlabelled:
        roots = {p.name: p.root for p in projects}
        print_unlabelled(findings, ledger, roots, options.unlabelled, options.seed)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = options.cache / f"results-{stamp}-{os.getpid()}.json"
    raw.write_text(json.dumps({"projects": results, "findings": findings}, indent=1))
    print(f"\nraw results: {raw.name} in the cache directory")
    if venv is not None and only is None:
        TIMINGS.write_text(json.dumps(timings(results), indent=1, sort_keys=True) + "\n")
        print(f"timings written: {TIMINGS.relative_to(HERE.parent)}")
    if options.update:
        checked = {
            p.name: {"version": p.version, "archive": p.archive, "sha256": p.sha256}
            for p in projects
        }
        kept = [f for f in old if only is not None and f["project"] not in only]
        others = {k: v for k, v in pinned_projects.items() if only is not None and k not in only}
        write_snapshot({**others, **checked}, kept + findings)
        print(f"snapshot written: {SNAPSHOT.relative_to(HERE.parent)}")
    if options.write_docs:
        for document in DOCUMENTS:
            replace_block(document, snapshot_markdown(document))
            print(f"precision table written: {document.relative_to(HERE.parent)}")
    return 0 if goals_met else 1


if __name__ == "__main__":
    sys.exit(main())
