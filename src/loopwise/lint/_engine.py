"""Check many files: summarize them all, join the summaries, then run the rules on each.

Files are spread over worker processes that keep their parsed trees between the two phases,
and a content-hash cache lets an unchanged tree be re-checked without parsing anything.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import multiprocessing
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from loopwise._version import __version__
from loopwise.lint._checker import (
    ParsedModule,
    check_module,
    parse_module,
    summarize_module,
)
from loopwise.lint._files import SourceFile, module_for
from loopwise.lint._finding import Finding
from loopwise.lint._fix import Fix
from loopwise.lint._project import ModuleSummary, Project
from loopwise.lint._rule import Rule

__all__ = ["Cache", "check_files"]

# Below this much work, worker processes cost more than they save.
_PARALLEL_MIN_FILES = 64
_PARALLEL_MIN_BYTES = 512 * 1024
_CHUNK = 16

Progress = Callable[[int], None]
# a finding without its path, cached per content; the fix is there only when fixes were asked for
_Raw = tuple[int, int, str, str, int, int, Fix | None]


@dataclass(slots=True)
class _Entry:
    """What the cache knows about one file; the summary is decoded only when needed."""

    mtime_ns: int
    size: int
    digest: str
    module: str
    is_package: bool
    summary_digest: str
    summary_blob: bytes
    project_digest: str | None = None
    findings: list[_Raw] | None = None

    @classmethod
    def new(cls, job: _Job, digest: str, summary: ModuleSummary) -> _Entry:
        blob = pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)
        summary_digest = hashlib.blake2b(blob, digest_size=16).hexdigest()
        stat = job.stat
        return cls(
            mtime_ns=stat.st_mtime_ns if stat else 0,
            size=stat.st_size if stat else 0,
            digest=digest,
            module=job.module,
            is_package=job.is_package,
            summary_digest=summary_digest,
            summary_blob=blob,
        )

    @property
    def summary(self) -> ModuleSummary:
        summary: ModuleSummary = pickle.loads(self.summary_blob)
        return summary

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)


@dataclass(slots=True)
class _Job:
    file: SourceFile
    module: str
    is_package: bool
    stat: os.stat_result | None
    entry: _Entry | None = None
    parsed_by: int | None = None


@dataclass
class Cache:
    """Per-file summaries and findings keyed by content, stored under ``directory``."""

    directory: Path
    entries: dict[str, _Entry] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.directory / _cache_version() / "cache.pickle"

    @classmethod
    def load(cls, directory: Path) -> Cache:
        cache = cls(directory)
        try:
            with cache.file.open("rb") as handle:
                rows = pickle.load(handle)
            cache.entries = {path: _Entry(*row) for path, row in rows.items()}
        except Exception:  # a missing, old or corrupt cache is simply rebuilt
            cache.entries = {}
        return cache

    def save(self) -> None:
        """Write atomically; a cache that cannot be written is silently skipped."""
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            (self.directory / ".gitignore").write_text("*\n")
            (self.directory / "CACHEDIR.TAG").write_text(
                "Signature: 8a477f597d28d172789f06886806bc55\n# loopwise cache\n"
            )
            fd, temporary = tempfile.mkstemp(dir=self.file.parent, suffix=".tmp")
            rows = {path: entry.as_tuple() for path, entry in self.entries.items()}
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(rows, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.file)
            for stale in self.directory.iterdir():
                if stale.is_dir() and stale.name != self.file.parent.name:
                    shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def _cache_version() -> str:
    """Changes with loopwise's version and with any edit to the checker's own code."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return f"v{__version__}-{digest.hexdigest()}"


def _content_digest(source: bytes) -> str:
    return hashlib.blake2b(source, digest_size=16).hexdigest()


def _read(path: str) -> bytes | OSError:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        return exc


def _parse(job_file: SourceFile, module: str, is_package: bool) -> tuple[ParsedModule, str]:
    source = _read(job_file.path)
    if isinstance(source, OSError):
        error = Finding(job_file.display, 1, 1, "io-error", f"cannot read: {source.strerror}", 1, 1)
        return ParsedModule(job_file.display, module, is_package, b"", None, error), ""
    return parse_module(job_file.display, source, module, is_package), _content_digest(source)


def _to_raw(findings: list[Finding]) -> list[_Raw]:
    return [
        (f.line, f.column, f.code, f.message, f.end_line, f.end_column, f.fix) for f in findings
    ]


def _from_raw(path: str, raw: list[_Raw]) -> list[Finding]:
    return [Finding(path, *row) for row in raw]


# -- the work, the same in-process and in a worker ------------------------------------------


