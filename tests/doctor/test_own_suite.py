"""The project's own tests pass under ``pytest --loopwise``: the plugin is safe to leave on.

A representative part of the suite (the patterns, with their virtual-clock loop, and the HTTP
client against real aiohttp servers) runs in a subprocess with the plugin on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PART = ["tests/patterns", "tests/http/test_client.py", "tests/http/test_client_retry.py"]


def test_part_of_the_own_suite_passes_under_loopwise_and_counts_its_loops(tmp_path: Path) -> None:
    # Hypothesis runs from a fixed seed with an empty example database: this checks what the
    # plugin changes, not what a new random search happens to find (the plain suite does that).
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(tmp_path)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--loopwise"]
    run = subprocess.run(
        [*command, "--hypothesis-seed=0", *PART],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    tail = run.stdout[-3000:]
    assert run.returncode == 0, tail
    watched = re.search(r"watched (\d+) event loop\(s\)", run.stdout)
    assert watched is not None, tail
    assert int(watched.group(1)) >= 100, tail
