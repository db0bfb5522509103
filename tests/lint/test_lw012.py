"""LW012 beyond its fixture: its messages, and which calls are its and not LW005's."""

from __future__ import annotations

import textwrap

import pytest

from loopwise.lint import check_source
from tests.lint.snippets import check_rule


@pytest.mark.parametrize(
    ("call", "culprit", "advice"),
    [
        ("open('f')", "`open()`", "`await asyncio.to_thread(...)` (or aiofiles)"),
        ("io.open('f')", "`io.open()`", "aiofiles"),
        ("Path('f').read_bytes()", "(`pathlib.Path.read_bytes`)", "asyncio.to_thread("),
    ],
)
def test_lw012_message_names_the_culprit_and_the_async_replacement(
    call: str, culprit: str, advice: str
) -> None:
    source = f"""
        import io
        from pathlib import Path

        async def handler():
            {call}
    """
    [finding] = check_rule(source, "LW012")
    assert finding.line == 6
    assert finding.message.startswith("blocking call ")
    assert culprit in finding.message
    assert advice in finding.message


def test_file_io_is_lw012_only_and_lw012_is_opt_in() -> None:
    source = """
        import time

        async def handler(path):
            time.sleep(1)
            return open(path).read()
    """
    everything = check_source(textwrap.dedent(source), select=["LW005", "LW012"])
    assert [(f.line, f.code) for f in everything] == [(5, "LW005"), (6, "LW012")]
    assert [f.code for f in check_source(textwrap.dedent(source))] == ["LW005"]


def test_lw012_points_at_the_call_inside_with_and_at_the_read() -> None:
    source = """
        async def read(path):
            with open(path) as file:
                return file.read()
    """
    opening, reading = check_rule(source, "LW012")
    assert (opening.line, opening.column, opening.end_column) == (3, 10, 20)
    assert reading.line == 4
    assert "`file.read()` on a file object" in reading.message


def test_lw012_module_level_shadowing_of_open() -> None:
    source = """
        import aiofiles

        open = aiofiles.open

        async def main(path):
            async with open(path) as file:
                return await file.read()
    """
    assert check_rule(source, "LW012") == []
