"""The block runner itself: it reports what a block did, in both of its modes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reference._blocks import parse
from tests.reference.conftest import ForkServer, Outcome, block_env, run_block

DOC = Path(__file__).with_name("synthetic.md")  # never written: blocks carry their own code


@pytest.fixture(params=["fork-server", "interpreter"])
def server(request: pytest.FixtureRequest) -> Iterator[ForkServer | None]:
    if request.param == "interpreter":
        yield None
        return
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    server = ForkServer(block_env())
    yield server
    server.close()


def run(code: str, tmp_path: Path, server: ForkServer | None, timeout: float = 30) -> Outcome:
    (block,) = parse(f"# synthetic\n\n```python\n{code}```\n", DOC)
    return run_block(block, tmp_path, server, timeout=timeout)


def test_a_clean_block(tmp_path: Path, server: ForkServer | None) -> None:
    outcome = run("import asyncio\nasyncio.run(asyncio.sleep(0))\nprint('hi')\n", tmp_path, server)
    assert (outcome.returncode, outcome.error, outcome.stdout, outcome.events()) == (
        0,
        None,
        "hi\n",
        [],
    )


def test_an_exception_is_reported_with_its_bases_and_the_markdown_line(
    tmp_path: Path, server: ForkServer | None
) -> None:
    outcome = run("x = 1\nraise TimeoutError('late')\n", tmp_path, server)
    assert outcome.error == "TimeoutError"
    assert "OSError" in outcome.result["bases"] and outcome.result["message"] == "late"
    assert f'File "{DOC}", line 5' in outcome.stderr  # the block's line in the Markdown


def test_doctor_events_point_into_the_block(tmp_path: Path, server: ForkServer | None) -> None:
    code = "import asyncio\nasync def f(): pass\nasync def main():\n    f()\nasyncio.run(main())\n"
    outcome = run(code, tmp_path, server)
    (event,) = outcome.events("never-awaited")
    assert event["location"]["file"] == str(DOC) and event["location"]["line"] == 7
    assert "was never awaited" in outcome.stderr


def test_a_block_that_hangs_times_out(tmp_path: Path, server: ForkServer | None) -> None:
    outcome = run("import time\ntime.sleep(30)\n", tmp_path, server, timeout=0.5)
    assert outcome.error == "Timeout"


def test_sys_exit_with_an_error_code_is_a_failure(
    tmp_path: Path, server: ForkServer | None
) -> None:
    assert run("import sys\nsys.exit(3)\n", tmp_path, server).error == "SystemExit"
    assert run("import sys\nsys.exit(0)\n", tmp_path, server).error is None
