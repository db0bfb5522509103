"""LW009 beyond its fixture: the message, delay forms, test code."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopwise.lint import check
from tests.lint.snippets import check_rule


def test_sleep_zero_message_says_what_to_await() -> None:
    [finding] = check_rule(
        """
        import asyncio
        async def main(task):
            await asyncio.sleep(0)
            print(task.done())
        """,
        "LW009",
    )
    assert (finding.line, finding.column) == (4, 5)
    assert "asyncio.Event" in finding.message


def test_sleep_zero_delay_forms() -> None:
    findings = check_rule(
        """
        import asyncio
        from asyncio import sleep as pause
        async def main(task):
            await asyncio.sleep(0.0)
            await pause(delay=0)
            await asyncio.sleep(0.001)
            await asyncio.sleep(delay)
            print(task.done())
        """,
        "LW009",
    )
    assert [f.line for f in findings] == [5, 6]


def test_sleep_zero_is_quiet_in_test_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = (
        "import asyncio\n\n\nasync def step(task):\n    await asyncio.sleep(0)\n    task.done()\n"
    )
    for relative in ("app/service.py", "tests/helpers.py", "app/test_service.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    monkeypatch.chdir(tmp_path)
    found = check(["."], select=["LW009"]).findings
    assert [finding.path for finding in found] == ["app/service.py"]
