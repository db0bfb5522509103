"""The Python blocks of docs/client.md: complete programs run, every other block compiles.

A block that calls ``asyncio.run(`` is a complete program: it runs in a fresh interpreter and
must exit 0 and print ``ok``. The others are fragments written inside an ``async`` function
(``await`` at the top level): they must at least compile.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reference._blocks import Block, parse

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "client.md"
BLOCKS = parse(PAGE.read_text(encoding="utf-8"), PAGE)
PROGRAMS = [b for b in BLOCKS if "asyncio.run(" in b.code]


def test_the_page_has_a_runnable_program() -> None:
    assert PROGRAMS


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.id for b in PROGRAMS])
def test_program_runs(block: Block, tmp_path: Path) -> None:
    code = block.code
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_compiles(block: Block) -> None:
    code = block.code
    compile(code, str(PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
