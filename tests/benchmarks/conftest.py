"""The benchmarks are scripts, not a package: their directory is put on ``sys.path`` so that
``_harness`` and ``tables`` import as they do when a script runs."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))
