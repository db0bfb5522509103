"""Running a real program under ``loopwise run --monitor`` and asking it with the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CLI = "import sys; from loopwise.cli import main; sys.exit(main())"


@dataclass
class Watched:
    """A program running under ``loopwise run --monitor``."""

    process: subprocess.Popen[str]
    script: Path
    source: str
    runtime: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def socket(self) -> Path:
        return self.runtime / "loopwise" / f"{self.pid}.sock"

    def line(self, tag: str) -> int:
        lines = [i for i, text in enumerate(self.source.splitlines(), 1) if f"# <- {tag}" in text]
        assert len(lines) == 1, f"tag {tag!r} must mark exactly one line"
        return lines[0]

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Read the program's stdout until a line equal to ``text``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.strip() == text:
                return
        raise AssertionError(f"the program never printed {text!r}")


def cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ``loopwise`` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def cli_json(*args: str, env: dict[str, str]) -> Any:
    done = cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def runtime_env() -> Iterator[dict[str, str]]:
    """An environment whose XDG_RUNTIME_DIR is a fresh private directory with a short path."""
    runtime = tempfile.mkdtemp(prefix="lw")
    os.chmod(runtime, 0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
    yield env
    shutil.rmtree(runtime, ignore_errors=True)


def start(
    source: str, env: dict[str, str], tmp_path: Path, *options: str, ready: str | None = "ready"
) -> Watched:
    """Start ``source`` under ``loopwise run --monitor``; wait until it prints ``ready``, if set."""
    text = textwrap.dedent(source)
    script = tmp_path / "prog.py"
    script.write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "loopwise.doctor", "--monitor", *options, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    watched = Watched(process, script, text, Path(env["XDG_RUNTIME_DIR"]))
    try:
        if ready is not None:
            watched.wait_for_output(ready)
    except BaseException:
        process.kill()
        process.communicate(timeout=30)
        raise
    return watched


def stop(watched: Watched) -> tuple[str, str]:
    """Kill the program if still running; its stdout and stderr."""
    if watched.process.poll() is None:
        watched.process.kill()
    out, err = watched.process.communicate(timeout=60)
    return out, err