class _Worker:
    """Parses and checks the files it is given, keeping parsed trees between the two phases."""

    def __init__(self, rules: Sequence[Rule[Any]]) -> None:
        self.rules = rules
        self.parsed: dict[str, ParsedModule] = {}
        self.project: Project | None = None
        self.fixes = False

    def summarize(self, items: list[tuple[SourceFile, str, bool]]) -> list[tuple[str, Any]]:
        results: list[tuple[str, Any]] = []
        for file, module, is_package in items:
            parsed, digest = _parse(file, module, is_package)
            self.parsed[file.path] = parsed
            results.append((digest, summarize_module(parsed)))
        return results

    def check(self, items: list[tuple[SourceFile, str, bool]]) -> list[list[_Raw]]:
        assert self.project is not None
        results = []
        for file, module, is_package in items:
            parsed = self.parsed.pop(file.path, None)
            if parsed is None or parsed.path != file.display:
                parsed, _ = _parse(file, module, is_package)
            findings = check_module(parsed, self.project, self.rules, fixes=self.fixes)
            results.append(_to_raw(findings))
        return results


def _worker_main(connection: Connection, rules: Sequence[Rule[Any]]) -> None:
    gc.disable()
    worker = _Worker(rules)
    try:
        while True:
            command, payload = connection.recv()
            if command == "summarize":
                connection.send(worker.summarize(payload))
            elif command == "project":
                worker.project, worker.fixes = payload
            elif command == "check":
                connection.send(worker.check(payload))
            else:
                return
    except (EOFError, KeyboardInterrupt):
        return


class _Pool:
    """Worker processes, each fed its own list of files in small chunks."""

    def __init__(self, size: int, rules: Sequence[Rule[Any]], *, fork: bool = True) -> None:
        forking = fork and "fork" in multiprocessing.get_all_start_methods()
        method = "fork" if forking else "spawn"
        context = multiprocessing.get_context(method)
        self.connections: list[Connection] = []
        self.processes: list[multiprocessing.process.BaseProcess] = []
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(  # type: ignore[attr-defined]
                target=_worker_main, args=(child, rules), daemon=True
            )
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)

    def run(
        self, command: str, per_worker: list[list[Any]], progress: Progress | None
    ) -> list[list[Any]]:
        """Send each worker its items chunk by chunk; results come back in the items' order."""
        results: list[list[Any]] = [[] for _ in per_worker]
        offsets = [0] * len(per_worker)
        busy: dict[Connection, int] = {}

        def feed(index: int) -> None:
            start = offsets[index]
            chunk = per_worker[index][start : start + _CHUNK]
            if chunk:
                offsets[index] = start + len(chunk)
                self.connections[index].send((command, chunk))
                busy[self.connections[index]] = index

        for index in range(len(per_worker)):
            feed(index)
        while busy:
            for ready in wait(list(busy)):
                assert isinstance(ready, Connection)
                index = busy.pop(ready)
                try:
                    chunk_results = ready.recv()
                except EOFError:
                    raise RuntimeError(
                        "a loopwise worker process died; run with --jobs 1"
                    ) from None
                results[index].extend(chunk_results)
                if progress is not None:
                    progress(len(chunk_results))
                feed(index)
        return results

    def broadcast(self, command: str, payload: Any) -> None:
        for connection in self.connections:
            connection.send((command, payload))

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError):
                connection.send(("stop", None))
        for process in self.processes:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()


