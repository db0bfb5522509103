"""Running the reference blocks: every selected block is run once per session, in parallel."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.reference._blocks import Block

RUNNER = Path(__file__).with_name("_run_block.py")
TIMEOUT = 30.0  # per block, generous for a loaded 2-core machine; blocks take well under 2 s
THRESHOLD_MS = 100.0


@dataclass
class Outcome:
    """What running one block gave."""

    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any]

    @property
    def error(self) -> str | None:
        error: str | None = self.result.get("error")
        return error

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.result.get("events", [])
        return [e for e in events if kind is None or e["kind"] == kind]


class ForkServer:
    """A ``_run_block.py --serve`` process: imports once, forks a child per block."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(RUNNER), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(spec) + "\n")
        self._process.stdin.flush()
        reply = self._process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the block runner died (exit {self._process.wait()})")
        answer: dict[str, Any] = json.loads(reply)
        return answer

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def block_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "default"}
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


def run_block(
    block: Block, directory: Path, server: ForkServer | None = None, timeout: float = TIMEOUT
) -> Outcome:
    """Run ``block`` in a fresh process: a child of ``server``, a new interpreter, or pytest."""
    env = block_env()
    work = Path(tempfile.mkdtemp(dir=directory))
    if block.marker("run-with") == ["pytest"]:
        test_file = work / "test_block.py"
        test_file.write_text("\n" * (block.first_line - 1) + block.code, encoding="utf-8")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, cwd=work, env=env
            )
        except subprocess.TimeoutExpired as exc:
            return _timed_out(exc.stdout, exc.stderr)
        result: dict[str, Any] = {"error": None, "events": []}
        if done.returncode != 0:
            result["error"] = "PytestFailure"
        return Outcome(done.returncode, done.stdout, done.stderr, result)
    result_file = work / "result.json"
    spec = {
        "code": block.code,
        "filename": str(block.path),
        "first_line": block.first_line,
        "threshold_ms": THRESHOLD_MS,
        "result": str(result_file),
        # A program that installs the doctor itself runs without the runner's.
        "doctor": "doctor.install(" not in block.code,
    }
    if server is not None:
        stdout, stderr = work / "stdout.txt", work / "stderr.txt"
        spec.update(cwd=str(work), stdout=str(stdout), stderr=str(stderr), timeout=timeout)
        answer = server.run(spec)
        out, err = stdout.read_text(errors="replace"), stderr.read_text(errors="replace")
        if answer["timed_out"]:
            return _timed_out(out, err)
        returncode = answer["returncode"]
    else:
        try:
            done = subprocess.run(
                [sys.executable, str(RUNNER)],
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=work,
                env=env,
            )
        except subprocess.TimeoutExpired as exc:
            return _timed_out(exc.stdout, exc.stderr)
        returncode, out, err = done.returncode, done.stdout, done.stderr
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    return Outcome(returncode, out, err, result)


def _timed_out(stdout: bytes | str | None, stderr: bytes | str | None) -> Outcome:
    def text(data: bytes | str | None) -> str:
        return data.decode(errors="replace") if isinstance(data, bytes) else data or ""

    result = {"error": "Timeout", "message": "still running at the time limit", "events": []}
    return Outcome(-1, text(stdout), text(stderr), result)


def _selected_blocks(session: pytest.Session) -> list[Block]:
    blocks: list[Block] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        block = callspec.params.get("block") if callspec is not None else None
        if isinstance(block, Block) and block.runs and sys.version_info >= block.required_python:
            blocks.append(block)
    return blocks


def run_all(blocks: list[Block], directory: Path) -> dict[str, Outcome]:
    """The outcome of each block, by id, run in parallel through fork servers."""
    pending: queue.SimpleQueue[Block] = queue.SimpleQueue()
    for block in blocks:
        pending.put(block)
    outcomes: dict[str, Outcome] = {}

    def drain() -> None:
        server = ForkServer(block_env()) if hasattr(os, "fork") else None
        try:
            while True:
                try:
                    block = pending.get_nowait()
                except queue.Empty:
                    return
                outcomes[block.id] = run_block(block, directory, server)
        finally:
            if server is not None:
                server.close()

    workers = [threading.Thread(target=drain) for _ in range(max(2, os.cpu_count() or 2))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


@pytest.fixture(scope="session")
def block_outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """The outcome of every selected runnable block, run in parallel on the first request."""
    return run_all(_selected_blocks(request.session), tmp_path_factory.mktemp("blocks"))
