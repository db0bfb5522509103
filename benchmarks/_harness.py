"""What every timing benchmark shares: rounds, interleaving, medians, child processes, a
throwaway environment for the peers, and the ``--json`` results file.

Guarantees the scripts rely on:

* :func:`interleave` runs every configuration once per round, and the order rotates by one
  place each round, so no configuration is always first (cold caches) or last (a warm machine).
* :func:`summarize` reports the median and the spread (lowest and highest value) of a measure.
* :func:`run_child` runs a measured workload in a fresh interpreter; a child that fails or prints
  no JSON raises :class:`BenchmarkError` with the tail of its stderr, never a bare traceback.
* :func:`peer_env` installs the peers a benchmark compares against into a virtual environment
  under the system temp dir, named by a hash of the pinned requirements (and the Python
  version) and reused while they do not change. The active environment is never touched.
  A child sees the peers through :func:`use_peers`, *after* its own packages, so the packages
  under test (loopwise, aiohttp) are always the active environment's.
* :class:`Results` keeps every round's raw measures and writes them, with the machine's
  description, as ``benchmarks/results/<name>.json`` (``--json``) or to a given path.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

SCHEMA = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PEERS_VARIABLE = "LOOPWISE_BENCH_PEERS"
KEY_PACKAGES = ("loopwise", "aiohttp", "uvloop")

K = TypeVar("K")
Record = dict[str, Any]


class BenchmarkError(Exception):
    """A measured child failed, or a results file does not have the expected shape."""


# -- rounds ---------------------------------------------------------------------------------


def interleave(configurations: Sequence[K], rounds: int) -> Iterator[tuple[int, K]]:
    """(round number from 0, configuration): every configuration once per round, the order
    rotated by one place each round."""
    count = len(configurations)
    for round_no in range(rounds):
        start = round_no % count if count else 0
        for configuration in [*configurations[start:], *configurations[:start]]:
            yield round_no, configuration


@dataclass(frozen=True)
class Spread:
    """The median of some measurements and their range."""

    median: float
    low: float
    high: float
    count: int


def summarize(values: Sequence[float]) -> Spread:
    """Median, lowest and highest of ``values`` (at least one)."""
    if not values:
        raise BenchmarkError("no measurements to summarize")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def paired_ratio(base: Sequence[float], other: Sequence[float]) -> float:
    """The median of ``base[i] / other[i]``: each round's measures compared within the round.

    Rounds are interleaved, so a change in the machine's load during the run moves both
    measures of a round alike; the ratio of two medians taken over all rounds does not cancel it.
    """
    if not base or len(base) != len(other):
        raise BenchmarkError("paired measures need the same number of rounds on both sides")
    return statistics.median(b / o for b, o in zip(base, other, strict=True))


# -- child processes ------------------------------------------------------------------------


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    cwd: Path | None = None,
) -> Record:
    """Run a child that prints one JSON object as its last line, and return that object.

    The child's wall and CPU time (``wall_child``, ``cpu_child``: user + system of the child
    and the processes it waited for) are added to the object.
    """
    start = time.perf_counter()
    before = os.times()
    try:
        done = subprocess.run(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{' '.join(argv[:4])} ... ran over {timeout:g} s") from None
    after = os.times()
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BenchmarkError(f"{' '.join(argv[:4])} ... exited {done.returncode}:\n{tail}")
    lines = done.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise BenchmarkError(f"{' '.join(argv[:4])} ... printed no JSON object last")
    result["wall_child"] = time.perf_counter() - start
    result["cpu_child"] = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return result


# -- peers ----------------------------------------------------------------------------------


def requirements_key(requirements: Sequence[str]) -> str:
    """What names a peers environment: the pinned requirements (in any order) and the Python."""
    text = "\n".join(sorted(r.strip() for r in requirements))
    text += f"\n{sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PeerEnv:
    """A throwaway virtual environment holding a benchmark's peers."""

    root: Path
    requirements: tuple[str, ...]

    @property
    def python(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin") / "python"

    def script(self, name: str) -> Path:
        """A console script installed in the environment (ruff, flake8, ...)."""
        return self.python.parent / name

    def site_packages(self) -> list[str]:
        found = sorted(str(p) for p in self.root.glob("lib/python*/site-packages"))
        return found or [str(self.root / "Lib" / "site-packages")]

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a child of the active interpreter that may import the peers."""
        env = dict(os.environ if base is None else base)
        env[PEERS_VARIABLE] = os.pathsep.join(self.site_packages())
        return env

    def versions(self) -> dict[str, str]:
        """Version of every distribution installed in the environment."""
        found = importlib.metadata.distributions(path=self.site_packages())
        return {d.metadata["Name"].lower(): d.version for d in found if d.metadata["Name"]}


def peer_env(requirements: Sequence[str], *, base: Path | None = None) -> PeerEnv:
    """The peers environment for ``requirements``, created (with pip) on first use only.

    Lives in ``<base or the system temp dir>/loopwise-bench-peers-<hash>``; an environment left
    half-built by an interrupted run is rebuilt.
    """
    directory = base if base is not None else Path(tempfile.gettempdir())
    env = PeerEnv(
        directory / f"loopwise-bench-peers-{requirements_key(requirements)}",
        tuple(sorted(requirements)),
    )
    marker = env.root / "loopwise-requirements.txt"
    if marker.is_file():
        return env
    shutil.rmtree(env.root, ignore_errors=True)
    print(
        f"creating a peers environment for {' '.join(requirements) or '(nothing)'} ...",
        file=sys.stderr,
    )
    venv.EnvBuilder(with_pip=bool(requirements), clear=True).create(env.root)
    if requirements:
        install = [str(env.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        done = subprocess.run([*install, *requirements], check=False)
        if done.returncode != 0:
            shutil.rmtree(env.root, ignore_errors=True)
            raise BenchmarkError(f"could not install {' '.join(requirements)} (pip failed)")
    marker.write_text("\n".join(env.requirements) + "\n")
    return env


def use_peers() -> None:
    """In a child: make the peers importable, after the active environment's own packages."""
    for entry in os.environ.get(PEERS_VARIABLE, "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)


# -- the machine ----------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def package_versions(names: Sequence[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_machine(note: str = "", peers: PeerEnv | None = None) -> Record:
    """CPU model, cores, OS, Python, key package versions, load average now, and ``note``."""
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    packages = package_versions(KEY_PACKAGES)
    if peers is not None:
        wanted = {r.split("==")[0].split("[")[0].lower() for r in peers.requirements}
        packages.update({k: v for k, v in peers.versions().items() if k in wanted})
    return {
        "cpu": cpu_model(),
        "cores": cores(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": packages,
        "load_average": load,
        "note": note,
    }


# -- results --------------------------------------------------------------------------------


def add_json_options(parser: argparse.ArgumentParser) -> None:
    """``--json [PATH]`` and ``--note TEXT`` (said about the machine in the results file)."""
    parser.add_argument(
        "--json",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="write the raw results and the machine's description as JSON "
        "(default path: benchmarks/results/<benchmark>.json)",
    )
    parser.add_argument(
        "--note", default="", help="a word about the machine for the results (e.g. 'loaded')"
    )


@dataclass
class Results:
    """Every round's raw measures of one benchmark run, and the summary rows it printed."""

    benchmark: str
    options: Record
    note: str = ""
    peers: PeerEnv | None = None
    rounds: list[Record] = field(default_factory=list)
    summary: dict[str, list[Record]] = field(default_factory=dict)
    machine: Record = field(init=False)
    started: str = field(init=False)

    def __post_init__(self) -> None:  # the load average at the start, before we add to it
        self.machine = describe_machine(self.note, self.peers)
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def add(self, round_no: int, configuration: Mapping[str, Any], **measures: Any) -> None:
        self.rounds.append({"round": round_no, **configuration, **measures})

    def values(self, measure: str, **configuration: Any) -> list[float]:
        """``measure`` of every round whose configuration matches."""
        return [
            float(r[measure])
            for r in self.rounds
            if all(r.get(k) == v for k, v in configuration.items()) and measure in r
        ]

    def document(self) -> Record:
        return {
            "schema": SCHEMA,
            "benchmark": self.benchmark,
            "started": self.started,
            "command": command_line(self.benchmark, sys.argv[1:]),
            "options": self.options,
            "machine": self.machine,
            "rounds": self.rounds,
            "summary": self.summary,
        }

    def write(self, where: str | None) -> Path | None:
        """Write to ``where`` ('' = the default path); None writes nothing."""
        if where is None:
            return None
        path = Path(where) if where else RESULTS_DIR / f"{self.benchmark}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        document = self.document()
        check_document(document)
        path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"results written to {path}", file=sys.stderr)
        return path


def command_line(benchmark: str, arguments: Sequence[str]) -> str:
    """How the benchmark was run, without where its results went or the note (said apart)."""
    kept: list[str] = []
    skip_value = False
    for argument in arguments:
        if skip_value:
            skip_value = False
            if not argument.startswith("-"):
                continue
        if argument in ("--json", "--note"):
            kept += ["--json"] if argument == "--json" else []
            skip_value = True
        elif argument.startswith("--json="):
            kept.append("--json")
        elif not argument.startswith("--note="):
            kept.append(argument)
    return " ".join(["python", f"benchmarks/{benchmark}.py", *kept])


_MACHINE_KEYS = {"cpu", "cores", "os", "python", "packages", "load_average", "note"}


def check_document(document: Any) -> None:
    """Raise :class:`BenchmarkError` unless ``document`` has the results file's shape."""
    if not isinstance(document, dict):
        raise BenchmarkError("a results file holds one JSON object")
    expected = {
        "schema": int,
        "benchmark": str,
        "started": str,
        "command": str,
        "options": dict,
        "machine": dict,
        "rounds": list,
        "summary": dict,
    }
    for key, kind in expected.items():
        if not isinstance(document.get(key), kind):
            raise BenchmarkError(f"results: {key!r} missing or not a {kind.__name__}")
    if document["schema"] != SCHEMA:
        raise BenchmarkError(f"results: schema {document['schema']}, expected {SCHEMA}")
    missing = _MACHINE_KEYS - set(document["machine"])
    if missing:
        raise BenchmarkError(f"results: machine description lacks {', '.join(sorted(missing))}")
    for record in document["rounds"]:
        if not isinstance(record, dict) or not isinstance(record.get("round"), int):
            raise BenchmarkError("results: every round record needs an integer 'round'")
    for name, rows in document["summary"].items():
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise BenchmarkError(f"results: summary {name!r} is not a list of rows")


def load(path: Path) -> Record:
    """A results file, checked."""
    document = json.loads(path.read_text(encoding="utf-8"))
    check_document(document)
    return document  # type: ignore[no-any-return]