def _split(jobs: list[_Job], workers: int) -> list[list[_Job]]:
    """Balance by size; a job a worker already parsed stays with that worker."""
    buckets: list[list[_Job]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for job in sorted(jobs, key=lambda j: -(j.stat.st_size if j.stat else 0)):
        index = job.parsed_by if job.parsed_by is not None else loads.index(min(loads))
        buckets[index].append(job)
        loads[index] += job.stat.st_size if job.stat else 0
    return buckets


def _items(jobs: list[_Job]) -> list[tuple[SourceFile, str, bool]]:
    return [(job.file, job.module, job.is_package) for job in jobs]


def check_files(
    files: Sequence[SourceFile],
    rules: Sequence[Rule[Any]],
    *,
    jobs: int = 1,
    cache: Cache | None = None,
    progress: Callable[[int], Progress | None] | None = None,
    fixes: bool = False,
    projects: list[Project] | None = None,
) -> list[Finding]:
    """Every finding in ``files`` (all ``rules``, ``# noqa`` applied), sorted by path and position.

    ``progress``, when given, is called once with the number of files that need work and
    returns a callback that is told how many more are done. With ``fixes`` the findings carry
    the rules' fixes (the cache is then neither read nor written). ``projects``, when given,
    receives the joined summaries the rules ran with.
    """
    if fixes:
        cache = None
    paused = gc.isenabled()
    gc.disable()  # the trees hold no cycles; collecting while they pile up costs ~40 % of the run
    try:
        job_list = [_make_job(file, cache) for file in files]
        changed = _run(job_list, rules, jobs, progress, fixes, projects)
    finally:
        if paused:
            gc.enable()
    findings: list[Finding] = []
    for job in job_list:
        if job.entry is not None and job.entry.findings is not None:
            findings.extend(_from_raw(job.file.display, job.entry.findings))
    if cache is not None and changed:
        for job in job_list:
            if job.entry is not None and job.entry.digest:
                cache.entries[job.file.path] = job.entry
        cache.save()
    return sorted(findings)


def _run(
    job_list: list[_Job],
    rules: Sequence[Rule[Any]],
    jobs: int,
    progress: Callable[[int], Progress | None] | None,
    fixes: bool = False,
    projects: list[Project] | None = None,
) -> bool:
    """Bring every job's entry up to date; returns whether anything had to be redone."""
    to_summarize = [job for job in job_list if job.entry is None]
    total_bytes = sum(job.stat.st_size for job in to_summarize if job.stat)
    parallel = (
        jobs > 1 and len(to_summarize) >= _PARALLEL_MIN_FILES and total_bytes >= _PARALLEL_MIN_BYTES
    )
    report = progress(len(to_summarize) * 2) if progress and to_summarize else None
    pool = _Pool(min(jobs, len(to_summarize)), rules) if parallel else None
    local = _Worker(rules)
    try:
        _summarize(to_summarize, pool, local, report)
        project_digest = _project_digest(job_list, [rule.settings_key() for rule in rules])
        to_check = [
            job
            for job in job_list
            if job.entry is not None
            and (job.entry.findings is None or job.entry.project_digest != project_digest)
        ]
        if to_check or projects is not None:
            summaries = [job.entry.summary for job in job_list if job.entry is not None]
            project = Project(summaries)
            if projects is not None:
                projects.append(project)
            local.fixes = fixes
            if to_check:
                _check(to_check, project, project_digest, pool, local, report)
    finally:
        if pool is not None:
            pool.close()
    return bool(to_summarize or to_check)


def _project_digest(job_list: list[_Job], settings: list[str]) -> str:
    """Changes whenever any module's summary changes (findings may then change anywhere), or
    the rules' settings do."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(settings).encode())
    for module, summary_digest in sorted(
        (job.entry.module, job.entry.summary_digest) for job in job_list if job.entry is not None
    ):
        digest.update(f"{module}:{summary_digest};".encode())
    return digest.hexdigest()


def _make_job(file: SourceFile, cache: Cache | None) -> _Job:
    module, is_package = module_for(file.path)
    try:
        stat: os.stat_result | None = os.stat(file.path)
    except OSError:
        stat = None
    job = _Job(file, module, is_package, stat)
    if cache is not None and stat is not None:
        entry = cache.entries.get(file.path)
        if (
            entry is not None
            and entry.mtime_ns == stat.st_mtime_ns
            and entry.size == stat.st_size
            and entry.module == module
            and entry.is_package == is_package
        ):
            job.entry = entry
    return job


def _summarize(
    jobs: list[_Job], pool: _Pool | None, local: _Worker, report: Progress | None
) -> None:
    if pool is None:
        results = []
        for job in jobs:
            results.extend(local.summarize(_items([job])))
            if report:
                report(1)
        _store_summaries(jobs, results, None)
        return
    buckets = _split(jobs, len(pool.connections))
    per_worker = pool.run("summarize", [_items(bucket) for bucket in buckets], report)
    for index, (bucket, results) in enumerate(zip(buckets, per_worker, strict=True)):
        _store_summaries(bucket, results, index)


def _store_summaries(jobs: list[_Job], results: list[tuple[str, Any]], worker: int | None) -> None:
    for job, (digest, summary) in zip(jobs, results, strict=True):
        job.entry = _Entry.new(job, digest, summary)
        job.parsed_by = worker


def _check(
    jobs: list[_Job],
    project: Project,
    project_digest: str,
    pool: _Pool | None,
    local: _Worker,
    report: Progress | None,
) -> None:
    if pool is None:
        local.project = project
        results = []
        for job in jobs:
            results.extend(local.check(_items([job])))
            if report:
                report(1)
        _store_findings(jobs, results, project_digest)
        return
    pool.broadcast("project", (project, local.fixes))
    buckets = _split(jobs, len(pool.connections))
    per_worker = pool.run("check", [_items(bucket) for bucket in buckets], report)
    for bucket, results in zip(buckets, per_worker, strict=True):
        _store_findings(bucket, results, project_digest)


def _store_findings(jobs: list[_Job], results: list[list[_Raw]], project_digest: str) -> None:
    for job, raw in zip(jobs, results, strict=True):
        assert job.entry is not None
        job.entry.findings = raw
        job.entry.project_digest = project_digest


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
