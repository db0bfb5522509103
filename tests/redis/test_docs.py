"""The complete programs in docs/scale.md run against the test redis-server, cleanly.

A block marked ``<!-- redis -->`` is a program: it runs in a fresh interpreter with
``REDIS_URL`` pointing at the session's redis-server and must exit with status 0, with none of
asyncio's symptoms on stderr. Other blocks are fragments, only compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.redis._server import RedisServer
from tests.reference._blocks import ROOT, parse
from tests.reference.test_blocks import SYMPTOMS

PAGE = ROOT / "docs" / "scale.md"
BLOCKS = parse(PAGE.read_text(), PAGE)


PROGRAMS = [b for b in BLOCKS if b.directive == "redis"]


def test_the_page_has_programs() -> None:
    assert len(PROGRAMS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_every_block_compiles(block: object) -> None:
    code = block.code  # type: ignore[attr-defined]
    try:
        compile(code, str(PAGE), "exec")
    except SyntaxError as exc:
        if "outside async function" not in str(exc) and "outside function" not in str(exc):
            raise


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.id for b in PROGRAMS])
def test_program_runs(block: object, redis_server: RedisServer) -> None:
    code = block.code  # type: ignore[attr-defined]
    env = {**os.environ, "REDIS_URL": redis_server.url}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for symptom in SYMPTOMS:
        assert symptom not in proc.stderr, proc.stderr[-3000:]
