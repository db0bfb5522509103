"""The complete programs in docs/patterns.md run, cleanly.

A block that starts with an import and compiles as a module is a complete program: it runs in a
fresh interpreter and must exit with status 0, with none of asyncio's symptoms on stderr (its
``assert`` lines check what the text says). Other blocks are fragments (they use names the text
introduces, or ``await`` at the top level) and are only compiled.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.reference._blocks import ROOT, parse
from tests.reference.test_blocks import SYMPTOMS

PAGE = ROOT / "docs" / "patterns.md"
BLOCKS = parse(PAGE.read_text(), PAGE)


def _is_program(code: str) -> bool:
    if not code.startswith(("import ", "from ")):
        return False
    try:
        compile(code, str(PAGE), "exec")
    except SyntaxError:
        return False
    return True


PROGRAMS = [b for b in BLOCKS if _is_program(b.code)]


def test_the_page_has_programs() -> None:
    assert len(PROGRAMS) >= 5


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_block_compiles(block: object) -> None:
    code = block.code  # type: ignore[attr-defined]
    try:
        compile(code, str(PAGE), "exec")
    except SyntaxError as exc:
        if "outside async function" not in str(exc) and "outside function" not in str(exc):
            raise


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.id for b in PROGRAMS])
def test_program_runs(block: object) -> None:
    code = block.code  # type: ignore[attr-defined]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for symptom in SYMPTOMS:
        assert symptom not in proc.stderr, proc.stderr[-3000:]
