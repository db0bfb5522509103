"""Every ```python block of the reference files runs, and does what the text says.

See ``_blocks.py`` for the markers. One test per block, named ``file.md:line``.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from loopwise.lint import RULES, check_source
from tests.reference._blocks import Block, all_blocks
from tests.reference.conftest import RUNNER, Outcome

BLOCKS = all_blocks()

# What asyncio and aiohttp print when a program has one of the runtime pitfalls: a correct
# block must print none of it.
SYMPTOMS = (
    "Traceback (most recent call last)",
    "was never awaited",
    "Task exception was never retrieved",
    "Task was destroyed but it is pending",
    "Unclosed client session",
    "Unclosed connector",
    "Exception ignored",
)


def test_every_reference_file_has_blocks() -> None:
    files = {block.path.name for block in BLOCKS}
    assert files == {"SKILL.md", "asyncio.md", "aiohttp.md", "pitfalls.md"}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_block(block: Block, block_outcomes: dict[str, Outcome]) -> None:
    # Every rule, the opt-in ones too: the reference shows what each one catches.
    findings = check_source(block.code, path=block.path.name, select=[r.code for r in RULES])
    reported = {finding.code for finding in findings}
    details = "; ".join(f"line {block.fence_line + f.line}: {f.code} {f.message}" for f in findings)
    assert reported == block.check_codes, f"loopwise check reported {reported}: {details}"
    if not block.runs:
        return
    if sys.version_info < block.required_python:
        compile(block.code, str(block.path), "exec")  # at least it is valid Python
        return
    outcome = block_outcomes[block.id]
    _assert_error(block, outcome)
    for text in block.marker("expect-stdout"):
        assert text in outcome.stdout, f"{text!r} not in the block's stdout:\n{outcome.stdout}"
    for text in block.marker("expect-stderr"):
        assert text in outcome.stderr, f"{text!r} not in the block's stderr:\n{outcome.stderr}"
    _assert_doctor(block, outcome)
    if not block.marker("expect-stderr") and not block.marker("expect-error"):
        for symptom in SYMPTOMS:
            assert symptom not in outcome.stderr, outcome.stderr[-3000:]


def _assert_error(block: Block, outcome: Outcome) -> None:
    expected = block.marker("expect-error")
    if not expected:
        assert outcome.returncode == 0, outcome.stderr[-3000:]
        assert outcome.error is None, f"raised {outcome.error}: {outcome.stderr[-3000:]}"
        return
    name, _, text = expected[0].partition(":")
    assert outcome.error is not None, f"the block should raise {expected[0]} but ran cleanly"
    bases = outcome.result.get("bases", [outcome.error])
    assert name.strip() in bases, f"raised {outcome.error}, not {name}: {outcome.stderr[-3000:]}"
    message = outcome.result.get("message") or ""
    assert text.strip() in message, f"message {message!r} lacks {text.strip()!r}"


def _in_block(block: Block, event: dict[str, Any]) -> bool:
    location = event["location"]
    if not location:
        # No creation site (a task the loop made for run_coroutine_threadsafe, say): the
        # message still names where it was waiting.
        return any(
            block.first_line <= int(line) <= block.last_line
            for line in re.findall(re.escape(str(block.path)) + r":(\d+)", event["message"])
        )
    file: str = location["file"]
    line: int = location["line"]
    if file == str(RUNNER):
        # Dropped when the program ended (an object the block's traceback kept alive).
        return bool(event["kind"] == "never-awaited")
    return file == str(block.path) and block.first_line <= line <= block.last_line


def _assert_doctor(block: Block, outcome: Outcome) -> None:
    expected = block.marker("expect-doctor")
    for kind in expected:
        located = [event for event in outcome.events(kind) if _in_block(block, event)]
        assert located, f"no {kind} event located in the block: {outcome.events()}"
    # A slow machine can make anything look blocked; every other kind must be announced.
    unexpected = {event["kind"] for event in outcome.events()} - set(expected) - {"blocked"}
    assert not unexpected, f"doctor events not announced by the text: {outcome.events()}"
